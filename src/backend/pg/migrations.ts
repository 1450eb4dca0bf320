import { MetaspnError } from '../../guard/errors.js';
import { inTransaction, pgError, type PgPool } from './connection.js';
import { SCHEMA_V1 } from './schema-v1.js';
import { SCHEMA_V2 } from './schema-v2.js';
import { SCHEMA_V3 } from './schema-v3.js';
import { SCHEMA_V4 } from './schema-v4.js';
import { SCHEMA_V5 } from './schema-v5.js';
import { SCHEMA_V6 } from './schema-v6.js';
import { SCHEMA_V7 } from './schema-v7.js';
import { SCHEMA_V8 } from './schema-v8.js';
import { SCHEMA_V9 } from './schema-v9.js';
import { SCHEMA_V10 } from './schema-v10.js';
import { SCHEMA_V11 } from './schema-v11.js';
import { SCHEMA_V12 } from './schema-v12.js';
import { SCHEMA_V13 } from './schema-v13.js';
import { SCHEMA_NAME, targetOf, type PgSetting } from './setting.js';

/**
 * Versioned, idempotent schema migrations. Each migration runs once per schema, in its own
 * transaction, under a transaction-scoped advisory lock keyed by the schema name (two processes
 * starting together: one migrates, the other waits and then finds nothing to do), and is recorded
 * in `<schema>.schema_migrations`. A schema whose recorded version is newer than this code knows is
 * refused: an older metaspn must not write into tables whose meaning it does not know.
 */
export interface Migration {
  version: number;
  name: string;
  /** SQL with `S` standing for the quoted schema name. */
  sql: string;
}

/** Every migration, in order. Append only: a released migration is never edited. */
export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'queue', sql: SCHEMA_V1 },
  { version: 2, name: 'presence', sql: SCHEMA_V2 },
  { version: 3, name: 'pipeline stores and run locks', sql: SCHEMA_V3 },
  { version: 4, name: 'effect logs', sql: SCHEMA_V4 },
  { version: 5, name: 'completed-task retention', sql: SCHEMA_V5 },
  { version: 6, name: 'sealed output sets', sql: SCHEMA_V6 },
  { version: 7, name: 'counters trigger without nested loops', sql: SCHEMA_V7 },
  { version: 8, name: 'tasks keyed by (id, queue); counters trigger skips empty statements', sql: SCHEMA_V8 },
  { version: 9, name: 'start marks in claim_mark rows, not in task rows', sql: SCHEMA_V9 },
  { version: 10, name: 'counters trigger without joins for claims and acknowledgements', sql: SCHEMA_V10 },
  { version: 11, name: 'claim as a function planned without bitmap scans', sql: SCHEMA_V11 },
  { version: 12, name: 'claim rewrites the rows it locked by tuple id', sql: SCHEMA_V12 },
  { version: 13, name: 'statements keep the counters; no update trigger', sql: SCHEMA_V13 },
];

/** The schema version this code writes. */
export const LATEST_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** What {@link migrate} found and did. */
export interface MigrateResult {
  schema: string;
  /** The version before: 0 when the schema had no metaspn tables. */
  from: number;
  /** The version now (LATEST_VERSION). */
  to: number;
  /** Versions applied by this call, in order (empty: it was up to date). */
  applied: number[];
}

/** `"name"`: a schema name checked against SCHEMA_NAME, quoted for SQL. */
export function quoteSchema(schema: string): string {
  if (!SCHEMA_NAME.test(schema)) throw new MetaspnError('USAGE', `schema "${schema.slice(0, 70)}" must match ${SCHEMA_NAME.source}`);
  return `"${schema}"`;
}

/** A migration's SQL for `schema`. */
export function migrationSql(m: Migration, schema: string): string {
  return m.sql.replace(/\bS\./g, `${quoteSchema(schema)}.`);
}

/** The newer-schema refusal (exit 30): the database was migrated by a newer metaspn. */
export function schemaTooNew(schema: string, found: number, target: string): MetaspnError {
  return new MetaspnError('STATE_CORRUPT', `PostgreSQL schema ${schema} at ${target} is at version ${found}, newer than this metaspn knows (${LATEST_VERSION}); refusing to use it`, {
    hint: 'run a metaspn at least as new as the one that migrated the database (every host that shares it)',
  });
}

/** The recorded version of `schema`: 0 when it has no metaspn tables. */
export async function schemaVersion(pool: PgPool, schema: string): Promise<number> {
  const r = await pool.query<{ v: number | null }>(`SELECT CASE WHEN to_regclass($1) IS NULL THEN NULL ELSE 1 END AS v`, [`${quoteSchema(schema)}.schema_migrations`]);
  if (r.rows[0]?.v === null || r.rows[0]?.v === undefined) return 0;
  const v = await pool.query<{ v: number }>(`SELECT coalesce(max(version), 0)::int AS v FROM ${quoteSchema(schema)}.schema_migrations`);
  return v.rows[0]!.v;
}

/**
 * Brings `schema` up to LATEST_VERSION, creating it when absent. Safe to run at any time and from
 * any number of processes at once.
 * @throws MetaspnError STATE_CORRUPT (30) when the schema is newer than this code; the mapped
 *   driver error otherwise (11 unreachable, 20 login or privileges refused, 50 anything else).
 */
export async function migrate(pool: PgPool, s: Pick<PgSetting, 'schema' | 'url' | 'source'>): Promise<MigrateResult> {
  const schema = s.schema;
  const q = quoteSchema(schema);
  try {
    const before = await schemaVersion(pool, schema);
    if (before > LATEST_VERSION) throw schemaTooNew(schema, before, targetOf(s.url));
    if (before === LATEST_VERSION) return { schema, from: before, to: before, applied: [] };
    const applied: number[] = [];
    for (const m of MIGRATIONS) {
      const done = await inTransaction(pool, async (c) => {
        // A migration (or waiting for another host's) may take longer than a queue statement may.
        await c.query('SET LOCAL statement_timeout = 0');
        await c.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [`metaspn:migrate:${schema}`]);
        await c.query(`CREATE SCHEMA IF NOT EXISTS ${q}`);
        await c.query(`CREATE TABLE IF NOT EXISTS ${q}.schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
        const cur = (await c.query<{ v: number }>(`SELECT coalesce(max(version), 0)::int AS v FROM ${q}.schema_migrations`)).rows[0]!.v;
        if (cur > LATEST_VERSION) throw schemaTooNew(schema, cur, targetOf(s.url));
        if (cur >= m.version) return false;
        await c.query(migrationSql(m, schema));
        await c.query(`INSERT INTO ${q}.schema_migrations (version, name) VALUES ($1, $2)`, [m.version, m.name]);
        return true;
      });
      if (done) applied.push(m.version);
    }
    return { schema, from: before, to: LATEST_VERSION, applied };
  } catch (err) {
    throw pgError(err, s, `migrating schema ${schema}`);
  }
}

const ready = new WeakMap<PgPool, Map<string, Promise<void>>>();

/**
 * Migrates `schema` once per pool (the first statement of every process waits for it): a schema
 * behind is brought up to date, a newer one refused (30).
 */
export function ensureSchema(pool: PgPool, s: Pick<PgSetting, 'schema' | 'url' | 'source'>): Promise<void> {
  let m = ready.get(pool);
  if (!m) ready.set(pool, (m = new Map()));
  let p = m.get(s.schema);
  if (!p) {
    p = migrate(pool, s).then(() => undefined);
    const map = m;
    // A failure is not remembered: the next statement tries again (the server may be back).
    p.catch(() => map.delete(s.schema));
    m.set(s.schema, p);
  }
  return p;
}
