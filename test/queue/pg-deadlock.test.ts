/**
 * A transaction the server fails to break a deadlock (SQLSTATE 40P01) was rolled back whole: the
 * backend runs it again instead of failing the worker (one fail-once drain of ten died so at 100k
 * tasks: a claim and a failure batch of two sessions upserting the same counter rows in different
 * orders). Here two transactions lock two rows in opposite orders, each waiting for the other to
 * hold its first: the server fails one after its deadlock_timeout, and both must end committed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, DEADLOCK_RETRIES, inTransaction, isDeadlock, type PgPool } from '../../src/backend/pg/connection.js';
import { createTestDatabase, pgAvailable, type TestDatabase } from './pg-db.js';

const up = await pgAvailable();
let db: TestDatabase;
let pool: PgPool;

beforeAll(async () => {
  if (!up) return;
  db = await createTestDatabase();
  pool = createPool(db.url, 4);
});

afterAll(async () => {
  if (!up) return;
  await pool.end();
  await db.drop();
});

describe.skipIf(!up)('PostgreSQL: a transaction that loses a deadlock', () => {
  it('runs again and commits; the other commits too, and each change is applied once', async () => {
    await pool.query('CREATE TABLE dl (k int PRIMARY KEY, n int NOT NULL)');
    await pool.query('INSERT INTO dl VALUES (1, 0), (2, 0)');
    let runs = 0;
    let holding = 0;
    let bothHold!: () => void;
    const both = new Promise<void>((resolve) => (bothHold = resolve));
    const crossing = (first: number, second: number): Promise<string> =>
      inTransaction(pool, async (c) => {
        runs++;
        await c.query('UPDATE dl SET n = n + 1 WHERE k = $1', [first]);
        if (++holding === 2) bothHold();
        await both;
        await c.query('UPDATE dl SET n = n + 10 WHERE k = $1', [second]);
        return `${first}${second}`;
      });
    expect(await Promise.all([crossing(1, 2), crossing(2, 1)])).toEqual(['12', '21']);
    // Three runs: one of the two was failed by the server and ran again.
    expect(runs).toBe(3);
    expect((await pool.query<{ k: number; n: number }>('SELECT k, n FROM dl ORDER BY k')).rows).toEqual([
      { k: 1, n: 11 },
      { k: 2, n: 11 },
    ]);
  });

  it('gives up after DEADLOCK_RETRIES more runs and throws the server error', async () => {
    let runs = 0;
    const err = await inTransaction(pool, async () => {
      runs++;
      throw Object.assign(new Error('deadlock detected'), { code: '40P01' });
    }).catch((e: unknown) => e);
    expect(isDeadlock(err)).toBe(true);
    expect(runs).toBe(1 + DEADLOCK_RETRIES);
  });
});
