import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { resolvePolicy } from '../../src/config/policy.js';
import type { QueueClock } from '../../src/queue/clock.js';
import { MemoryQueue } from '../../src/queue/memory.js';
import { monotonicMs } from '../../src/queue/system-clock.js';
import { runWorker } from '../../src/runtime/runner.js';
import type { WorkerDefinition } from '../../src/runtime/worker-api.js';
import { workspacePaths } from '../../src/storage/paths.js';

const silent = pino({ level: 'silent' });
const H2 = 2 * 3_600_000;

describe('worker runner: wall-clock steps', () => {
  it('a +2 h step, then a step back, while handlers run: no timeout, renewals go on, every task completes once', async () => {
    let offset = 0;
    const wall = (): number => Date.now() + offset;
    const clock: QueueClock = { read: () => ({ wall: wall(), mono: monotonicMs(), boot: 'b1' }) };
    const queue = new MemoryQueue({ name: 'q', max_attempts: 3, clock, ownerAlive: () => true });
    await queue.enqueue(Array.from({ length: 6 }, (_, i) => ({ id: `t${i}`, payload: i })));
    const runs: string[] = [];
    let renewals = 0;
    const renewLease = queue.renewLease.bind(queue);
    queue.renewLease = async (...args) => {
      renewals++;
      return renewLease(...args);
    };
    const worker: WorkerDefinition = {
      name: 'q',
      handle: async (t) => {
        runs.push(t.id);
        if (t.id === 't0') {
          offset = H2; // the wall clock jumps while t0 runs
          await new Promise((r) => setTimeout(r, 400));
          offset = -60_000; // and is set back behind where it started
          await new Promise((r) => setTimeout(r, 400));
        }
      },
    };
    const sum = await runWorker({
      queue,
      worker,
      owner: { id: 'w1', pid: process.pid, host: 'h' },
      // A 1 s timeout and a 600 ms lease: on the wall clock, the step would time t0 out at once and stop its renewals.
      policy: resolvePolicy({ max_attempts: 3, concurrency: 2, timeout_ms: 1000, lease_ms: 600 }),
      once: true,
      init: { logger: silent, workspace: workspacePaths('/nonexistent'), env: {} },
      stop: new AbortController().signal,
      now: wall,
      mono: monotonicMs,
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      random: () => 0.5,
    });
    expect(sum).toMatchObject({ claimed: 6, completed: 6, retry_scheduled: 0, lease_lost: 0 });
    expect(runs.sort()).toEqual(['t0', 't1', 't2', 't3', 't4', 't5']);
    expect(renewals).toBeGreaterThanOrEqual(2);
    expect((await queue.stats()).totals.failed).toBe(0);
  });
});
