/**
 * A throwaway PostgreSQL database per test file, on the local server (CI: 127.0.0.1:5432, trust
 * auth). `METASPN_TEST_PG` names another server's admin URL (a database to connect to for CREATE
 * DATABASE). When no server answers, the PostgreSQL suites are skipped and say so.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { QueueOptions } from '../../src/queue/options.js';

/** Where test databases are created from. */
export const PG_ADMIN_URL = process.env.METASPN_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';

let available: Promise<boolean> | null = null;

/** True when the admin database answers (checked once per file). */
export function pgAvailable(): Promise<boolean> {
  available ??= (async () => {
    const c = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 3000 });
    try {
      await c.connect();
      await c.query('SELECT 1');
      return true;
    } catch {
      process.stderr.write(`PostgreSQL suites SKIPPED: no server at ${PG_ADMIN_URL.replace(/:[^:@/]*@/, ':***@')} (set METASPN_TEST_PG to an admin URL)\n`);
      return false;
    } finally {
      await c.end().catch(() => undefined);
    }
  })();
  return available;
}

/** URL of `db` on the admin URL's server. */
function urlOf(db: string): string {
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${db}`;
  return u.toString();
}

async function admin<T>(f: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try {
    return await f(c);
  } finally {
    await c.end();
  }
}

export interface TestDatabase {
  name: string;
  url: string;
  /** The rows of one statement, on a connection of its own (opened and closed around it). */
  query<T extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<T[]>;
  /** Drops the database, ending any session still connected to it. */
  drop(): Promise<void>;
}

/** Creates `metaspn_t_<random>`. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `metaspn_t_${randomBytes(6).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  const url = urlOf(name);
  return {
    name,
    url,
    query: async <T extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<T[]> => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        return (await c.query<T>(text, values)).rows;
      } finally {
        await c.end();
      }
    },
    drop: () => admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}

/**
 * The test clock for the database (PgQueueOptions.dbNow) from a conformance test's clock:
 * - a FakeClock (`now`): the database reads the same time;
 * - a StepClock (`clock`): a clock that never steps, as a server's clock is to its clients. It
 *   advances by the test's monotonic clock on one boot, and by its wall clock across a reboot of
 *   the caller (which leaves the database's time alone); a `step` of the caller's wall clock does
 *   not move it.
 * The caller keeps its own clock for the record's times and for display, as in production.
 */
export function dbClockOf(opts: Pick<QueueOptions, 'now' | 'clock'>): (() => number) | undefined {
  const clock = opts.clock;
  if (clock) {
    let last = clock.read();
    let t = last.wall;
    return () => {
      const r = clock.read();
      t += r.boot !== null && r.boot === last.boot ? r.mono - last.mono : r.wall - last.wall;
      last = r;
      return t;
    };
  }
  return opts.now;
}
