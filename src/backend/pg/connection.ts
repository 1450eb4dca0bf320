import { createRequire } from 'node:module';
import type pg from 'pg';
import { DataInvalidError, MetaspnError } from '../../guard/errors.js';
import { targetOf, type PgSetting } from './setting.js';

/**
 * Connections to PostgreSQL: one bounded pool per database URL and process, shared by every queue
 * the process opens, and the mapping of driver errors to metaspn's exit codes.
 *
 * Every statement of the queue is short and transaction-scoped, so the pool may sit behind a
 * transaction-mode pooler; sessions that hold something (advisory locks) need a direct connection
 * (docs/POSTGRES.md).
 */

/** Server-side bound on one statement: a claim or an ack that takes longer is cancelled. */
export const STATEMENT_TIMEOUT_MS = 30_000;
/** A session idle inside a transaction longer than this is ended by the server (it would hold back vacuum). */
export const IDLE_IN_TRANSACTION_MS = 60_000;
/** How long a new connection may take. */
export const CONNECT_TIMEOUT_MS = 10_000;
/** TCP keepalive: first probe after this much idle time. */
export const KEEPALIVE_DELAY_MS = 10_000;

/** A node-postgres pool (the driver's own type). */
export type PgPool = pg.Pool;
/** A connection checked out of a {@link PgPool}. */
export type PgClient = pg.PoolClient;

/**
 * A new bounded pool for `url`: `max` connections (default 4), TCP keepalive after 10 s,
 * `application_name` `metaspn`, a 30 s statement timeout, a 60 s idle-in-transaction timeout, a
 * 10 s connect timeout; idle connections close after 10 s and do not keep the process alive.
 * Errors of idle connections (a server restart, a terminated session) drop that connection; the
 * next statement opens a new one.
 */
export function createPool(url: string, max = 4, applicationName = 'metaspn'): PgPool {
  const pool = new (driver().Pool)({
    connectionString: url,
    max,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
    application_name: applicationName,
    statement_timeout: STATEMENT_TIMEOUT_MS,
    idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_MS,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    idleTimeoutMillis: 10_000,
    allowExitOnIdle: true,
  });
  // An idle client's error reaches the pool's listener; one in use by a query (the server ended its
  // session: 57P01) also emits 'error' on the client, which without a listener of its own ends the
  // process. The query's rejection carries the error to the caller either way.
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

interface Shared {
  pool: PgPool;
  refs: number;
}

const shared = new Map<string, Shared>();

/** A pool borrowed from the process-wide registry; `release` ends it once its last borrower released it. */
export interface PoolLease {
  pool: PgPool;
  release(): Promise<void>;
}

/**
 * The process's pool for this setting's URL (created on first use, bounded by `pool_max`), with a
 * reference count: every queue of one process shares it.
 */
export function sharedPool(s: Pick<PgSetting, 'url' | 'pool_max'>): PoolLease {
  let e = shared.get(s.url);
  if (!e) shared.set(s.url, (e = { pool: createPool(s.url, s.pool_max), refs: 0 }));
  e.refs++;
  const entry = e;
  let released = false;
  return {
    pool: entry.pool,
    release: async () => {
      if (released) return;
      released = true;
      if (--entry.refs > 0) return;
      if (shared.get(s.url) === entry) shared.delete(s.url);
      await entry.pool.end().catch(() => undefined);
    },
  };
}

/**
 * Runs `f` in one transaction on a connection of `pool`: committed when it resolves, rolled back when
 * it throws. Rolled back because a named statement went stale ({@link isStalePrepared}) or because
 * the server broke a deadlock by failing it ({@link isDeadlock}), it runs again whole
 * ({@link retryingRefused}): `f` must only talk to the database through `c`, as every caller does.
 */
export async function inTransaction<T>(pool: PgPool, f: (c: PgClient) => Promise<T>): Promise<T> {
  return retryingRefused(pool, () => inTransactionOnce(pool, f));
}

/**
 * {@link inTransaction} without its retries, for a caller that already runs its work through
 * {@link retryingRefused} (the queue's `run`): nested, the two would multiply their bounds.
 */
export async function inTransactionOnce<T>(pool: PgPool, f: (c: PgClient) => Promise<T>): Promise<T> {
  const c = await pool.connect();
  let broken = false;
  // A checked-out client whose connection drops emits 'error' besides rejecting the query in
  // flight: without a listener that event would end the process (the pool only listens to idle ones).
  const lost = (): void => void (broken = true);
  c.on('error', lost);
  try {
    await c.query('BEGIN');
    const out = await f(c);
    await c.query('COMMIT');
    return out;
  } catch (err) {
    // A connection whose named statements went stale is dropped: the driver would use them again.
    if (isStalePrepared(err)) broken = true;
    try {
      await c.query('ROLLBACK');
    } catch {
      broken = true;
    }
    throw err;
  } finally {
    c.off('error', lost);
    c.release(broken);
  }
}

/**
 * True when the server refused a named statement (statements.ts `prepared`) that this connection
 * prepared before, without running it: a schema change altered the columns it returns ("cached
 * plan must not change result type", 0A000), or the session's statements were dropped
 * (`DEALLOCATE ALL`, a pooler's `DISCARD ALL`: 26000). The driver still takes it for prepared on
 * that connection, so it runs again only on another one.
 */
export function isStalePrepared(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (e?.code === '26000') return true;
  return e?.code === '0A000' && typeof e.message === 'string' && e.message.includes('cached plan must not change result type');
}

/**
 * True when the server failed the statement to break a deadlock (SQLSTATE 40P01): its transaction
 * was rolled back whole, so running it again is safe, and the other party has gone on. Seen between
 * a claim and a failure batch of two sessions whose counter rows (`queue_counts`, one slot per
 * `pg_backend_pid() % 16`) are the same and were upserted in different orders.
 */
export function isDeadlock(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === '40P01';
}

/** How many times a statement or transaction that lost a deadlock runs again (then the error is thrown). */
export const DEADLOCK_RETRIES = 5;

/**
 * Runs `f` (one statement on `pool`, or one transaction) again when the server refused it without
 * keeping anything of it:
 * - a named statement went stale ({@link isStalePrepared}): nothing ran, and the connection that
 *   held it was dropped (pg-pool drops a client whose query failed, {@link inTransaction} one whose
 *   statement went stale), so each retry meets another connection. At most one retry per
 *   connection of the pool, plus one: the last is on a connection made after the change.
 * - it lost a deadlock ({@link isDeadlock}): up to {@link DEADLOCK_RETRIES} more times, each after
 *   a random 1-20 ms, so that the session that won finishes first.
 */
export async function retryingRefused<T>(pool: PgPool, f: () => Promise<T>): Promise<T> {
  let stale = (pool.options.max ?? 10) + 1;
  let deadlocks = DEADLOCK_RETRIES;
  for (;;) {
    try {
      return await f();
    } catch (err) {
      if (isStalePrepared(err) && stale-- > 0) continue;
      if (!isDeadlock(err) || deadlocks-- <= 0) throw err;
      await new Promise((resolve) => setTimeout(resolve, 1 + Math.random() * 19));
    }
  }
}

/** SQLSTATE classes and socket errors after which the same statement may succeed later. */
const UNAVAILABLE = new Set(['57P01', '57P02', '57P03', '53300', 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);

/** True when `err` says the database cannot be reached right now (a retry later may succeed). */
export function isUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  if (UNAVAILABLE.has(code) || code.startsWith('08')) return true;
  const msg = typeof e?.message === 'string' ? e.message : '';
  // "Client has encountered a connection error and is not queryable": the driver refuses a statement
  // on a client whose connection dropped before it was handed out (the pool's checkout window; seen
  // after a server restart). Its connection was lost like any other: not a failure of the statement.
  return /Connection terminated|timeout exceeded when trying to connect|Connection ended unexpectedly|connection error and is not queryable/i.test(msg);
}

/**
 * A driver error as a MetaspnError (kept as `cause`), naming the database (never its password):
 * - unreachable, restarting, too many connections, a connection lost: BUSINESS_SKIP (exit 11, retry later);
 * - login refused, unknown database or role: DataInvalidError (exit 20) naming where the URL came from;
 * - anything else: INTERNAL_ERROR (exit 50) with the server's message and SQLSTATE.
 * A MetaspnError passes through unchanged.
 */
export function pgError(err: unknown, s: Pick<PgSetting, 'url' | 'source'>, what: string): MetaspnError {
  if (err instanceof MetaspnError) return err;
  const target = targetOf(s.url);
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  const msg = (typeof e?.message === 'string' ? e.message : String(err)).replace(/[\r\n]+/g, ' ');
  if (isUnavailable(err)) {
    return new MetaspnError('BUSINESS_SKIP', `PostgreSQL at ${target} is unavailable while ${what} (${code || msg})`, {
      cause: err,
      hint: 'check that the server is up and reachable from this host, then re-run; nothing was changed that was not acknowledged',
      details: { retry_after_s: 30 },
    });
  }
  if (code === '28P01' || code === '28000' || code === '3D000' || code === '42501') {
    return new DataInvalidError(s.source, null, `PostgreSQL at ${target} refused: ${msg} (${code})`, {
      cause: err,
      hint: "fix the database URL (user, password, database name), or the role's privileges",
    });
  }
  return new MetaspnError('INTERNAL_ERROR', `PostgreSQL at ${target} failed while ${what}: ${msg}${code ? ` (${code})` : ''}`, { cause: err });
}

let loaded: typeof pg | null = null;

/**
 * node-postgres, loaded on first use: a command on the file backend never loads the driver (it
 * costs a tenth of a second at every start). Synchronous, as the pool is made synchronously.
 */
export function driver(): typeof pg {
  loaded ??= createRequire(import.meta.url)('pg') as typeof pg;
  return loaded;
}
