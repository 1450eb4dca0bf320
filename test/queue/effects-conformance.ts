/**
 * Conformance of task effects ({@link EffectsCommit}): completing a task together with the rows
 * and log entries its handler recorded. One suite for every backend: PostgreSQL commits them
 * atomically (`atomic: true`), the file and memory backends write them and then complete
 * (`effectsThenComplete`, at-least-once). Where the two differ (a holder that lost its lease),
 * the case asserts each one's documented behaviour.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { resolvePolicy } from '../../src/config/policy.js';
import type { StoredRow } from '../../src/pipeline/types.js';
import type { EffectsCommit, Owner, Queue } from '../../src/queue/types.js';
import { runWorker, type RunnerDeps } from '../../src/runtime/runner.js';
import type { WorkerDefinition } from '../../src/runtime/worker-api.js';
import { workspacePaths } from '../../src/storage/paths.js';

/** What a backend gives each case: a fresh queue, how it commits effects, and readers of what was written. */
export interface EffectsHarness {
  queue: Queue;
  commit: EffectsCommit;
  /** The rows of store `<pipeline>.<step>`: id to stored text. */
  rows(store: string): Promise<Map<string, string>>;
  /** The entries of effect log `log`, in the order written. */
  log(log: string): Promise<{ task_id: string; fence: number; body: unknown }[]>;
  /** The RunnerDeps.effects to pass (undefined: the runner finds the queue's own). */
  runnerEffects?: EffectsCommit;
  close(): Promise<void>;
}

export type MakeHarness = (queueName: string) => Promise<EffectsHarness>;

const ME: Owner = { id: 'me', pid: 1, host: 'h' };
const OTHER: Owner = { id: 'other', pid: 2, host: 'h' };

/** A stored row of pipeline `p`, step `s` (the fields the runner would add). */
export function row(id: string, value: number, step = 's'): StoredRow {
  return { key: id, value, id, step, date: '2026-01-15', identity: 'i1' };
}

let names = 0;

export function describeEffectsBackend(backend: string, make: MakeHarness): void {
  describe(`task effects (${backend})`, () => {
    async function leased(h: EffectsHarness, id: string) {
      await h.queue.enqueue([{ id, payload: null }]);
      const [c] = await h.queue.claim({ owner: ME, max: 1, lease_ms: 60_000, only: new Set([id]) });
      return c!;
    }

    it('rows and log entries are written with the completion', async () => {
      const h = await make(`fx_${++names}`);
      const c = await leased(h, 'a');
      const out = await h.commit.completeWithEffects('a', c.lease, [
        { kind: 'rows', pipeline: 'p', step: 's', rows: [row('r1', 1), row('r2', 2)] },
        { kind: 'append', log: 'ledger', body: { task: 'a', n: [1, 2] } },
      ]);
      expect(out).toEqual({ status: 'completed' });
      expect(await h.queue.states(['a'])).toEqual(['completed']);
      expect([...(await h.rows('p.s')).keys()].sort()).toEqual(['r1', 'r2']);
      expect((await h.rows('p.s')).get('r1')).toBe(JSON.stringify({ date: '2026-01-15', id: 'r1', identity: 'i1', key: 'r1', step: 's', value: 1 }));
      expect(await h.log('ledger')).toEqual([{ task_id: 'a', fence: c.lease.fence, body: { task: 'a', n: [1, 2] } }]);
      await h.close();
    });

    it('rows already stored with the same text are left as they are: a rerun completes, nothing doubles', async () => {
      const h = await make(`fx_${++names}`);
      for (const id of ['a', 'b']) {
        const c = await leased(h, id);
        expect(await h.commit.completeWithEffects(id, c.lease, [{ kind: 'rows', pipeline: 'p', step: 's', rows: [row('r1', 1), row('r1', 1)] }])).toEqual({ status: 'completed' });
      }
      expect([...(await h.rows('p.s')).keys()]).toEqual(['r1']);
      await h.close();
    });

    it('a row stored with other content: a conflict, nothing of that completion is written, and the task stays leased', async () => {
      const h = await make(`fx_${++names}`);
      const a = await leased(h, 'a');
      await h.commit.completeWithEffects('a', a.lease, [{ kind: 'rows', pipeline: 'p', step: 's', rows: [row('r1', 1)] }]);
      const b = await leased(h, 'b');
      const out = await h.commit.completeWithEffects('b', b.lease, [
        { kind: 'rows', pipeline: 'p', step: 's', rows: [row('r2', 2), row('r1', 99)] },
        { kind: 'append', log: 'ledger', body: 'b' },
      ]);
      expect(out.status).toBe('conflict');
      expect(out.status === 'conflict' && out.conflicts.map((x) => [x.store, x.id])).toEqual([['p.s', 'r1']]);
      expect([...(await h.rows('p.s')).keys()]).toEqual(['r1']);
      expect(await h.log('ledger')).toEqual([]);
      expect(await h.queue.states(['b'])).toEqual(['leased']);
      await h.close();
    });

    it(`a holder that lost its lease: lease_lost, ${backend === 'postgres' ? 'and none of its effects are written (exactly once)' : 'its effects written anyway (at-least-once)'}`, async () => {
      const h = await make(`fx_${++names}`);
      const stale = await leased(h, 'a');
      // Handed out again: the first holder gave it back and another claimed it.
      expect(await h.queue.release('a', stale.lease)).toBe(true);
      const [fresh] = await h.queue.claim({ owner: OTHER, max: 1, lease_ms: 60_000 });
      const effects = [{ kind: 'append' as const, log: 'ledger', body: 1 }, { kind: 'rows' as const, pipeline: 'p', step: 's', rows: [row('r1', 1)] }];
      expect(await h.commit.completeWithEffects('a', stale.lease, effects)).toEqual({ status: 'lease_lost' });
      expect(await h.log('ledger')).toHaveLength(h.commit.atomic ? 0 : 1);
      expect((await h.rows('p.s')).size).toBe(h.commit.atomic ? 0 : 1);
      expect(await h.commit.completeWithEffects('a', fresh!.lease, effects)).toEqual({ status: 'completed' });
      expect((await h.log('ledger')).map((e) => e.fence)).toEqual(h.commit.atomic ? [fresh!.lease.fence] : [stale.lease.fence, fresh!.lease.fence]);
      await h.close();
    });

    it('completions made together each learn their own outcome: a conflict or a lost lease in one holds back none of the others', async () => {
      const h = await make(`fx_${++names}`);
      const pre = await leased(h, 'pre');
      await h.commit.completeWithEffects('pre', pre.lease, [{ kind: 'rows', pipeline: 'p', step: 's', rows: [row('r3', 3)] }]);
      const ids = ['t0', 't1', 't2', 't3', 't4', 't5'];
      await h.queue.enqueue(ids.map((id) => ({ id, payload: null })));
      const got = await h.queue.claim({ owner: ME, max: ids.length, lease_ms: 60_000 });
      const lease = new Map(got.map((c) => [c.task.id, c.lease]));
      // t5's lease is gone: given back and claimed by another owner.
      await h.queue.release('t5', lease.get('t5')!);
      await h.queue.claim({ owner: OTHER, max: 1, lease_ms: 60_000 });
      const outs = await Promise.all(
        ids.map((id, i) =>
          h.commit.completeWithEffects(id, lease.get(id)!, [
            // t3 writes r3 with other content than stored; t1 and t2 write the same row alike.
            { kind: 'rows', pipeline: 'p', step: 's', rows: [row(`r${i === 2 ? 1 : i}`, i === 2 ? 1 : i === 3 ? 33 : i)] },
            { kind: 'append', log: 'ledger', body: id },
          ]),
        ),
      );
      expect(outs.map((o) => o.status)).toEqual(['completed', 'completed', 'completed', 'conflict', 'completed', 'lease_lost']);
      expect(await h.queue.states(ids)).toEqual(['completed', 'completed', 'completed', 'leased', 'completed', 'leased']);
      expect((await h.log('ledger')).map((e) => e.task_id).sort()).toEqual(h.commit.atomic ? ['t0', 't1', 't2', 't4'] : ['t0', 't1', 't2', 't4', 't5']);
      expect([...(await h.rows('p.s')).keys()].sort()).toEqual(h.commit.atomic ? ['r0', 'r1', 'r3', 'r4'] : ['r0', 'r1', 'r3', 'r4', 'r5']);
      await h.close();
    });

    it('the worker loop commits what handlers record in ctx.effects; a failed attempt\'s effects are dropped; a conflict is a contract error', async () => {
      const h = await make(`fx_${++names}`);
      const failedOnce = new Set<string>();
      const worker: WorkerDefinition<{ i: number }> = {
        name: h.queue.name,
        isolation: 'none',
        handle(t, ctx) {
          ctx.effects.append('done', { id: t.id, attempt: ctx.attempt });
          ctx.effects.rows('p', 's', [row(`r${t.payload.i}`, t.payload.i === 7 ? -1 : 0)]);
          if (t.payload.i % 5 === 0 && !failedOnce.has(t.id)) {
            failedOnce.add(t.id);
            throw new Error('flaky');
          }
        },
      };
      // Task 7's row is stored beforehand with other content: its completion conflicts.
      const pre = await leased(h, 'pre');
      await h.commit.completeWithEffects('pre', pre.lease, [{ kind: 'rows', pipeline: 'p', step: 's', rows: [row('r7', 7)] }]);
      await h.queue.enqueue(Array.from({ length: 20 }, (_, i) => ({ id: `t${i}`, payload: { i } })));
      const policy = resolvePolicy({ max_attempts: 3, backoff_base_ms: 1, backoff_cap_ms: 1, concurrency: 4 });
      const deps: RunnerDeps = {
        queue: h.queue,
        worker: worker as WorkerDefinition,
        owner: ME,
        policy,
        once: true,
        init: { logger: pino({ level: 'silent' }), workspace: workspacePaths('/nonexistent'), env: {} },
        stop: new AbortController().signal,
        now: Date.now,
        sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
        random: () => 0.5,
        nextDue: () => h.queue.nextDueAt(),
        ...(h.runnerEffects ? { effects: h.runnerEffects } : {}),
      };
      const sum = await runWorker(deps);
      expect(sum).toMatchObject({ completed: 19, retry_scheduled: 4, dead_contract: 1 });
      const done = await h.log('done');
      // One entry per completed task, from the attempt that completed it; none from task 7.
      expect(done.map((e) => e.task_id).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `t${i}`).filter((id) => id !== 't7').sort());
      for (const e of done) expect((e.body as { attempt: number }).attempt).toBe(failedOnce.has(e.task_id) ? 2 : 1);
      expect((await h.queue.getDead('t7'))?.reason).toMatchObject({ kind: 'contract', message: expect.stringMatching(/replay conflict: p\.s already holds r7/) as unknown });
      expect((await h.rows('p.s')).size).toBe(20);
      expect(await h.queue.stats()).toMatchObject({ completed: 20, dead: 1, leased: 0, ready: 0 });
      await h.close();
    });
  });
}
