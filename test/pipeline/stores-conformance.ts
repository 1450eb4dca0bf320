import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalText } from '../../src/pipeline/canonical.js';
import { RunLockLostError, type RunLockFence } from '../../src/guard/run-lock.js';
import { readRunRecords, rowPages, type PipelineStores } from '../../src/pipeline/stores.js';
import type { StoredRow } from '../../src/pipeline/types.js';
import type { Manifest } from '../../src/storage/manifest.js';
import type { CurrentPointer } from '../../src/storage/pointers.js';

/** Opens a fresh, empty set of stores; `reopen` (when the backend keeps anything) opens the same ones afresh. */
export interface StoresBackend {
  open(): Promise<PipelineStores>;
  reopen?(s: PipelineStores): Promise<PipelineStores>;
}

const row = (key: string, v: number, identity = 'aaaaaaaaaaaaaaaa', date = '2026-01-02'): StoredRow => ({ key, v, id: `row_${key}_${identity}_${date}`, step: 'load', date, identity });

const digestOf = (rows: StoredRow[]): string => {
  const h = createHash('sha256');
  for (const r of [...rows].sort((a, b) => (a.id < b.id ? -1 : 1))) h.update(`${canonicalText(r)}\n`);
  return h.digest('hex');
};

const manifest = (step: string, date: string, run: string, started: string): Manifest => ({
  schema_version: 1,
  pipeline: 'demo',
  run_id: run,
  step,
  date,
  as_of: '2026-01-03T00:00:00.000Z',
  params: { identity: 'aaaaaaaaaaaaaaaa' },
  status: 'success',
  started_at: started,
  finished_at: started,
  duration_ms: 0,
  tasks: { total: 1, enqueued: 1, rerun: 0, already_queued: 0, completed: 1, retried: 0, dead: 0 },
  inputs: [],
  outputs: [],
  checks: [],
  exit_code: 0,
});

const pointer = (date: string, run: string): CurrentPointer => ({
  pipeline: 'demo',
  date,
  run_id: run,
  summary_id: 'bbbbbbbbbbbbbbbb',
  published_at: '2026-01-03T01:00:00.000Z',
  params: { as_of: '2026-01-03T00:00:00.000Z', config_hash: 'bbbbbbbbbbbbbbbb' },
});

/** The one suite every PipelineStores implementation passes. */
export function describeStoresBackend(name: string, b: StoresBackend): void {
  describe(`pipeline stores: ${name}`, () => {
    it('rows: content-addressed; same content is present, other content conflicts and writes nothing', async () => {
      const s = await b.open();
      const rows = s.rows('demo', 'load');
      expect(await rows.put([row('a', 1), row('b', 2)])).toEqual({ written: 2, present: 0, conflicts: [] });
      expect(await rows.put([row('a', 1), row('c', 3)])).toEqual({ written: 1, present: 1, conflicts: [] });
      const bad = await rows.put([row('d', 4), row('a', 99)]);
      expect(bad.written).toBe(0);
      expect(bad.conflicts.map((c) => c.id)).toEqual([row('a', 1).id]);
      expect(JSON.parse(bad.conflicts[0]!.existing)).toMatchObject({ v: 1 });
      expect(JSON.parse(bad.conflicts[0]!.incoming)).toMatchObject({ v: 99 });
      expect((await rows.rows('2026-01-02', 'aaaaaaaaaaaaaaaa')).map((r) => r.key)).toEqual(['a', 'b', 'c']);
      await s.close();
    });

    it('rows: scoped by partition and identity, in key order; digest over id order, whatever the put order', async () => {
      const s = await b.open();
      const rows = s.rows('demo', 'load');
      const mine = [row('z', 1), row('m', 2), row('a', 3)];
      await rows.put([mine[0]!]);
      await rows.put([row('a', 7, 'cccccccccccccccc'), row('a', 8, 'aaaaaaaaaaaaaaaa', '2026-01-03')]);
      await rows.put(mine.slice(1));
      expect((await rows.rows('2026-01-02', 'aaaaaaaaaaaaaaaa')).map((r) => [r.key, r.v])).toEqual([
        ['a', 3],
        ['m', 2],
        ['z', 1],
      ]);
      expect(await rows.digest('2026-01-02', 'aaaaaaaaaaaaaaaa')).toEqual({ rows: 3, sha256: digestOf(mine) });
      expect(await rows.digest('2026-01-09', 'aaaaaaaaaaaaaaaa')).toEqual({ rows: 0, sha256: createHash('sha256').digest('hex') });
      // Another step's rows are another store.
      expect(await s.rows('demo', 'other').rows('2026-01-02', 'aaaaaaaaaaaaaaaa')).toEqual([]);
      await s.close();
    });

    it('rows in pages (rowPages): the same rows in the same key order, a page at a time; rows added later are in the next read', async () => {
      const s = await b.open();
      const rows = s.rows('demo', 'load');
      await rows.put([row('q', 1), row('b', 2), row('x', 3)]);
      await rows.put([row('a', 4), row('a', 5, 'cccccccccccccccc'), row('m', 6)]);
      const pages = async (size: number): Promise<string[][]> => {
        const out: string[][] = [];
        for await (const page of rowPages(rows, '2026-01-02', 'aaaaaaaaaaaaaaaa', size)) out.push(page.map((r) => `${r.key}${String(r.v)}`));
        return out;
      };
      expect(await pages(2)).toEqual([['a4', 'b2'], ['m6', 'q1'], ['x3']]);
      expect((await pages(1000)).flat()).toEqual((await rows.rows('2026-01-02', 'aaaaaaaaaaaaaaaa')).map((r) => `${r.key}${String(r.v)}`));
      await rows.put([row('c', 7)]);
      expect(await pages(3)).toEqual([
        ['a4', 'b2', 'c7'],
        ['m6', 'q1', 'x3'],
      ]);
      expect(await pages(5)).toEqual([['a4', 'b2', 'c7', 'm6', 'q1'], ['x3']]);
      let none = 0;
      for await (const page of rowPages(rows, '2026-01-09', 'aaaaaaaaaaaaaaaa', 10)) none += page.length + 1;
      expect(none).toBe(0);
      await s.close();
    });

    it('rows in their stored form (putTexts): exact texts, read back in write order; conflicts() writes nothing; seal keeps every id, text and the digest', async () => {
      const s = await b.open();
      const rows = s.rows('demo', 'texts');
      const P = 'pppppppppppppppp';
      // Texts of a spec of their own (no key, no identity field): kept byte for byte.
      const t = (id: string, v: number, identity = P): { id: string; date: string; identity: string; text: string } => ({
        id,
        date: '2026-01-02',
        identity,
        text: `{"id":"${id}","params":{"x":1},"v":${v}}`,
      });
      expect(await rows.putTexts([t('c', 3), t('a', 1)])).toEqual({ written: 2, present: 0, conflicts: [] });
      expect(await rows.putTexts([t('a', 1), t('b', 2)])).toEqual({ written: 1, present: 1, conflicts: [] });
      expect(await rows.putTexts([t('d', 4), t('a', 9)])).toEqual({ written: 0, present: 0, conflicts: [{ id: 'a', existing: t('a', 1).text, incoming: t('a', 9).text }] });
      expect(await rows.conflicts([t('a', 9), t('b', 2), t('z', 0)])).toEqual([{ id: 'a', existing: t('a', 1).text, incoming: t('a', 9).text }]);
      expect(await rows.texts('2026-01-02', P)).toEqual([t('c', 3), t('a', 1), t('b', 2)].map((x) => ({ id: x.id, text: x.text })));
      expect(await rows.texts('2026-01-02', 'qqqqqqqqqqqqqqqq')).toEqual([]);
      const digest = await rows.digest('2026-01-02', P);
      expect(digest.rows).toBe(3);
      await rows.seal('2026-01-02', P, ['a', 'b', 'c']);
      const sealed = await rows.texts('2026-01-02', P);
      expect(sealed.map((x) => x.id).sort()).toEqual(['a', 'b', 'c']);
      expect(sealed.map((x) => x.text).sort()).toEqual([t('a', 1), t('b', 2), t('c', 3)].map((x) => x.text));
      expect(await rows.digest('2026-01-02', P)).toEqual(digest);
      expect(await rows.conflicts([t('d', 4)])).toEqual([]);
      await s.close();
    });

    it('manifests: listed by step and partition, oldest first; a rewrite of the same run replaces it; hasRun', async () => {
      const s = await b.open();
      await s.manifests.write(manifest('load', '2026-01-02', 'r2', '2026-01-03T02:00:00.000Z'));
      await s.manifests.write(manifest('load', '2026-01-02', 'r1', '2026-01-03T01:00:00.000Z'));
      await s.manifests.write(manifest('sum', '2026-01-02', 'r1', '2026-01-03T01:00:00.000Z'));
      await s.manifests.write({ ...manifest('load', '2026-01-02', 'r2', '2026-01-03T02:00:00.000Z'), status: 'failed', exit_code: 60 });
      const list = await s.manifests.list('demo', 'load', '2026-01-02');
      expect(list.map((m) => [m.run_id, m.status])).toEqual([
        ['r1', 'success'],
        ['r2', 'failed'],
      ]);
      expect(await s.manifests.list('demo', 'load', '2026-01-03')).toEqual([]);
      // Another pipeline's step of the same name is not this one's.
      await s.manifests.write({ ...manifest('load', '2026-01-02', 'r9', '2026-01-03T03:00:00.000Z'), pipeline: 'other' });
      expect((await s.manifests.list('demo', 'load', '2026-01-02')).map((m) => m.run_id)).toEqual(['r1', 'r2']);
      expect((await s.manifests.list('other', 'load', '2026-01-02')).map((m) => m.run_id)).toEqual(['r9']);
      expect(await s.manifests.hasRun('r1', ['load', 'sum'])).toBe(true);
      expect(await s.manifests.hasRun('r3', ['load', 'sum'])).toBe(false);
      expect(await s.manifests.hasRun('r1', ['other'])).toBe(false);
      // A run id of another partition is taken too.
      await s.manifests.write(manifest('load', '2026-01-05', 'r5', '2026-01-06T01:00:00.000Z'));
      expect(await s.manifests.hasRun('r5', ['load'])).toBe(true);
      await s.close();
    });

    it('run records: runs made from the manifests, newest first; status, exit code, current; filters by date and pipeline', async () => {
      const s = await b.open();
      // r1 (2026-01-02): both steps succeeded and published. r2 (same date): failed at sum (60).
      // r3 (2026-01-03): stopped after load (incomplete, 11). x1: another pipeline.
      await s.manifests.write(manifest('load', '2026-01-02', 'r1', '2026-01-03T01:00:00.000Z'));
      await s.manifests.write(manifest('sum', '2026-01-02', 'r1', '2026-01-03T01:00:01.000Z'));
      await s.manifests.write(manifest('load', '2026-01-02', 'r2', '2026-01-03T02:00:00.000Z'));
      await s.manifests.write({ ...manifest('sum', '2026-01-02', 'r2', '2026-01-03T02:00:01.000Z'), status: 'failed', exit_code: 60, error: { class: 'AnomalyHalt', message: 'check c failed' } });
      await s.manifests.write(manifest('load', '2026-01-03', 'r3', '2026-01-04T01:00:00.000Z'));
      await s.manifests.write({ ...manifest('load', '2026-01-02', 'x1', '2026-01-03T03:00:00.000Z'), pipeline: 'other' });
      await s.pointers.write(pointer('2026-01-02', 'r1'));
      const { runs, problems } = await readRunRecords(s, { stepsOf: { demo: 2, other: 1 } });
      expect(problems).toEqual([]);
      expect(runs.map((r) => [r.run_id, r.pipeline, r.date, r.status, r.exit_code, r.current])).toEqual([
        ['r3', 'demo', '2026-01-03', 'incomplete', 11, false],
        ['x1', 'other', '2026-01-02', 'success', 0, false],
        ['r2', 'demo', '2026-01-02', 'failed', 60, false],
        ['r1', 'demo', '2026-01-02', 'success', 0, true],
      ]);
      expect(runs.find((r) => r.run_id === 'r2')!.failure).toBe('sum: check c failed');
      expect(runs.find((r) => r.run_id === 'r1')!.steps.map((x) => x.step)).toEqual(['load', 'sum']);
      expect((await readRunRecords(s, { date: '2026-01-03', stepsOf: { demo: 2 } })).runs.map((r) => r.run_id)).toEqual(['r3']);
      expect((await readRunRecords(s, { pipeline: 'other' })).runs.map((r) => r.run_id)).toEqual(['x1']);
      await s.close();
    });

    it('pointers: replaced whole; partitions ascending per pipeline', async () => {
      const s = await b.open();
      expect(await s.pointers.read('demo', '2026-01-02')).toBeNull();
      await s.pointers.write(pointer('2026-01-03', 'r1'));
      await s.pointers.write(pointer('2026-01-02', 'r1'));
      await s.pointers.write(pointer('2026-01-02', 'r2'));
      expect((await s.pointers.read('demo', '2026-01-02'))?.run_id).toBe('r2');
      expect(await s.pointers.partitions('demo')).toEqual(['2026-01-02', '2026-01-03']);
      expect(await s.pointers.partitions('other')).toEqual([]);
      // Where a report says the pointer is: one place per pipeline and partition.
      expect(s.pointers.location('demo', '2026-01-02')).toMatch(/demo\/date=2026-01-02/);
      expect(s.pointers.location('demo', '2026-01-02')).not.toBe(s.pointers.location('demo', '2026-01-03'));
      await s.close();
    });

    it('ledger: a hash chain, sequence numbers from 1', async () => {
      const s = await b.open();
      const e1 = await s.ledger.append('publish', { date: '2026-01-02' }, 'r1');
      const e2 = await s.ledger.append('rollback', { steps: 1 });
      expect([e1.seq, e2.seq]).toEqual([1, 2]);
      expect(e1.prev_hash).toBe('0'.repeat(64));
      expect(e2.prev_hash).toBe(e1.hash);
      expect(e1.run_id).toBe('r1');
      expect(e2.run_id).toBeUndefined();
      await s.close();
    });

    it('publish: the ledger entry and the pointer, inside the fence; a fence whose lock was lost writes neither (30)', async () => {
      const s = await b.open();
      let fenced = 0;
      const held: RunLockFence = Object.assign(() => false, { whileHeld: <T>(fn: () => T | Promise<T>) => (fenced++, Promise.resolve(fn())) });
      const e = await s.publish(pointer('2026-01-02', 'r1'), { kind: 'publish', detail: { date: '2026-01-02' }, runId: 'r1' }, held);
      expect([e.seq, e.kind, e.run_id, fenced]).toEqual([1, 'publish', 'r1', 1]);
      expect((await s.pointers.read('demo', '2026-01-02'))?.run_id).toBe('r1');
      const lost: RunLockFence = Object.assign(() => true, { whileHeld: () => Promise.reject(new RunLockLostError('demo', null)) });
      const err = await s.publish(pointer('2026-01-02', 'r2'), { kind: 'publish', detail: { date: '2026-01-02' }, runId: 'r2' }, lost).then(
        () => null,
        (x: unknown) => x,
      );
      expect(err).toBeInstanceOf(RunLockLostError);
      expect((err as RunLockLostError).exitCode).toBe(30);
      expect((await s.pointers.read('demo', '2026-01-02'))?.run_id).toBe('r1');
      // Nothing appended: the next entry is the second.
      expect((await s.ledger.append('rollback', { steps: 1 })).seq).toBe(2);
      await s.close();
    });

    if (b.reopen) {
      it('everything written reads back from a fresh open', async () => {
        let s = await b.open();
        await s.rows('demo', 'load').put([row('a', 1)]);
        await s.manifests.write(manifest('load', '2026-01-02', 'r1', '2026-01-03T01:00:00.000Z'));
        await s.pointers.write(pointer('2026-01-02', 'r1'));
        const e1 = await s.ledger.append('publish', { date: '2026-01-02' }, 'r1');
        s = await b.reopen!(s);
        expect((await s.rows('demo', 'load').rows('2026-01-02', 'aaaaaaaaaaaaaaaa')).map((r) => r.v)).toEqual([1]);
        expect(await s.rows('demo', 'load').put([row('a', 2)])).toMatchObject({ written: 0, conflicts: [{ id: row('a', 1).id }] });
        expect((await s.manifests.list('demo', 'load', '2026-01-02')).map((m) => m.run_id)).toEqual(['r1']);
        expect((await s.pointers.read('demo', '2026-01-02'))?.run_id).toBe('r1');
        expect((await s.ledger.append('publish', {}, 'r2')).prev_hash).toBe(e1.hash);
        await s.close();
      });
    }
  });
}
