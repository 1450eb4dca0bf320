import type pg from 'pg';
import type { Owner } from '../../queue/types.js';
import { CONNECT_TIMEOUT_MS, driver, KEEPALIVE_DELAY_MS } from './connection.js';

/**
 * Presence of a lease owner in the database: each owner that claims holds a session-level
 * advisory lock on a connection of its own (a direct connection, never through a transaction-mode
 * pooler), and records the lock's key in `<schema>.worker`. PostgreSQL releases the lock the
 * moment that session ends (the process died, its host vanished once TCP gives up, an operator
 * terminated it), so another host sees at once that the owner is gone: its leases are handed out
 * without waiting for them to expire. Never pid or hostname: only the database says who is there.
 *
 * Presence only speeds reclaiming up; lease expiry on the database clock stays the authority. An
 * owner whose session could not be opened has its key cleared (the caller does it when `ensure`
 * says false), so it is judged by expiry alone, never taken for gone while it works.
 */
export interface PresenceHandle {
  /**
   * Opens the session again when it was lost (a server restart, a terminated session: the driver
   * reports its end as it reads it), after checking it with a round trip when `check` (a session
   * whose connection was cut without a word, a host's network gone, is noticed only by one; claims
   * ask for it every 500 ms); resolves true once it holds its lock, false when it could not be opened.
   */
  ensure(check: boolean): Promise<boolean>;
  /** Ends the presence session (the lock goes with it), once its last holder released it. */
  release(): Promise<void>;
}

interface Entry {
  client: Promise<pg.Client | null>;
  /** The session ended or failed: the next `ensure` opens a new one. */
  lost: boolean;
  /** After a failed open, no new try before this time (epoch ms): a claim does not pay a connection each time. */
  retryAt: number;
  refs: number;
}

const sessions = new Map<string, Entry>();

/** Wait after a failed open before the next try. */
const RETRY_MS = 2000;

/**
 * The presence of `owner` on `url`, shared by every queue of this process (reference counted).
 * `workerTable` is the quoted `<schema>.worker`. Nothing is opened until `ensure`.
 */
export function holdPresence(url: string, workerTable: string, owner: Owner): PresenceHandle {
  const key = `${url}\n${workerTable}\n${owner.id}`;
  let e = sessions.get(key);
  if (!e) {
    e = { client: Promise.resolve(null), lost: true, retryAt: 0, refs: 0 };
    sessions.set(key, e);
  }
  e.refs++;
  const entry = e;
  let released = false;
  return {
    ensure: async (check) => {
      if (!entry.lost && check) {
        const c = await entry.client;
        if (c) await c.query('SELECT 1').catch(() => (entry.lost = true));
      }
      if (entry.lost) {
        if (Date.now() < entry.retryAt) return false;
        entry.lost = false;
        entry.client = open(url, workerTable, owner, entry);
      }
      return (await entry.client) !== null && !entry.lost;
    },
    release: async () => {
      if (released) return;
      released = true;
      if (--entry.refs > 0) return;
      if (sessions.get(key) === entry) sessions.delete(key);
      entry.lost = true;
      const c = await entry.client;
      await c?.end().catch(() => undefined);
    },
  };
}

async function open(url: string, workerTable: string, owner: Owner, entry: Entry): Promise<pg.Client | null> {
  const c = new (driver().Client)({
    connectionString: url,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    application_name: `metaspn presence ${owner.id}`.slice(0, 63),
    // A check of a half-open session must not hold a claim for long.
    query_timeout: 5000,
  });
  const lost = (): void => {
    entry.lost = true;
  };
  c.on('error', lost);
  c.on('end', lost);
  try {
    await c.connect();
    // Try, never wait: a lost session of this owner that the server has not ended yet still holds
    // the lock (a half-open connection can take minutes to die); then there is no presence for now.
    const r = await c.query(
      `WITH k AS (SELECT hashtextextended($1, 0) AS key), l AS (SELECT key, pg_try_advisory_lock(key) AS got FROM k)
       INSERT INTO ${workerTable} (owner, pid, host, lock_key) SELECT $2, $3, $4, key FROM l WHERE got
       ON CONFLICT (owner) DO UPDATE SET lock_key = excluded.lock_key, pid = excluded.pid, host = excluded.host
       RETURNING 1`,
      [`metaspn:owner:${owner.id}`, owner.id, owner.pid, owner.host],
    );
    if (r.rowCount !== 1) throw new Error('presence lock held by an older session');
    // The session stays idle, holding its lock; nothing else runs on it.
    return c;
  } catch {
    entry.lost = true;
    entry.retryAt = Date.now() + RETRY_MS;
    await c.end().catch(() => undefined);
    return null;
  }
}
