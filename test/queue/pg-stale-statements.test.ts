/**
 * The queue's named statements (statements.ts `prepared`) outlive what the server knows of them:
 * a schema change that alters a column a prepared statement returns ("cached plan must not change
 * result type", 0A000), or a session whose statements were dropped (`DEALLOCATE ALL`, `DISCARD
 * ALL` by a pooler: "prepared statement … does not exist", 26000). Either refuses the statement
 * before it runs; the queue must then prepare it again on a fresh connection, not fail the worker
 * (with unnamed statements, a worker draining through such a migration never noticed it).
 * One connection in the pool, so the statements the test makes stale are the ones the queue uses.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, type PgPool } from '../../src/backend/pg/connection.js';
import { PgQueue } from '../../src/backend/pg/pg-queue.js';
import type { Owner } from '../../src/queue/types.js';
import { createTestDatabase, pgAvailable, type TestDatabase } from './pg-db.js';

const up = await pgAvailable();
let db: TestDatabase;
const pools: PgPool[] = [];

beforeAll(async () => {
  if (up) db = await createTestDatabase();
});

afterAll(async () => {
  await Promise.all(pools.map((p) => p.end()));
  if (up) await db.drop();
});

const owner: Owner = { id: 'o1', pid: 1, host: 'h' };
const err = { kind: 'transient', class: 'Error', message: 'boom', at: '2026-01-15T12:00:00.000Z' } as const;

/** A queue of schema `stale` on a pool of one connection (returned, to act on that connection). */
function oneConnectionQueue(name: string): { q: PgQueue; pool: PgPool } {
  const pool = createPool(db.url, 1);
  pools.push(pool);
  return { q: new PgQueue({ name, setting: { url: db.url, source: 'test', schema: 'stale' }, pool }), pool };
}

/** Claims, completes (plain and with effects), fails and reclaims: every named statement of a drain. */
async function drainSome(q: PgQueue, n: number): Promise<void> {
  const got = await q.claim({ owner, max: n, lease_ms: 60_000, start_first: n });
  expect(got).toHaveLength(n);
  expect(await q.complete(got[0]!.task.id, got[0]!.lease)).toBe(true);
  const outcome = await q.completeWithEffects(got[1]!.task.id, got[1]!.lease, [{ kind: 'append', log: 'stale', body: { id: got[1]!.task.id } }]);
  expect(outcome).toEqual({ status: 'completed' });
  expect(await q.fail(got[2]!.task.id, got[2]!.lease, err, 0)).toBeTruthy();
  await q.reclaimExpired();
}

describe.skipIf(!up)('PostgreSQL queue: named statements the server no longer holds as prepared', () => {
  it('a migration changes a column the claim returns while a worker drains: the next claim prepares it again', async () => {
    const { q } = oneConnectionQueue('ddl');
    await q.enqueue(Array.from({ length: 20 }, (_, i) => ({ id: `t${i}`, payload: i })));
    await drainSome(q, 3);
    await db.query('ALTER TABLE stale.task ALTER COLUMN max_attempts TYPE bigint');
    await drainSome(q, 3);
    expect(await q.stats()).toMatchObject({ completed: 4 });
    await q.close();
  });

  it('the session forgot its statements (DEALLOCATE ALL, DISCARD ALL): each is prepared again', async () => {
    const { q, pool } = oneConnectionQueue('discard');
    await q.enqueue(Array.from({ length: 20 }, (_, i) => ({ id: `t${i}`, payload: i })));
    await drainSome(q, 3);
    await pool.query('DEALLOCATE ALL');
    await drainSome(q, 3);
    await pool.query('DISCARD ALL');
    await drainSome(q, 3);
    expect(await q.stats()).toMatchObject({ completed: 6 });
    await q.close();
  });
});
