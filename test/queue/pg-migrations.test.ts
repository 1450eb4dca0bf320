/** Migrations: versioned, idempotent, one migrator at a time, a newer schema refused. */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, type PgPool } from '../../src/backend/pg/connection.js';
import { LATEST_VERSION, MIGRATIONS, migrate, schemaVersion } from '../../src/backend/pg/migrations.js';
import { PgQueue } from '../../src/backend/pg/pg-queue.js';
import { createTestDatabase, pgAvailable, type TestDatabase } from './pg-db.js';

const up = await pgAvailable();
let db: TestDatabase;
const pools: PgPool[] = [];

describe.skipIf(!up)('PostgreSQL migrations', () => {
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.end().catch(() => undefined)));
    await db?.drop();
  });

  const setting = (schema: string) => ({ url: db.url, source: 'test', schema });

  it('four hosts migrating one fresh schema at once: each version applied exactly once, all of them end up current', async () => {
    const hosts = [0, 1, 2, 3].map(() => createPool(db.url, 2));
    pools.push(...hosts);
    const results = await Promise.all(hosts.map((p) => migrate(p, setting('race'))));
    for (const r of results) expect(r).toMatchObject({ schema: 'race', to: LATEST_VERSION });
    expect(results.flatMap((r) => r.applied).sort((a, b) => a - b)).toEqual(MIGRATIONS.map((m) => m.version));
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    const rows = (await c.query<{ version: number; name: string }>('SELECT version, name FROM race.schema_migrations ORDER BY version')).rows;
    await c.end();
    expect(rows).toEqual(MIGRATIONS.map((m) => ({ version: m.version, name: m.name })));
    // Idempotent: again, nothing to do.
    expect(await migrate(hosts[0]!, setting('race'))).toEqual({ schema: 'race', from: LATEST_VERSION, to: LATEST_VERSION, applied: [] });
  });

  it('a schema at version 1 is brought up to the latest by the first statement of a queue', async () => {
    const p = createPool(db.url, 2);
    pools.push(p);
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    // Version 1 only, as an older metaspn left it, with a task in it.
    await c.query('CREATE SCHEMA old');
    await c.query('CREATE TABLE old.schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())');
    await c.query(MIGRATIONS[0]!.sql.replace(/\bS\./g, '"old".'));
    await c.query(`INSERT INTO old.schema_migrations (version, name) VALUES (1, 'queue')`);
    const q1 = new PgQueue({ name: 'jobs', setting: setting('old'), pool: p, ownerAlive: () => true });
    expect(await schemaVersion(p, 'old')).toBe(1);
    await c.query(`INSERT INTO old.task (queue, id, state, seq, ready_seq, t, max_attempts, payload, created_at, updated_at)
                   VALUES ('jobs', 'kept', 0, nextval('old.task_seq'), nextval('old.ready_seq'), now(), 3, '{"n":1}', 'x', 'x')`);
    await c.end();
    expect(await q1.states(['kept'])).toEqual(['ready']);
    expect(await schemaVersion(p, 'old')).toBe(LATEST_VERSION);
    const [got] = await q1.claim({ owner: { id: 'o', pid: 1, host: 'h' }, max: 1, lease_ms: 1000 });
    expect(got!.task).toMatchObject({ id: 'kept', payload: { n: 1 } });
    await q1.close();
  });

  it('a newer schema is refused with one line (STATE_CORRUPT, exit 30), and nothing is written to it', async () => {
    const p = createPool(db.url, 2);
    pools.push(p);
    await migrate(p, setting('newer'));
    await p.query(`INSERT INTO newer.schema_migrations (version, name) VALUES ($1, 'from the future')`, [LATEST_VERSION + 1]);
    const q = new PgQueue({ name: 'jobs', setting: setting('newer'), pool: p });
    const refused = await q.enqueue([{ id: 'a', payload: 1 }]).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'STATE_CORRUPT', exitCode: 30 });
    expect((refused as Error).message).toBe(
      `PostgreSQL schema newer at 127.0.0.1:5432/${db.name} is at version ${LATEST_VERSION + 1}, newer than this metaspn knows (${LATEST_VERSION}); refusing to use it`,
    );
    await expect(migrate(p, setting('newer'))).rejects.toMatchObject({ code: 'STATE_CORRUPT' });
    expect((await p.query('SELECT count(*)::int AS n FROM newer.task')).rows).toEqual([{ n: 0 }]);
    await q.close();
  });
});
