import pg from 'pg';
import type { Owner } from '../../queue/types.js';
import { CONNECT_TIMEOUT_MS, KEEPALIVE_DELAY_MS } from './connection.js';

/**
 * Presence of a lease owner in the database: each owner that claims holds a session-level
 * advisory lock on a connection of its own (a direct connection, never through a transaction-mode
 * pooler), and records the lock's key in `<schema>.worker`. PostgreSQL releases the lock the
 * moment that session ends (the process died, its host vanished once TCP gives up, an operator
 * terminated it), so another host sees at once that the owner is gone: its leases are handed out
 * without waiting for them to expire. Never pid or hostname: only the database says who is there.
 *
 * Presence only speeds reclaiming up; lease expiry on the database clock stays the authority, and
 * an owner without presence (it could not open the session) is judged by expiry alone.
 */
export interface PresenceHandle {
  /** Settles once the session holds its lock (or could not be opened: then the owner has no presence). */
  ready: Promise<void>;
  /** Ends the presence session (the lock goes with it). */
  release(): Promise<void>;
}

interface Entry {
  client: Promise<pg.Client | null>;
  refs: number;
}

const sessions = new Map<string, Entry>();

/**
 * The presence session of `owner` on `url`, shared by every queue of this process (reference
 * counted), opened on first use. `workerTable` is the quoted `<schema>.worker`. Resolves even when
 * the session cannot be opened (the owner is then judged by lease expiry alone).
 */
export function holdPresence(url: string, workerTable: string, owner: Owner): PresenceHandle {
  const key = `${url}\n${workerTable}\n${owner.id}`;
  let e = sessions.get(key);
  if (!e) {
    e = { client: open(url, workerTable, owner), refs: 0 };
    sessions.set(key, e);
  }
  e.refs++;
  const entry = e;
  let released = false;
  return {
    ready: entry.client.then(() => undefined),
    release: async () => {
      if (released) return;
      released = true;
      if (--entry.refs > 0) return;
      if (sessions.get(key) === entry) sessions.delete(key);
      const c = await entry.client;
      await c?.end().catch(() => undefined);
    },
  };
}

async function open(url: string, workerTable: string, owner: Owner): Promise<pg.Client | null> {
  const c = new pg.Client({
    connectionString: url,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    application_name: `metaspn presence ${owner.id}`.slice(0, 63),
  });
  // A lost session means lost presence; the next claim does not reopen it (expiry still decides).
  c.on('error', () => undefined);
  try {
    await c.connect();
    await c.query(
      `WITH k AS (SELECT hashtextextended($1, 0) AS key, pg_advisory_lock(hashtextextended($1, 0)))
       INSERT INTO ${workerTable} (owner, pid, host, lock_key) SELECT $2, $3, $4, key FROM k
       ON CONFLICT (owner) DO UPDATE SET lock_key = excluded.lock_key, pid = excluded.pid, host = excluded.host`,
      [`metaspn:owner:${owner.id}`, owner.id, owner.pid, owner.host],
    );
    // The session stays idle, holding its lock; nothing else runs on it.
    return c;
  } catch {
    await c.end().catch(() => undefined);
    return null;
  }
}
