import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, pgAvailable, type TestDatabase } from '../queue/pg-db.js';
import { tempWorkspace } from './cli.js';
import { cliIn as cli } from './in-process.js';

/** `doctor` on PostgreSQL: the database is checked too (schema version, counters against rows, expired leases, the ledger), read-only. */
const up = await pgAvailable();
let db: TestDatabase;

async function sql(text: string, values: unknown[] = []): Promise<void> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    await c.query(text, values);
  } finally {
    await c.end();
  }
}

interface Report {
  exit_code: number;
  findings: { severity: string; area: string; path: string; message: string }[];
}
// The CLI in this process: a process of its own adds nothing to what doctor reads.
const doctorJson = async (ws: string, env: NodeJS.ProcessEnv): Promise<Report> => JSON.parse((await cli(['doctor', '--workspace', ws, '--json'], { env })).stdout) as Report;

describe.skipIf(!up)('doctor on PostgreSQL', () => {
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('checks the database: clean after work; counters that drifted from the rows (--repair counts them again), a schema newer than this metaspn, an unreachable server: 11 (nothing could be checked: try again later), each named', async () => {
    const env = { METASPN_DATABASE_URL: db.url };
    const ws = tempWorkspace({ demo: false });
    for (const id of ['a', 'b', 'c']) expect((await cli(['queue', 'enqueue', 'jobs', '--workspace', ws, '--payload', '{}', '--id', id], { env })).code).toBe(0);
    const clean = await doctorJson(ws, env);
    expect(clean.findings.filter((x) => x.area === 'database' || x.area === 'ledger')).toEqual([]);
    expect(clean.exit_code).toBe(0);

    // A counter changed by hand: named with the queue, the state and both numbers.
    await sql(`UPDATE metaspn.queue_counts SET n = n + 5 WHERE queue = 'jobs' AND kind = 0 AND slot = (SELECT min(slot) FROM metaspn.queue_counts WHERE queue = 'jobs' AND kind = 0)`);
    const drift = await doctorJson(ws, env);
    expect(drift.exit_code).toBe(30);
    expect(drift.findings).toContainEqual(
      expect.objectContaining({
        severity: 'error',
        area: 'database',
        path: expect.stringMatching(/^pg:127\.0\.0\.1:5432\/.+\/metaspn\.queue_counts\/jobs$/),
        message: 'ready tasks counted 8, rows 3',
      }),
    );
    // --repair counts them again from the rows, under the counters' table lock; the totals (history) are left as they were.
    const totals = async (): Promise<string> => {
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      try {
        return JSON.stringify((await c.query(`SELECT kind, sum(n)::int AS n FROM metaspn.queue_counts WHERE queue = 'jobs' GROUP BY kind ORDER BY kind`)).rows);
      } finally {
        await c.end();
      }
    };
    // A dead task counted that has no row, and failures counted (history: kept).
    await sql(`INSERT INTO metaspn.queue_counts (queue, slot, kind, n) VALUES ('jobs', 3, 10, 2), ('jobs', 3, 4, 1) ON CONFLICT (queue, slot, kind) DO UPDATE SET n = excluded.n`);
    const fixed = JSON.parse((await cli(['doctor', '--workspace', ws, '--json', '--repair'], { env })).stdout) as Report & { findings: { repaired?: boolean }[] };
    expect(fixed.exit_code).toBe(0);
    expect(fixed.findings.filter((x) => x.area === 'database')).toEqual([
      expect.objectContaining({ message: 'ready tasks counted 8, rows 3', repaired: true }),
      expect.objectContaining({ message: 'dead tasks counted 1, rows 0', repaired: true }),
    ]);
    expect(await totals()).toBe(
      JSON.stringify([
        { kind: 0, n: 3 },
        { kind: 10, n: 2 },
      ]),
    );
    expect((await doctorJson(ws, env)).exit_code).toBe(0);

    // A schema newer than this metaspn: an error, nothing else read.
    await sql(`INSERT INTO metaspn.schema_migrations (version, name) VALUES (999, 'from the future')`);
    const newer = await doctorJson(ws, env);
    expect(newer.exit_code).toBe(30);
    expect(newer.findings).toContainEqual(expect.objectContaining({ area: 'database', message: expect.stringMatching(/^schema version 999 is newer than this metaspn knows/) }));
    await sql(`DELETE FROM metaspn.schema_migrations WHERE version = 999`);

    // Nobody listening: one finding naming the server, 11 as for every other command on an
    // unreachable database (cron retries later; not 30, which tells the operator to freeze), no stack.
    const down = await cli(['doctor', '--workspace', ws, '--database-url', 'postgres://postgres@127.0.0.1:1/none']);
    expect(down.code).toBe(11);
    expect(down.stdout).toMatch(/^ERROR\s+pg:127\.0\.0\.1:1\/none\/metaspn: .*127\.0\.0\.1:1/m);
    expect(down.stderr).not.toMatch(/\n\s+at /);
  }, 120_000);
});
