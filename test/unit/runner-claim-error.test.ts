import { getEventListeners } from 'node:events';
import pino from 'pino';
import { expect, it } from 'vitest';
import { resolvePolicy } from '../../src/config/policy.js';
import { MemoryQueue } from '../../src/queue/memory.js';
import type { ClaimOptions } from '../../src/queue/types.js';
import { runWorker } from '../../src/runtime/runner.js';
import { workspacePaths } from '../../src/storage/paths.js';

// Found by the PostgreSQL chaos suite: a claim that threw (the database gone) ended runWorker at
// once, `worker run` closed the queue, and the tasks still running then failed to acknowledge on a
// closed queue: an unhandled rejection, exit 1 instead of 11.
it('a claim that throws ends the run only once the running tasks were acknowledged, and with its error', async () => {
  const queue = new MemoryQueue({ name: 'q' });
  await queue.enqueue([
    { id: 'a', payload: null },
    { id: 'b', payload: null },
  ]);
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  let claims = 0;
  const order: string[] = [];
  const q = {
    claim: async (o: ClaimOptions) => {
      if (++claims > 1) {
        // The acknowledgement of `a` is under way: it lands only after this claim has failed.
        setTimeout(open, 20);
        throw new Error('database gone');
      }
      return queue.claim({ ...o, max: 1 });
    },
    start: queue.start.bind(queue),
    complete: async (id: string, lease: Parameters<MemoryQueue['complete']>[1]) => {
      await gate;
      const ok = await queue.complete(id, lease);
      order.push(`acknowledged ${id}`);
      return ok;
    },
    fail: queue.fail.bind(queue),
    deadLetter: queue.deadLetter.bind(queue),
    release: queue.release.bind(queue),
    renewLease: queue.renewLease.bind(queue),
  };
  const run = runWorker({
    queue: q,
    worker: { name: 'q', isolation: 'none', handle: () => undefined },
    owner: { id: 'w', pid: 1, host: 'h' },
    policy: resolvePolicy({ concurrency: 1 }),
    prefetch: 1,
    once: false,
    init: { logger: pino({ level: 'silent' }), workspace: workspacePaths('/nonexistent'), env: {} },
    stop: new AbortController().signal,
    now: Date.now,
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    random: () => 0.5,
  });
  await expect(run.finally(() => order.push('run ended'))).rejects.toThrow('database gone');
  expect(order).toEqual(['acknowledged a', 'run ended']);
  expect(await queue.states(['a', 'b'])).toEqual(['completed', 'ready']);
});

// Found in review: a release that threw (not a full disk) at a graceful stop left the run's
// listeners on the caller's stop signal (a long-lived process reusing one signal kept them all).
it('a release that throws at a graceful stop ends the run with its error and leaves no listener on the stop signal', async () => {
  const queue = new MemoryQueue({ name: 'q' });
  await queue.enqueue(['a', 'b', 'c', 'd'].map((id) => ({ id, payload: null })));
  const stop = new AbortController();
  const q = {
    claim: queue.claim.bind(queue),
    start: queue.start.bind(queue),
    complete: queue.complete.bind(queue),
    fail: queue.fail.bind(queue),
    deadLetter: queue.deadLetter.bind(queue),
    release: () => Promise.reject(new Error('release failed')),
    renewLease: queue.renewLease.bind(queue),
  };
  const run = runWorker({
    queue: q,
    worker: { name: 'q', isolation: 'none', handle: () => void stop.abort() },
    owner: { id: 'w', pid: 1, host: 'h' },
    policy: resolvePolicy({ concurrency: 1 }),
    prefetch: 4,
    once: false,
    init: { logger: pino({ level: 'silent' }), workspace: workspacePaths('/nonexistent'), env: {} },
    stop: stop.signal,
    now: Date.now,
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    random: () => 0.5,
  });
  await expect(run).rejects.toThrow('release failed');
  expect(getEventListeners(stop.signal, 'abort')).toEqual([]);
});
