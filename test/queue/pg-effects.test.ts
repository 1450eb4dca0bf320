/**
 * Task effects on PostgreSQL: the conformance suite (effects-conformance.ts) with effects and the
 * completion in one transaction, and what one transaction buys: a connection cut before, during
 * or after the commit leaves the effects exactly once.
 */
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, type PgPool } from '../../src/backend/pg/connection.js';
import { PgQueue } from '../../src/backend/pg/pg-queue.js';
import { describeEffectsBackend, row } from './effects-conformance.js';
import { createTestDatabase, pgAvailable, type TestDatabase } from './pg-db.js';
import { startProxy } from './pg-proxy.js';
import { run } from '../integration/cli.js';
import { tempDir } from '../temp.js';

const up = await pgAvailable();
let db: TestDatabase;
let reader: pg.Client;
const pools: PgPool[] = [];
let schemas = 0;

function pool(url = db.url): PgPool {
  const p = createPool(url, 2);
  pools.push(p);
  return p;
}

async function logOf(schema: string, log: string): Promise<{ task_id: string; fence: number; body: unknown }[]> {
  const r = await reader.query<{ task_id: string; fence: string; body: string }>(`SELECT task_id, fence::text AS fence, body FROM ${schema}.effect_log WHERE log = $1 ORDER BY seq`, [log]);
  return r.rows.map((x) => ({ task_id: x.task_id, fence: Number(x.fence), body: JSON.parse(x.body) as unknown }));
}

describe.skipIf(!up)('PostgreSQL', () => {
  beforeAll(async () => {
    db = await createTestDatabase();
    reader = new pg.Client({ connectionString: db.url });
    await reader.connect();
  });
  afterAll(async () => {
    await reader?.end();
    await Promise.all(pools.map((p) => p.end().catch(() => undefined)));
    await db?.drop();
  });

  describeEffectsBackend('postgres', async (name) => {
    const schema = `fx_${++schemas}`;
    const queue = new PgQueue({ name, setting: { url: db.url, source: 'test', schema }, pool: pool() });
    return {
      queue,
      commit: queue,
      rows: async (store) => {
        const r = await reader.query<{ id: string; body: string }>(`SELECT id, body FROM ${schema}.artifact WHERE store = $1 ORDER BY seq`, [store]);
        return new Map(r.rows.map((x) => [x.id, x.body]));
      },
      log: (log) => logOf(schema, log),
      close: () => queue.close(),
    };
  });

  for (const isolation of ['thread', 'process'] as const) {
    it(`worker run --isolation ${isolation}: the effects a handler records in its isolate come back and commit with the acknowledgement`, async () => {
      const ws = tempDir('metaspn-fx-');
      const env = { METASPN_DATABASE_URL: db.url };
      const q = new PgQueue({ name: 'pgchaos', setting: { url: db.url, source: 'test' }, pool: pool() });
      const ids = Array.from({ length: 10 }, (_, i) => `${isolation}-${i}`);
      await q.enqueue(ids.map((id, n) => ({ id, payload: { n } })));
      const r = await run(['worker', 'run', `${join(import.meta.dirname, '..', 'chaos', 'pg-workers.mjs')}:Effects`, '--workspace', ws, '--once', '--isolation', isolation, '--concurrency', '2', '--quiet'], { env });
      expect(r.code, r.stderr).toBe(0);
      const logged = await reader.query<{ task_id: string }>(`SELECT task_id FROM metaspn.effect_log WHERE log = 'chaos' AND task_id LIKE $1 ORDER BY task_id`, [`${isolation}-%`]);
      expect(logged.rows.map((x) => x.task_id)).toEqual([...ids].sort());
      const rows = await reader.query<{ n: number }>(`SELECT count(*)::int AS n FROM metaspn.artifact WHERE store = 'chaos.effects' AND id LIKE $1`, [`${isolation}-%`]);
      expect(rows.rows[0]!.n).toBe(10);
      expect(await q.stats()).toMatchObject({ leased: 0, ready: 0 });
      await q.close();
    });
  }

  it('an unreachable database: lease_lost, never a throw (as a plain completion); one call or a batch', async () => {
    const q = new PgQueue({ name: 'q', setting: { url: 'postgres://postgres@127.0.0.1:1/none', source: 'test' }, presence: false });
    const lease = { owner: 'me', fence: 1, expires_at: 0 };
    const effects = [{ kind: 'append' as const, log: 'ledger', body: 1 }];
    expect(await q.completeWithEffects('a', lease, effects)).toEqual({ status: 'lease_lost' });
    expect(await Promise.all(['b', 'c'].map((id) => q.completeWithEffects(id, lease, effects)))).toEqual([{ status: 'lease_lost' }, { status: 'lease_lost' }]);
    await q.close();
  });

  describe('a connection cut around the commit leaves the effects exactly once', () => {
    const cuts = [
      { name: 'before the server sees the COMMIT: rolled back, the lease still held, so it is committed again', cut: { when: 'request', match: 'COMMIT' } },
      { name: 'after the server committed, before the holder heard: the fence says it was this holder\'s', cut: { when: 'response', match: 'COMMIT' } },
      { name: 'while the effects are being written: rolled back, then committed once', cut: { when: 'request', match: 'effect_log' } },
    ] as const;
    for (const when of ['request', 'response'] as const) {
      it(`a batch of three cut ${when === 'request' ? 'before' : 'after'} its COMMIT: each task settled by its fence, each effect once`, async () => {
        const schema = `cut_${++schemas}`;
        const proxy = await startProxy({ host: new URL(db.url).hostname, port: Number(new URL(db.url).port || 5432) });
        const u = new URL(db.url);
        u.port = String(proxy.port);
        const direct = new PgQueue({ name: 'q', setting: { url: db.url, source: 'test', schema }, pool: pool() });
        const viaProxy = new PgQueue({ name: 'q', setting: { url: db.url, source: 'test', schema }, pool: pool(u.toString()), presence: false });
        const ids = ['a', 'b', 'c'];
        await direct.enqueue(ids.map((id) => ({ id, payload: null })));
        const got = await viaProxy.claim({ owner: { id: 'holder', pid: 1, host: 'h' }, max: 3, lease_ms: 60_000 });
        proxy.arm({ when, match: 'COMMIT' });
        const outs = await Promise.all(got.map((g) => viaProxy.completeWithEffects(g.task.id, g.lease, [{ kind: 'append', log: 'ledger', body: g.task.id }])));
        await proxy.cutDone();
        expect(outs).toEqual(ids.map(() => ({ status: 'completed' })));
        expect((await logOf(schema, 'ledger')).map((e) => e.task_id).sort()).toEqual(ids);
        expect(await direct.stats()).toMatchObject({ completed: 3, leased: 0 });
        await Promise.all([direct.close(), viaProxy.close(), proxy.close()]);
      });
    }
    for (const c of cuts) {
      it(c.name, async () => {
        const schema = `cut_${++schemas}`;
        const proxy = await startProxy({ host: new URL(db.url).hostname, port: Number(new URL(db.url).port || 5432) });
        const u = new URL(db.url);
        u.port = String(proxy.port);
        const direct = new PgQueue({ name: 'q', setting: { url: db.url, source: 'test', schema }, pool: pool() });
        const viaProxy = new PgQueue({ name: 'q', setting: { url: db.url, source: 'test', schema }, pool: pool(u.toString()), presence: false });
        await direct.enqueue([{ id: 'a', payload: null }]);
        const [held] = await viaProxy.claim({ owner: { id: 'holder', pid: 1, host: 'h' }, max: 1, lease_ms: 60_000 });
        proxy.arm(c.cut);
        const out = await viaProxy.completeWithEffects('a', held!.lease, [
          { kind: 'rows', pipeline: 'p', step: 's', rows: [row('r1', 1)] },
          { kind: 'append', log: 'ledger', body: 'a' },
        ]);
        await proxy.cutDone();
        expect(out).toEqual({ status: 'completed' });
        expect(await logOf(schema, 'ledger')).toEqual([{ task_id: 'a', fence: held!.lease.fence, body: 'a' }]);
        expect((await reader.query(`SELECT id FROM ${schema}.artifact`)).rows).toEqual([{ id: 'r1' }]);
        expect(await direct.stats()).toMatchObject({ completed: 1, leased: 0 });
        await Promise.all([direct.close(), viaProxy.close(), proxy.close()]);
      });
    }
  });
});
