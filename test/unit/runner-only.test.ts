import { existsSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { resolvePolicy } from '../../src/config/policy.js';
import { MemoryQueue } from '../../src/queue/memory.js';
import { runWorker, type RunnerDeps } from '../../src/runtime/runner.js';
import { drainStage } from '../../src/runtime/stage.js';
import type { WorkerDefinition } from '../../src/runtime/worker-api.js';
import { workspacePaths } from '../../src/storage/paths.js';
import { FakeClock } from '../queue/conformance.js';
import { tempDir } from '../temp.js';

const silent = pino({ level: 'silent' });
// A workspace of its own: a stage records its task durations there (ops/task-durations/), which
// under /nonexistent went to the root of the file system when the tests ran as root.
const init = { logger: silent, workspace: workspacePaths(tempDir('metaspn-runner-only-')), env: {} };
const owner = { id: 'w1', pid: process.pid, host: 'h' };

describe('scoped runs: a worker or a stage executes only its own tasks', () => {
  it('runWorker with `only` runs those tasks and leaves the others ready, never leased, no attempt', async () => {
    const clock = new FakeClock();
    const queue = new MemoryQueue({ name: 'q', max_attempts: 3, now: clock.now });
    await queue.enqueue(Array.from({ length: 10 }, (_, i) => ({ id: `t${i}`, payload: i, group: i % 2 ? 'odd' : 'even' })));
    const ran: string[] = [];
    const worker: WorkerDefinition = { name: 'q', handle: (t) => void ran.push(t.id) };
    const deps: RunnerDeps = {
      queue,
      worker,
      owner,
      policy: resolvePolicy({ max_attempts: 3, concurrency: 2 }),
      once: true,
      only: new Set(['t1', 't3', 't5', 't7', 't9']),
      init,
      stop: new AbortController().signal,
      now: clock.now,
      sleep: async (ms) => clock.advance(ms),
      random: () => 0.5,
      nextDue: () => queue.nextDueAt(new Set(['t1', 't3', 't5', 't7', 't9'])),
    };
    expect(await runWorker(deps)).toMatchObject({ claimed: 5, completed: 5 });
    expect(ran.sort()).toEqual(['t1', 't3', 't5', 't7', 't9']);
    expect(await queue.states(['t0', 't2', 't4', 't6', 't8'])).toEqual(['ready', 'ready', 'ready', 'ready', 'ready']);
    // Never leased: their first claim has the first fence and no attempt, no error.
    const rest = await queue.claim({ owner, max: 10, lease_ms: 1000 });
    expect(rest.map((c) => [c.task.id, c.lease.fence, c.task.attempt_count, c.task.errors.length])).toEqual(['t0', 't2', 't4', 't6', 't8'].map((id) => [id, 1, 0, 0]));
  });

  it('drainStage runs its own groups only, waits out its own retry, and is not woken by another run’s', async () => {
    const queue = new MemoryQueue({ name: 'q', max_attempts: 3 });
    // Another run's tasks: one ready, one waiting for a retry an hour away.
    await queue.enqueue([
      { id: 'other-ready', payload: 0, group: 'p/2026-01-01' },
      { id: 'other-retry', payload: 0, group: 'p/2026-01-01' },
    ]);
    const [h] = await queue.claim({ owner, max: 1, lease_ms: 1000, only: new Set(['other-retry']) });
    await queue.fail('other-retry', h!.lease, { kind: 'transient', class: 'Error', message: 'x', at: new Date().toISOString() }, 3_600_000);
    const ran: string[] = [];
    const worker: WorkerDefinition = {
      name: 'q',
      handle: (t, ctx) => {
        ran.push(`${t.id}#${ctx.attempt}`);
        if (t.id === 'mine-flaky' && ctx.attempt === 1) throw new Error('first attempt fails');
      },
    };
    const t0 = Date.now();
    const res = await drainStage({
      queue,
      worker,
      policy: resolvePolicy({ max_attempts: 3, backoff_base_ms: 50, backoff_cap_ms: 50, lease_ms: 5000 }),
      owner,
      init,
      groups: [
        [
          { id: 'mine-a', payload: 1, group: 'p/2026-01-02' },
          { id: 'mine-flaky', payload: 2, group: 'p/2026-01-02' },
        ],
      ],
      by: 'run-2',
      stop: new AbortController().signal,
    });
    expect(ran.sort()).toEqual(['mine-a#1', 'mine-flaky#1', 'mine-flaky#2']);
    expect(res.groups[0]).toMatchObject({ total: 2, completed: 2, unsettled: 0, cancelled: 0, retried: 1 });
    expect(await queue.states(['other-ready', 'other-retry'])).toEqual(['ready', 'scheduled']);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(existsSync(join(init.workspace.root, 'ops', 'task-durations', 'q.json'))).toBe(true);
  });
});
