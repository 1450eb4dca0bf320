// The worker loop's dependencies over a memory queue and a fake clock, for the runner's unit tests.
import pino from 'pino';
import { resolvePolicy, type QueuePolicy } from '../../src/config/policy.js';
import { MemoryQueue } from '../../src/queue/memory.js';
import type { RunnerDeps } from '../../src/runtime/runner.js';
import type { WorkerDefinition } from '../../src/runtime/worker-api.js';
import { workspacePaths } from '../../src/storage/paths.js';
import { FakeClock } from '../queue/conformance.js';

const silent = pino({ level: 'silent' });

/** A memory queue for `worker` (3 attempts, 1 s backoff unless `policy` says otherwise) and the runner's deps over it; sleeping moves the fake clock. */
export function setup(worker: WorkerDefinition, policy: Partial<QueuePolicy> = {}, extra: Partial<RunnerDeps> = {}) {
  const clock = new FakeClock();
  const pol = resolvePolicy({ max_attempts: 3, backoff_base_ms: 1000, ...policy });
  const queue = new MemoryQueue({ name: worker.name, max_attempts: pol.max_attempts, now: clock.now });
  const stop = new AbortController();
  const deps: RunnerDeps = {
    queue,
    worker,
    owner: { id: 'w1', pid: process.pid, host: 'h' },
    policy: pol,
    once: true,
    init: { logger: silent, workspace: workspacePaths('/nonexistent'), env: {} },
    stop: stop.signal,
    now: clock.now,
    // Sleeping moves the fake clock: backoff is exercised without waiting.
    sleep: async (ms) => clock.advance(ms),
    random: () => 0.5,
    nextDue: async () => (await queue.stats()).next_due_at,
    ...extra,
  };
  return { clock, queue, deps, stop };
}
