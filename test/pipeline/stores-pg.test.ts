import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createPool, type PgPool } from '../../src/backend/pg/connection.js';
import { pgRollback } from '../../src/backend/pg/rollback.js';
import { PgRunLocks } from '../../src/backend/pg/run-locks.js';
import { PgStores } from '../../src/backend/pg/stores.js';
import { FileStores, type PipelineStores } from '../../src/pipeline/stores.js';
import type { StoredRow } from '../../src/pipeline/types.js';
import { RunLockLostError, type RunLockLog } from '../../src/guard/run-lock.js';
import { entryHash, GENESIS } from '../../src/storage/ledger.js';
import { workspacePaths } from '../../src/storage/paths.js';
import type { CurrentPointer } from '../../src/storage/pointers.js';
import { createTestDatabase, pgAvailable, type TestDatabase } from '../queue/pg-db.js';
import { tempDir } from '../temp.js';
import { waitFor } from '../wait.js';
import { describeStoresBackend } from './stores-conformance.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The pipeline stores' conformance suite on PostgreSQL (a schema per test, in a database this file
 * creates and drops), and what the database adds: concurrent ledger appenders, a publish in one
 * transaction fenced by the run lock, digests and exports byte for byte as the file backend's.
 */
const up = await pgAvailable();
let db: TestDatabase;
let schemas = 0;
const schemaOf = new WeakMap<PipelineStores, string>();
const quiet: RunLockLog = { warn: () => undefined, info: () => undefined };

function open(schema = `s_${++schemas}`): PgStores {
  const s = new PgStores({ setting: { url: db.url, source: 'test', schema, pool_max: 4 } });
  schemaOf.set(s, schema);
  return s;
}

const row = (key: string, v: number, date = '2026-01-02', identity = 'aaaaaaaaaaaaaaaa'): StoredRow => ({ key, v, id: `row_${key}_${identity}_${date}`, step: 'load', date, identity });
const pointer = (date: string, run: string): CurrentPointer => ({
  pipeline: 'demo',
  date,
  run_id: run,
  summary_id: 'bbbbbbbbbbbbbbbb',
  published_at: '2026-01-03T01:00:00.000Z',
  params: { as_of: '2026-01-03T00:00:00.000Z', config_hash: 'bbbbbbbbbbbbbbbb' },
});

describe.skipIf(!up)('PostgreSQL pipeline stores', () => {
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  describeStoresBackend('postgres', {
    open: () => Promise.resolve(open()),
    reopen: async (s) => {
      const schema = schemaOf.get(s)!;
      await s.close();
      return open(schema);
    },
  });

  it('eight appenders on their own pools at once: one gapless chain, every entry once', async () => {
    const schema = `s_${++schemas}`;
    const pools: PgPool[] = [];
    const stores = Array.from({ length: 8 }, () => {
      const pool = createPool(db.url, 2);
      pools.push(pool);
      return new PgStores({ setting: { url: db.url, source: 'test', schema }, pool });
    });
    try {
      const made = await Promise.all(stores.flatMap((s, i) => Array.from({ length: 10 }, (_, j) => s.ledger.append('publish', { writer: i, n: j }, `r${i}`))));
      expect(made.map((e) => e.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 80 }, (_, i) => i + 1));
      const read = await stores[0]!.readLedger();
      expect(read.problems).toEqual([]);
      expect(read.entries).toHaveLength(80);
      expect(read.entries[0]!.prev_hash).toBe(GENESIS);
      for (const [i, e] of read.entries.entries()) if (i > 0) expect(e.prev_hash).toBe(read.entries[i - 1]!.hash);
      expect(new Set(read.entries.map((e) => `${String(e.detail.writer)}/${String(e.detail.n)}`)).size).toBe(80);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
      await Promise.all(pools.map((p) => p.end()));
    }
  });

  it('an entry edited in the table is detected by readLedger', async () => {
    const s = open();
    try {
      await s.ledger.append('publish', { date: '2026-01-02' }, 'r1');
      await s.ledger.append('publish', { date: '2026-01-03' }, 'r2');
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      await c.query(`UPDATE ${s.schema}.ledger SET body = replace(body, '2026-01-02', '2026-01-09') WHERE seq = 1`);
      await c.end();
      const read = await s.readLedger();
      expect(read.problems).toEqual([{ line: 1, rule: 'hash does not match the entry (seq 1): it was edited' }]);
    } finally {
      await s.close();
    }
  });

  it('a publish writes the ledger entry and the pointer together; the entry hashes as ledger.jsonl would', async () => {
    const s = open();
    try {
      const e = await s.publish(pointer('2026-01-02', 'r1'), { kind: 'publish', detail: { date: '2026-01-02' }, runId: 'r1' });
      const { hash, ...rest } = e;
      expect(hash).toBe(entryHash(rest));
      expect(e).toMatchObject({ seq: 1, kind: 'publish', run_id: 'r1', prev_hash: GENESIS });
      expect((await s.pointers.read('demo', '2026-01-02'))?.run_id).toBe('r1');
      expect((await s.readLedger()).entries).toEqual([e]);
    } finally {
      await s.close();
    }
  });

  it('a publish whose session dies before its commit writes neither the entry nor the pointer', async () => {
    const s = open();
    const locks = new PgRunLocks({ setting: { url: db.url, source: 'test', schema: s.schema } });
    const blocker = new pg.Client({ connectionString: db.url });
    await blocker.connect();
    try {
      await s.publish(pointer('2026-01-02', 'r1'), { kind: 'publish', detail: { n: 1 }, runId: 'r1' });
      const lock = (await locks.acquire({ name: 'demo', cmd: 'test', log: quiet })) as import('../../src/backend/pg/run-locks.js').HeldPgRunLock;
      // The pointer's row is held by another transaction: the publish waits there, after its ledger insert.
      await blocker.query('BEGIN');
      await blocker.query(`SELECT 1 FROM ${s.schema}.current_pointer WHERE pipeline = 'demo' AND date = '2026-01-02' FOR UPDATE`);
      const publishing = s.publish(pointer('2026-01-02', 'r2'), { kind: 'publish', detail: { n: 2 }, runId: 'r2' }, lock);
      const settled = publishing.then(
        () => null,
        (err: unknown) => err,
      );
      await waitFor(
        async () => (await blocker.query(`SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' AND application_name LIKE 'metaspn run-lock%'`, [db.name])).rowCount === 1,
        10_000,
        'the publish waiting on the pointer row',
      );
      // The lock session dies (its process was killed, its connection cut) mid-publish.
      await blocker.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'metaspn run-lock%'`, [db.name]);
      await blocker.query('ROLLBACK');
      expect(await settled).toBeInstanceOf(RunLockLostError);
      expect(lock.stillHeld()).toBe(false);
      const read = await s.readLedger();
      expect(read.entries.map((e) => e.run_id)).toEqual(['r1']);
      expect((await s.pointers.read('demo', '2026-01-02'))?.run_id).toBe('r1');
      await lock.release();
    } finally {
      await blocker.end().catch(() => undefined);
      await s.close();
    }
  });

  it('a publish fenced by a lock that was taken over writes nothing (30); the new holder publishes', async () => {
    const s = open();
    const locks = new PgRunLocks({ setting: { url: db.url, source: 'test', schema: s.schema } });
    try {
      const first = (await locks.acquire({ name: 'demo', cmd: 'test', ttlSec: 60, log: quiet })) as import('../../src/backend/pg/run-locks.js').HeldPgRunLock;
      const second = (await locks.acquire({ name: 'demo', cmd: 'test', forceBreak: true, reason: 'drill', log: quiet })) as import('../../src/backend/pg/run-locks.js').HeldPgRunLock;
      expect(second.generation).toBe(first.generation + 1);
      const late = await s.publish(pointer('2026-01-02', 'late'), { kind: 'publish', detail: {}, runId: 'late' }, first).catch((e: unknown) => e);
      expect(late).toBeInstanceOf(RunLockLostError);
      expect((late as RunLockLostError).exitCode).toBe(30);
      expect(await s.pointers.read('demo', '2026-01-02')).toBeNull();
      expect((await s.readLedger()).entries).toEqual([]);
      await s.publish(pointer('2026-01-02', 'r2'), { kind: 'publish', detail: {}, runId: 'r2' }, second);
      expect((await s.pointers.read('demo', '2026-01-02'))?.run_id).toBe('r2');
      await first.release();
      await second.release();
    } finally {
      await s.close();
    }
  });

  it('rollback over the database ledger: to a hash, to before the first publish (pointer removed), --strict refusing a pointer changed by hand', async () => {
    const s = open();
    const log = { warn: () => undefined } as unknown as import('pino').Logger;
    const base = { stores: s, log, pipeline: 'demo', verify: () => Promise.resolve(), reason: 'drill', dryRun: false, strict: false, runId: 'rb' };
    try {
      const p = (date: string, run: string): CurrentPointer => ({ ...pointer(date, run), summary_id: run });
      const e1 = await s.publish(p('2026-01-02', 'r1'), { kind: 'publish', detail: { pipeline: 'demo', date: '2026-01-02', pointer: p('2026-01-02', 'r1') }, runId: 'r1' });
      await s.publish(p('2026-01-03', 'r2'), { kind: 'publish', detail: { pipeline: 'demo', date: '2026-01-03', pointer: p('2026-01-03', 'r2') }, runId: 'r2' });
      await s.publish(p('2026-01-02', 'r3'), { kind: 'publish', detail: { pipeline: 'demo', date: '2026-01-02', pointer: p('2026-01-02', 'r3') }, runId: 'r3' });
      // To the state right after e1: 01-02 back to r1, 01-03 removed; one entry, both moves.
      const r = await pgRollback({ ...base, target: { toHash: e1.hash.slice(0, 10) } });
      expect(r.changes.map((c) => [c.date, c.from?.run_id ?? null, c.to?.run_id ?? null])).toEqual([
        ['2026-01-02', 'r3', 'r1'],
        ['2026-01-03', 'r2', null],
      ]);
      expect(r.ledger_entry).toMatchObject({ seq: 4, kind: 'rollback', detail: { target_hash: e1.hash, to_hash: e1.hash.slice(0, 10) } });
      expect((await s.pointers.read('demo', '2026-01-02'))?.run_id).toBe('r1');
      expect(await s.pointers.partitions('demo')).toEqual(['2026-01-02']);
      // Before the first publish: no pointer left.
      await pgRollback({ ...base, target: { steps: 1 } });
      expect(await s.pointers.partitions('demo')).toEqual([]);
      expect((await s.readLedger()).problems).toEqual([]);
      // A pointer written outside the ledger: a warning, or with --strict a refusal (30), nothing moved.
      await s.publish(p('2026-01-05', 'r5'), { kind: 'publish', detail: { pipeline: 'demo', date: '2026-01-05', pointer: p('2026-01-05', 'r5') }, runId: 'r5' });
      await s.pointers.write(p('2026-01-05', 'hand'));
      const strict = await pgRollback({ ...base, strict: true, target: { steps: 1 } }).catch((e: unknown) => e);
      expect((strict as Error).message).toBe('pointer of 2026-01-05 names run hand but the ledger says r5');
      expect((strict as { exitCode: number }).exitCode).toBe(30);
      expect((await s.pointers.read('demo', '2026-01-05'))?.run_id).toBe('hand');
      const lenient = await pgRollback({ ...base, dryRun: true, target: { steps: 1 } });
      expect(lenient.warnings).toEqual(['pointer of 2026-01-05 names run hand but the ledger says r5']);
      expect(((await pgRollback({ ...base, target: { toHash: 'ffffffffff' } }).catch((e: unknown) => e)) as { exitCode: number }).exitCode).toBe(64);
    } finally {
      await s.close();
    }
  });

  it('seal: the rows of an output set written since its last seal move to the end of the store, in the order given; rows sealed before stay; a tail in order is not rewritten', async () => {
    const s = open();
    const rows = s.rows('demo', 'sealed');
    const t = (id: string, date: string): { id: string; date: string; identity: string; text: string } => ({ id, date, identity: 'p', text: `{"date":"${date}","id":"${id}"}` });
    const exported = async (): Promise<string[]> => {
      let out = '';
      await s.exportRows('demo', 'sealed', (l) => void (out += l));
      return out
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { id: string }).id);
    };
    const seqs = async (): Promise<Record<string, string>> => {
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      try {
        return Object.fromEntries((await c.query<{ id: string; seq: string }>(`SELECT id, seq::text AS seq FROM ${s.schema}.artifact WHERE store = 'demo.sealed'`)).rows.map((r) => [r.id, r.seq]));
      } finally {
        await c.end();
      }
    };
    try {
      // Two output sets whose tasks committed interleaved, in no order.
      for (const [id, date] of [
        ['a3', '2026-01-02'],
        ['b2', '2026-01-03'],
        ['a1', '2026-01-02'],
        ['b1', '2026-01-03'],
        ['a2', '2026-01-02'],
      ] as const)
        await rows.putTexts([t(id, date)]);
      await rows.seal('2026-01-02', 'p', ['a1', 'a2', 'a3']);
      expect(await exported()).toEqual(['b2', 'b1', 'a1', 'a2', 'a3']);
      await rows.seal('2026-01-03', 'p', ['b1', 'b2']);
      expect(await exported()).toEqual(['a1', 'a2', 'a3', 'b1', 'b2']);
      // Sealed again with nothing new: nothing moves.
      const before = await seqs();
      await rows.seal('2026-01-02', 'p', ['a1', 'a2', 'a3']);
      expect(await seqs()).toEqual(before);
      // A row written to a sealed set later lands after what was sealed; the tail, in order, keeps its seq.
      await rows.putTexts([t('a4', '2026-01-02')]);
      const tail = (await seqs()).a4;
      await rows.seal('2026-01-02', 'p', ['a1', 'a2', 'a3', 'a4']);
      expect(await exported()).toEqual(['a1', 'a2', 'a3', 'b1', 'b2', 'a4']);
      expect((await seqs()).a4).toBe(tail);
      expect(await rows.texts('2026-01-02', 'p')).toEqual(['a1', 'a2', 'a3', 'a4'].map((id) => ({ id, text: t(id, '2026-01-02').text })));
    } finally {
      await s.close();
    }
  });

  it("digests and exported lines are the file backend's bytes for the same puts; a large put is one transaction", async () => {
    const s = open();
    const ws = workspacePaths(tempDir('metaspn-stores-pg-'));
    const f = new FileStores(ws);
    try {
      const batches = [
        [row('z', 1), row('m', 2, '2026-01-03')],
        [row('a', { nested: [1, 'é', { y: 2, x: 1 }] } as unknown as number), row('é', 4)],
        Array.from({ length: 12_000 }, (_, i) => row(`k${String(i).padStart(5, '0')}`, i)),
      ];
      for (const b of batches) {
        expect(await s.rows('demo', 'load').put(b)).toEqual(await f.rows('demo', 'load').put(b));
      }
      expect(await s.rows('demo', 'load').digest('2026-01-02', 'aaaaaaaaaaaaaaaa')).toEqual(await f.rows('demo', 'load').digest('2026-01-02', 'aaaaaaaaaaaaaaaa'));
      expect(await s.rows('demo', 'load').rows('2026-01-02', 'aaaaaaaaaaaaaaaa')).toEqual(await f.rows('demo', 'load').rows('2026-01-02', 'aaaaaaaaaaaaaaaa'));
      await f.close();
      let out = '';
      expect(await s.exportRows('demo', 'load', (l) => void (out += l))).toBe(12_004);
      expect(out).toBe(readFileSync(join(ws.store, 'demo.load.jsonl'), 'utf8'));
      let one = '';
      await s.exportRows('demo', 'load', (l) => void (one += l), '2026-01-03');
      expect(one).toBe(`${JSON.stringify(row('m', 2, '2026-01-03'), Object.keys(row('m', 2, '2026-01-03')).sort())}\n`);
      // A conflict anywhere in a large put writes none of it.
      const big = [...Array.from({ length: 6000 }, (_, i) => row(`n${i}`, i)), row('z', 99)];
      expect(await s.rows('demo', 'load').put(big)).toMatchObject({ written: 0, present: 0, conflicts: [{ id: row('z', 1).id }] });
      expect((await s.rows('demo', 'load').digest('2026-01-02', 'aaaaaaaaaaaaaaaa')).rows).toBe(12_003);
    } finally {
      await f.close();
      await s.close();
    }
  });
});
