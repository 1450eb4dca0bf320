/**
 * `doctor` on PostgreSQL: what the database keeps for a workspace. The schema's version (behind: a
 * warning, `metaspn db migrate`; newer than this metaspn: an error), the task counters against the
 * rows they count, leases past their expiry, and the ledger's hash chain. The check writes
 * nothing; `--repair` writes one thing, counters that drifted (recountTasks). A database that
 * cannot be reached is one error naming it.
 */
import { targetOf } from '../backend/pg/setting.js';
import { createPool, inTransaction, pgError } from '../backend/pg/connection.js';
import { LATEST_VERSION, quoteSchema, schemaVersion } from '../backend/pg/migrations.js';
import { PgStores } from '../backend/pg/stores.js';
import type { PgSetting } from '../backend/pg/setting.js';
import type { Findings } from './finding.js';

/** Task states the counters keep exactly (completed and cancelled rows are pruned while still counted). */
const EXACT_STATES: Readonly<Record<number, string>> = { 0: 'ready', 1: 'scheduled', 2: 'leased', 4: 'dead' };

/** What a repair of the database would do ({@link checkDatabase}). */
export interface DatabasePlan {
  /** Queues whose counters of ready, scheduled, leased or dead tasks disagree with the rows. */
  recount: string[];
}

/**
 * Checks the database `setting` names; adds what it finds to `f` (area `database`, paths
 * `pg:<host:port/db>/<schema>…`) and returns what `--repair` may fix. Reads only.
 */
export async function checkDatabase(setting: PgSetting, f: Findings): Promise<DatabasePlan> {
  const plan: DatabasePlan = { recount: [] };
  const where = `pg:${targetOf(setting.url)}/${setting.schema}`;
  const s = quoteSchema(setting.schema);
  const pool = createPool(setting.url, 1, 'metaspn doctor');
  try {
    let version: number;
    try {
      version = await schemaVersion(pool, setting.schema);
    } catch (err) {
      const e = pgError(err, setting, 'reading the schema version');
      f.error('database', where, e.message, `check the database (${setting.source}) is reachable; every command on it fails until then`, e.exitCode);
      return plan;
    }
    if (version === 0) {
      f.info('database', where, 'no metaspn tables yet (nothing has run on this database)', 'metaspn db migrate creates them (any command does at start)');
      return plan;
    }
    if (version > LATEST_VERSION) {
      f.error(
        'database',
        `${where}.schema_migrations`,
        `schema version ${version} is newer than this metaspn knows (${LATEST_VERSION})`,
        'run a metaspn at least as new as the one that migrated it, on every host',
      );
      return plan;
    }
    if (version < LATEST_VERSION)
      f.warn('database', `${where}.schema_migrations`, `schema version ${version}, behind this metaspn (${LATEST_VERSION})`, 'metaspn db migrate (commands also migrate at start)');

    // Counters against the rows they count, per queue and state (in that order).
    const counted = await pool.query<{ queue: string; kind: number; n: string }>(`SELECT queue, kind, sum(n)::text AS n FROM ${s}.queue_counts WHERE kind = ANY($1::smallint[]) GROUP BY queue, kind`, [
      Object.keys(EXACT_STATES).map(Number),
    ]);
    const rows = await pool.query<{ queue: string; state: number; n: string }>(`SELECT queue, state, count(*)::text AS n FROM ${s}.task WHERE state = ANY($1::smallint[]) GROUP BY queue, state`, [
      Object.keys(EXACT_STATES).map(Number),
    ]);
    const key = (q: string, k: number): string => `${q}\u0000${k}`;
    const have = new Map(counted.rows.map((r) => [key(r.queue, r.kind), Number(r.n)]));
    const real = new Map(rows.rows.map((r) => [key(r.queue, r.state), Number(r.n)]));
    for (const k of [...new Set([...have.keys(), ...real.keys()])].sort()) {
      const [queue, kind] = k.split('\u0000') as [string, string];
      const a = have.get(k) ?? 0;
      const b = real.get(k) ?? 0;
      if (a === b) continue;
      f.error(
        'database',
        `${where}.queue_counts/${queue}`,
        `${EXACT_STATES[Number(kind)]} tasks counted ${a}, rows ${b}`,
        'queue stats reads the counters: metaspn doctor --repair counts them again from the rows (first stop every worker of a metaspn older than the schema, which changes tasks without counting them: docs/POSTGRES.md, upgrading)',
      );
      if (!plan.recount.includes(queue)) plan.recount.push(queue);
    }

    // Leases past their expiry: a worker gone without releasing them (the next claim takes them back).
    const expired = await pool.query<{ queue: string; n: string }>(`SELECT queue, count(*)::text AS n FROM ${s}.task WHERE state = 2 AND t < now() GROUP BY queue ORDER BY queue`);
    for (const r of expired.rows)
      f.info('database', `${where}.task/${r.queue}`, `${r.n} lease(s) past their expiry`, 'the next claim on the queue takes them back (metaspn worker run, or a run of its pipeline)');
  } catch (err) {
    const e = pgError(err, setting, 'checking the database');
    f.error('database', where, e.message, "check the database is reachable and the schema is metaspn's", e.exitCode);
    return plan;
  } finally {
    await pool.end().catch(() => undefined);
  }

  // The ledger's hash chain, as doctor verifies ledger.jsonl.
  const stores = new PgStores({ setting });
  try {
    const ledger = await stores.readLedger();
    for (const p of ledger.problems)
      f.error('ledger', `${where}.ledger`, `entry ${p.line}: ${p.rule}`, 'the ledger was changed outside metaspn: restore it from a backup; rollbacks refuse to read past it');
  } catch (err) {
    f.error('ledger', `${where}.ledger`, (err as Error).message, 'check the database is reachable');
  } finally {
    await stores.close();
  }
  return plan;
}

/**
 * Sets the counters of ready, scheduled, leased and dead tasks of `queues` to the rows' counts
 * (completed and cancelled tasks are counted after their rows are pruned, and the totals of
 * failures, dead-letter arrivals and retries are history: those are left as they are). One
 * transaction that first takes the counters table in EXCLUSIVE mode: every statement that changes
 * tasks also writes the counters and takes its lock on them when it starts (the insert and delete
 * triggers when they fire, after their rows), so each committed before the count, whose rows it
 * sees, or counts after it, its rows unseen. Readers (`queue stats`) go on meanwhile. Waits at most
 * 10 s for the lock.
 * @throws the mapped driver error (11 unreachable, 50 the lock not had in time, or anything else).
 */
export async function recountTasks(setting: PgSetting, queues: readonly string[]): Promise<void> {
  const s = quoteSchema(setting.schema);
  const pool = createPool(setting.url, 1, 'metaspn doctor --repair');
  const states = Object.keys(EXACT_STATES).map(Number);
  try {
    await inTransaction(pool, async (c) => {
      await c.query(`SET LOCAL lock_timeout = '10s'`);
      await c.query(`SET LOCAL statement_timeout = 0`);
      await c.query(`LOCK TABLE ${s}.queue_counts IN EXCLUSIVE MODE`);
      await c.query(`DELETE FROM ${s}.queue_counts WHERE queue = ANY($1::text[]) AND kind = ANY($2::smallint[])`, [queues, states]);
      await c.query(
        `INSERT INTO ${s}.queue_counts (queue, slot, kind, n)
         SELECT queue, 0, state, count(*) FROM ${s}.task WHERE queue = ANY($1::text[]) AND state = ANY($2::smallint[]) GROUP BY queue, state`,
        [queues, states],
      );
    });
  } catch (err) {
    throw pgError(err, setting, 'counting the tasks again');
  } finally {
    await pool.end().catch(() => undefined);
  }
}
