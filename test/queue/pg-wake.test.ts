/**
 * LISTEN/NOTIFY on PostgreSQL: an idle worker (its poll interval a minute) runs a task enqueued on
 * another host within moments, also after its listening session was terminated.
 */
import pino from 'pino';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolvePolicy } from '../../src/config/policy.js';
import { createPool, type PgPool } from '../../src/backend/pg/connection.js';
import { PgQueue } from '../../src/backend/pg/pg-queue.js';
import { runWorker } from '../../src/runtime/runner.js';
import { workspacePaths } from '../../src/storage/paths.js';
import { until } from '../wait.js';
import { createTestDatabase, pgAvailable, type TestDatabase } from './pg-db.js';

const up = await pgAvailable();
let db: TestDatabase;
let admin: pg.Client;
const pools: PgPool[] = [];

function queue(): PgQueue {
  const pool = createPool(db.url, 2);
  pools.push(pool);
  return new PgQueue({ name: 'q', setting: { url: db.url, source: 'test', schema: 'wake' }, pool });
}

/** The worker's listening session, once it listens and waits. */
const listening = async (): Promise<number | null> =>
  (await admin.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'metaspn listen' AND query ILIKE 'LISTEN%'`)).rows[0]?.pid ?? null;

describe.skipIf(!up)('PostgreSQL: idle workers wake on new tasks', () => {
  beforeAll(async () => {
    db = await createTestDatabase();
    admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.end();
    await Promise.all(pools.map((p) => p.end().catch(() => undefined)));
    await db?.drop();
  });

  it('a task enqueued on another host runs within moments, not after the minute of polling; also after the listening session was terminated', async () => {
    const mine = queue();
    const other = queue();
    const done: string[] = [];
    const stop = new AbortController();
    const policy = resolvePolicy({ poll_ms: 60_000, concurrency: 1 });
    const run = runWorker({
      queue: mine,
      worker: { name: 'q', isolation: 'none', handle: (t) => void done.push(t.id) },
      owner: { id: 'w', pid: process.pid, host: 'h' },
      policy,
      once: false,
      init: { logger: pino({ level: 'silent' }), workspace: workspacePaths('/nonexistent'), env: {} },
      stop: stop.signal,
      now: Date.now,
      sleep: (ms, signal) => new Promise((r) => { const t = setTimeout(r, ms); signal.addEventListener('abort', () => { clearTimeout(t); r(); }, { once: true }); }),
      random: () => 0.5,
    });
    await until(listening, 10_000, 'the worker to listen');
    const t0 = performance.now();
    await other.enqueue([{ id: 'a', payload: null }]);
    await until(() => done.includes('a'), 10_000, 'task a to run');
    const first = performance.now() - t0;

    // Its session ends (an operator, a failover): it listens again on a new one.
    const pid = (await listening())!;
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    await until(async () => { const p = await listening(); return p !== null && p !== pid; }, 10_000, 'a new listening session');
    const t1 = performance.now();
    await other.enqueue([{ id: 'b', payload: null }]);
    await until(() => done.includes('b'), 10_000, 'task b to run');
    const second = performance.now() - t1;

    stop.abort();
    expect(await run).toMatchObject({ completed: 2 });
    expect(first).toBeLessThan(10_000);
    expect(second).toBeLessThan(10_000);
    await Promise.all([mine.close(), other.close()]);
  });
});
