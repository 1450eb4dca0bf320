/**
 * Retention on PostgreSQL: completed and cancelled tasks past `completed_retention_ms` (or beyond
 * the newest `completed_retention_count`) are deleted by PgQueue.prune, and `queue stats` still
 * counts them, as the file backend's stats do after a compaction. The database clock is moved by
 * hand (PgQueueOptions.dbNow).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgQueue } from '../../src/backend/pg/pg-queue.js';
import type { Owner } from '../../src/queue/types.js';
import { createTestDatabase, pgAvailable, type TestDatabase } from './pg-db.js';

const up = await pgAvailable();
let db: TestDatabase;
let reader: pg.Client;
let schemas = 0;
const ME: Owner = { id: 'me', pid: 1, host: 'h' };
const HOUR = 3_600_000;

async function rows(schema: string): Promise<Record<string, number>> {
  const r = await reader.query<{ state: number; n: number }>(`SELECT state, count(*)::int AS n FROM ${schema}.task GROUP BY state ORDER BY state`);
  return Object.fromEntries(r.rows.map((x) => [['ready', 'scheduled', 'leased', 'completed', 'dead', 'cancelled'][x.state]!, x.n]));
}

describe.skipIf(!up)('PostgreSQL: pruning completed tasks', () => {
  beforeAll(async () => {
    db = await createTestDatabase();
    reader = new pg.Client({ connectionString: db.url });
    await reader.connect();
  });
  afterAll(async () => {
    await reader?.end();
    await db?.drop();
  });

  function open(o: { ms?: number; count?: number } = {}) {
    const schema = `pr_${++schemas}`;
    let t = Date.UTC(2026, 0, 15, 12);
    const q = new PgQueue({
      name: 'q',
      setting: { url: db.url, source: 'test', schema },
      dbNow: () => t,
      now: () => t,
      presence: false,
      ...(o.ms !== undefined ? { completed_retention_ms: o.ms } : {}),
      ...(o.count !== undefined ? { completed_retention_count: o.count } : {}),
    });
    return { q, schema, advance: (ms: number) => void (t += ms) };
  }

  async function complete(q: PgQueue, n: number): Promise<void> {
    for (const c of await q.claim({ owner: ME, max: n, lease_ms: 60_000 })) expect(await q.complete(c.task.id, c.lease)).toBe(true);
  }

  it('past the retention time: the rows go, queue stats still counts them, an enqueue of a pruned id adds it afresh', async () => {
    const { q, schema, advance } = open({ ms: 24 * HOUR });
    await q.enqueue(['a', 'b', 'c', 'd', 'e'].map((id) => ({ id, payload: null, group: 'g' })));
    await complete(q, 2);
    advance(2 * HOUR);
    await complete(q, 1);
    expect(await q.cancel({ group: 'g', keep: new Set(['e']), by: 't', reason: 'test' })).toEqual(['d']);
    // 23 h after the first two: nothing is old enough.
    advance(21 * HOUR);
    expect(await q.prune()).toBe(0);
    advance(2 * HOUR);
    expect(await q.prune()).toBe(2);
    expect(await q.states(['a', 'b', 'c', 'd'])).toEqual([null, null, 'completed', 'cancelled']);
    expect(await rows(schema)).toEqual({ ready: 1, completed: 1, cancelled: 1 });
    expect(await q.stats()).toMatchObject({ ready: 1, completed: 3, cancelled: 1 });
    advance(3 * HOUR);
    expect(await q.prune()).toBe(2);
    expect(await q.stats()).toMatchObject({ ready: 1, completed: 3, cancelled: 1 });
    expect(await q.enqueue([{ id: 'a', payload: 1 }])).toEqual({ added: ['a'], existing: [], rerun: [] });
    expect(await q.stats()).toMatchObject({ ready: 2, completed: 3 });
    await q.close();
  });

  it('beyond the newest completed_retention_count: the oldest go first, in statements of at most 10,000 rows', async () => {
    const { q, schema, advance } = open({ count: 3 });
    await q.enqueue(Array.from({ length: 10_006 }, (_, i) => ({ id: `t${String(i).padStart(5, '0')}`, payload: null })));
    // Completed in batches one millisecond apart (ties: the later enqueued is the newer).
    for (let i = 0; i < 10_006; i += 2000) {
      const got = await q.claim({ owner: ME, max: 2000, lease_ms: 60_000 });
      expect(await Promise.all(got.map((c) => q.complete(c.task.id, c.lease)))).toEqual(got.map(() => true));
      advance(1);
    }
    expect(await q.prune()).toBe(10_003);
    const left = await reader.query<{ id: string }>(`SELECT id FROM ${schema}.task ORDER BY id`);
    expect(left.rows.map((x) => x.id)).toEqual(['t10003', 't10004', 't10005']);
    expect(await q.stats()).toMatchObject({ completed: 10_006 });
    await q.close();
  });
});
