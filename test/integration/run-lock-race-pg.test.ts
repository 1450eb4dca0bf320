// A forced break of the PostgreSQL run lock through the real CLI, and the rights it takes: a role
// with pg_signal_backend ends a live holder's session (of another role), one without is refused
// (exit 20, one line and its hint), the holder keeps its lock. The races and takeovers after a
// SIGKILL are in the chaos suite (test/chaos/pg-run-lock.test.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PgRunLocks } from '../../src/backend/pg/run-locks.js';
import { MetaspnError } from '../../src/guard/errors.js';
import { createTestDatabase, PG_ADMIN_URL, pgAvailable, type TestDatabase } from '../queue/pg-db.js';
import { writeFileSync } from 'node:fs';
import { ROOT, until } from './cli.js';
import { cliIn } from './in-process.js';
import { raceWorkspace } from './run-lock-race.js';

const up = await pgAvailable();
let db: TestDatabase;
const children = new Set<ChildProcess>();

async function admin(url: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

/** `url` logging in as `role` (the test server trusts local logins). */
function as(url: string, role: string): string {
  const u = new URL(url);
  u.username = role;
  u.password = '';
  return u.toString();
}

describe.skipIf(!up)('the run lock on PostgreSQL, through the CLI', () => {
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterEach(() => {
    for (const c of children) c.kill('SIGKILL');
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('--force-lock-break ends a live holder of another role with pg_signal_backend; without it: exit 20, the holder keeps the lock', async () => {
    const tag = randomBytes(3).toString('hex');
    const [holderRole, breaker, weak] = [`metaspn_t_${tag}_holder`, `metaspn_t_${tag}_breaker`, `metaspn_t_${tag}_weak`];
    const schema = 'rights';
    try {
      await admin(PG_ADMIN_URL, `CREATE ROLE ${holderRole} LOGIN; CREATE ROLE ${breaker} LOGIN IN ROLE pg_signal_backend; CREATE ROLE ${weak} LOGIN`);
      // The holder's role creates the schema (CREATE on the database); the others get the usual rights on its tables.
      await admin(db.url, `GRANT CREATE ON DATABASE ${db.name} TO ${holderRole}`);
      await new PgRunLocks({ setting: { url: as(db.url, holderRole), source: 'test', schema } }).status('daily');
      await admin(
        as(db.url, holderRole),
        `GRANT USAGE ON SCHEMA ${schema} TO ${breaker}, ${weak}; GRANT ALL ON ALL TABLES IN SCHEMA ${schema} TO ${breaker}, ${weak}; GRANT ALL ON ALL SEQUENCES IN SCHEMA ${schema} TO ${breaker}, ${weak}`,
      );
      const holder = spawn(process.execPath, [join(ROOT, 'test', 'fixtures', 'hold-pg-run-lock.mjs'), as(db.url, holderRole), schema, 'race'], { stdio: ['ignore', 'pipe', 'inherit'] });
      children.add(holder);
      let out = '';
      holder.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
      await until(() => out.includes('"acquired"'), 20_000, 'the holder to take the lock');

      // Without pg_signal_backend: refused, one line, exit 20; the holder keeps its lock.
      const ws = raceWorkspace();
      writeFileSync(join(ws, 'metaspn.config.json'), JSON.stringify({ pipelines: { race: './race.mjs' }, backend: { schema } }));
      const r = await cliIn(['pipeline', 'run', 'race', '--workspace', ws, '--date', '2026-01-15', '--force-lock-break', '--reason', 'stuck'], {
        env: { METASPN_DATABASE_URL: as(db.url, weak), RACE_DIR: ws },
      });
      expect(r.code, r.stderr).toBe(20);
      expect(r.stderr).toMatch(
        new RegExp(
          `^error: METASPN_DATABASE_URL: cannot break run lock race held by pid ${String(holder.pid)} on .*: role ${weak} may not end the holder's session \\(must be a member of the role whose process is being terminated or member of pg_signal_backend\\)\nhint: grant it: GRANT pg_signal_backend TO ${weak};`,
        ),
      );
      const weakLocks = new PgRunLocks({ setting: { url: as(db.url, weak), source: 'METASPN_DATABASE_URL', schema } });
      const refused = await weakLocks.acquire({ name: 'race', cmd: 'test', forceBreak: true, reason: 'stuck', log: { warn: () => undefined, info: () => undefined } }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(MetaspnError);
      expect((refused as MetaspnError).exitCode).toBe(20);
      expect((refused as MetaspnError).message).toMatch(
        new RegExp(
          `^METASPN_DATABASE_URL: cannot break run lock race held by pid ${String(holder.pid)} on \\S+ .*: role ${weak} may not end the holder's session \\(must be a member of the role whose process is being terminated or member of pg_signal_backend\\)$`,
        ),
      );
      expect((refused as MetaspnError).hint).toBe(
        `grant it: GRANT pg_signal_backend TO ${weak}; (a superuser's session needs a superuser), or break the lock as the holder's role; nothing was changed`,
      );
      expect(await weakLocks.status('race')).toMatchObject({ held: true, holder_alive: true, payload: { pid: holder.pid, generation: 1 } });
      expect(out).not.toContain('"compromised"');

      // With it: the holder's session is ended, the breaker holds the next generation.
      const locks = new PgRunLocks({ setting: { url: as(db.url, breaker), source: 'test', schema } });
      const lock = await locks.acquire({ name: 'race', cmd: 'test', forceBreak: true, reason: 'stuck', log: { warn: () => undefined, info: () => undefined } });
      expect(lock.broke).toMatchObject({ why: 'forced', holder: { pid: holder.pid } });
      expect(lock.payload.generation).toBe(2);
      await until(() => out.includes('"compromised"'), 20_000, 'the holder to learn it lost the lock');
      await lock.release();
    } finally {
      for (const c of children) c.kill('SIGKILL');
      await db.drop();
      db = await createTestDatabase();
      await admin(PG_ADMIN_URL, `DROP ROLE IF EXISTS ${holderRole}; DROP ROLE IF EXISTS ${breaker}; DROP ROLE IF EXISTS ${weak}`);
    }
  }, 120_000);
});
