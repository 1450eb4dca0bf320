import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../temp.js';
import { FileQueue } from '../../src/queue/file/file-queue.js';
import { MemoryQueue } from '../../src/queue/memory.js';
import { transition, newStatus, type Event, type Status } from '../../src/queue/state.js';
import type { Lease, Queue } from '../../src/queue/types.js';
import { FakeClock } from '../queue/conformance.js';

const event: fc.Arbitrary<Event> = fc.oneof(
  fc.record({ type: fc.constant('claim' as const), owner: fc.constantFrom('a', 'b'), lease_ms: fc.integer({ min: 1, max: 100 }) }),
  fc.record({ type: fc.constant('renew' as const), owner: fc.constantFrom('a', 'b'), fence: fc.integer({ min: 0, max: 5 }), lease_ms: fc.integer({ min: 1, max: 100 }) }),
  fc.record({ type: fc.constant('start' as const), owner: fc.constantFrom('a', 'b'), fence: fc.integer({ min: 0, max: 5 }) }),
  fc.record({ type: fc.constant('complete' as const), owner: fc.constantFrom('a', 'b'), fence: fc.integer({ min: 0, max: 5 }) }),
  fc.record({ type: fc.constant('release' as const), owner: fc.constantFrom('a', 'b'), fence: fc.integer({ min: 0, max: 5 }) }),
  fc.record({ type: fc.constant('fail' as const), owner: fc.constantFrom('a', 'b'), fence: fc.integer({ min: 0, max: 5 }), delay_ms: fc.integer({ min: 0, max: 50 }) }),
  fc.record({ type: fc.constant('dead_letter' as const), owner: fc.constantFrom('a', 'b'), fence: fc.integer({ min: 0, max: 5 }) }),
  fc.record({ type: fc.constant('reclaim' as const), fence: fc.integer({ min: 0, max: 5 }) }),
  fc.constant({ type: 'retry' as const }),
  fc.constant({ type: 'rerun' as const }),
);

describe('task state machine (property)', () => {
  it('keeps its invariants over any sequence of events', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.array(fc.tuple(event, fc.integer({ min: 0, max: 60 })), { maxLength: 40 }), (max, steps) => {
        let s: Status = newStatus(max, 0);
        let now = 0;
        for (const [e, dt] of steps) {
          now += dt;
          const out = transition(s, e, now);
          if (!out.ok) continue;
          const n = out.status;
          // The fence moves only on a claim, by one.
          expect(n.fence).toBe(e.type === 'claim' ? s.fence + 1 : s.fence);
          // Completed is final but for an explicit rerun.
          if (s.state === 'completed') expect(e.type).toBe('rerun');
          // Attempts never pass the maximum; dead means exhausted or a contract error.
          expect(n.attempt_count).toBeLessThanOrEqual(max);
          if (n.state === 'dead' && e.type !== 'dead_letter') expect(n.attempt_count).toBe(max);
          // Only a leased task has an owner, and it is the claimer.
          expect(n.owner !== null).toBe(n.state === 'leased');
          if (e.type === 'claim') expect(n.owner).toBe(e.owner);
          if (e.type === 'retry' || e.type === 'rerun') expect(n.attempt_count).toBe(0);
          s = n;
        }
      }),
      { numRuns: 500 },
    );
  });
});

type Op =
  | { k: 'enq'; id: number }
  | { k: 'claim'; max: number; only?: 'all' | 'even' }
  | { k: 'complete' | 'fail' | 'dead' | 'release' | 'start'; pick: number }
  | { k: 'retry' }
  | { k: 'tick'; ms: number }
  | { k: 'replay' }
  | { k: 'compact' };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ k: fc.constant('enq' as const), id: fc.integer({ min: 0, max: 12 }) }),
  fc.record({ k: fc.constant('claim' as const), max: fc.integer({ min: 1, max: 4 }), only: fc.constantFrom(undefined, 'all' as const, 'even' as const) }, { requiredKeys: ['k', 'max'] }),
  fc.record({ k: fc.constantFrom('complete' as const, 'fail' as const, 'dead' as const, 'release' as const, 'start' as const), pick: fc.nat() }),
  fc.constant({ k: 'retry' as const }),
  fc.record({ k: fc.constant('tick' as const), ms: fc.integer({ min: 1, max: 3000 }) }),
  // The file backend only: a second instance replaying its log (every task read back from it),
  // which goes on in place of the first: what it hands out next and its stats must not change.
  fc.constant({ k: 'replay' as const }),
  // The file backend only: the log rewritten as its next generation (snaps), ready order kept.
  fc.constant({ k: 'compact' as const }),
);

describe('file backend against the memory backend (model test)', () => {
  it('gives the same answers and the same state for any sequence of operations', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 30 }), fc.integer({ min: 2, max: 3 }), async (ops, maxAttempts) => {
        const clock = new FakeClock();
        const opts = { name: 'm', max_attempts: maxAttempts, now: clock.now, ownerAlive: () => true };
        const mem = new MemoryQueue(opts);
        const fileOpts = { ...opts, workspace: tempDir('metaspn-model-'), ack_window_ms: 0 };
        let file = new FileQueue(fileOpts);
        const held: [string, Lease][] = [];
        const owner = { id: 'o', pid: 1, host: 'h' };
        const err = { kind: 'transient' as const, class: 'Error', message: 'x', stack: ['at f (x.js:1:1)'], at: '2026-01-01T00:00:00.000Z' };
        // Every task whole (attempts, errors, payload: a short fail's task is read back from two
        // records), before and after a fresh replay, and the dead letters with their tasks whole.
        // (A completed task's record a compaction drops, keeping its id: the counts compare those.)
        const tasks = async (q: Queue): Promise<unknown[]> =>
          (await Promise.all(Array.from({ length: 13 }, (_, i) => q.getTask(`t${i}`)))).map((v) => (v === null || v.state === 'completed' ? null : v));
        const dead = async (q: Queue): Promise<unknown[]> =>
          (await q.listDead()).map((d) => [d.task, d.errors, d.reason, d.attempt_count]).sort((a, b) => ((a[0] as { id: string }).id < (b[0] as { id: string }).id ? -1 : 1));
        const both = async <T>(f: (q: Queue) => Promise<T>): Promise<T> => {
          const [a, b] = await Promise.all([f(mem), f(file)]);
          expect(b).toEqual(a);
          return a;
        };
        for (const o of ops) {
          if (o.k === 'replay') {
            const fresh = new FileQueue(fileOpts);
            expect(await tasks(fresh)).toEqual(await tasks(mem));
            expect(await dead(fresh)).toEqual(await dead(mem));
            await file.close();
            file = fresh;
          } else if (o.k === 'compact') await file.compact();
          else if (o.k === 'enq') await both((q) => q.enqueue([{ id: `t${o.id}`, payload: o.id }]));
          else if (o.k === 'claim') {
            const only =
              o.only === undefined
                ? undefined
                : new Set(
                    Array.from({ length: 13 }, (_, i) => i)
                      .filter((i) => o.only === 'all' || i % 2 === 0)
                      .map((i) => `t${i}`),
                  );
            const got = await both((q) => q.claim({ owner, max: o.max, lease_ms: 1000, defer_start: o.max % 2 === 0, ...(only ? { only } : {}) }));
            for (const g of got) held.push([g.task.id, g.lease]);
          } else if (o.k === 'tick') clock.advance(o.ms);
          else if (o.k === 'retry') await both((q) => q.retry({ by: 'model' }));
          else if (held.length > 0 && o.k === 'start') {
            // Starting keeps the lease held (its handler runs); a later reclaim charges it.
            const [id, lease] = held[o.pick % held.length]!;
            await both((q) => q.start(id, lease));
          } else if (held.length > 0) {
            const [id, lease] = held.splice(o.pick % held.length, 1)[0]!;
            if (o.k === 'complete') await both((q) => q.complete(id, lease));
            if (o.k === 'release') await both((q) => q.release(id, lease));
            if (o.k === 'fail') await both((q) => q.fail(id, lease, err, 500));
            if (o.k === 'dead') await both((q) => q.deadLetter(id, lease, err));
          }
          await both((q) => q.stats());
        }
        await both(tasks);
        await both(dead);
        const fresh = new FileQueue(fileOpts);
        expect(await tasks(fresh)).toEqual(await tasks(mem));
        expect(await dead(fresh)).toEqual(await dead(mem));
        await fresh.close();
        await Promise.all([mem.close(), file.close()]);
      }),
      {
        numRuns: Number(process.env.MODEL_RUNS ?? 60),
        examples: [
          // A short fail (the task read back from its enq and the fail), then a long one onto it.
          [[{ k: 'enq', id: 0 }, { k: 'claim', max: 1 }, { k: 'fail', pick: 0 }, { k: 'replay' }, { k: 'tick', ms: 600 }, { k: 'claim', max: 1 }, { k: 'fail', pick: 0 }, { k: 'replay' }], 3],
          // A reclaim's long record, then the last attempt's short fail: a dead letter whole.
          [
            [
              { k: 'enq', id: 0 },
              { k: 'claim', max: 1 },
              { k: 'tick', ms: 1000 },
              { k: 'claim', max: 1 },
              { k: 'fail', pick: 1 },
              { k: 'replay' },
              { k: 'retry' },
              { k: 'claim', max: 1 },
              { k: 'fail', pick: 0 },
            ],
            2,
          ],
          // Two leases expire together, one started (charged an attempt) and one prefetched (not):
          // both become ready in the order they were enqueued, on every backend.
          [
            [
              { k: 'enq', id: 0 },
              { k: 'claim', max: 2 },
              { k: 'enq', id: 1 },
              { k: 'claim', max: 1 },
              { k: 'tick', ms: 1000 },
              { k: 'claim', max: 1 },
            ],
            5,
          ],
          // A task ready again (released) goes behind those ready before it, also after a fresh
          // replay (which used to find its first entry in the ready order still live).
          [[{ k: 'enq', id: 0 }, { k: 'enq', id: 1 }, { k: 'claim', max: 1 }, { k: 'release', pick: 0 }, { k: 'replay' }, { k: 'claim', max: 1 }], 3],
          // The same through a retry come due, and a reclaim: the order they became ready in.
          [
            [
              { k: 'enq', id: 0 },
              { k: 'claim', max: 1 },
              { k: 'fail', pick: 0 },
              { k: 'enq', id: 1 },
              { k: 'tick', ms: 600 },
              { k: 'claim', max: 1 },
              { k: 'enq', id: 2 },
              { k: 'claim', max: 1 },
              { k: 'release', pick: 1 },
              { k: 'tick', ms: 1000 },
              { k: 'replay' },
              { k: 'claim', max: 3 },
            ],
            3,
          ],
          // A compaction keeps the ready order (not enqueue order), in the process that compacted
          // and in a fresh replay of the compacted log.
          [[{ k: 'enq', id: 0 }, { k: 'enq', id: 1 }, { k: 'claim', max: 1 }, { k: 'release', pick: 0 }, { k: 'compact' }, { k: 'claim', max: 1 }], 3],
          [[{ k: 'enq', id: 0 }, { k: 'enq', id: 1 }, { k: 'enq', id: 2 }, { k: 'claim', max: 2 }, { k: 'release', pick: 0 }, { k: 'compact' }, { k: 'replay' }, { k: 'claim', max: 2 }], 3],
          // A scoped claim hands out its ready tasks in the same order.
          [
            [
              { k: 'enq', id: 0 },
              { k: 'enq', id: 2 },
              { k: 'enq', id: 1 },
              { k: 'claim', max: 1 },
              { k: 'release', pick: 0 },
              { k: 'claim', max: 1, only: 'even' },
            ],
            3,
          ],
        ],
      },
    );
  });
});
