/**
 * The embedded SQLite queue peer of the queue benchmark: better-sqlite3 in WAL with synchronous
 * FULL (a committed transaction is fsynced before `commit` returns, as our acknowledged
 * operations are), on the same workloads as bench/queue.ts.
 *
 * A fair, well-built SQLite queue rather than a naive one:
 *   - bulk enqueue: one transaction per batch (INSERT OR IGNORE on a unique task id, so duplicates
 *     are found as our enqueue finds them);
 *   - the worker loop: one transaction per round that completes the finished tasks, schedules the
 *     failed ones for retry and claims the next batch (`UPDATE … WHERE id IN (SELECT … LIMIT n)
 *     RETURNING`); a round runs when the buffer runs low or when acknowledgements have waited
 *     ACK_WINDOW_MS, the same group commit our worker gets from the file queue's ack window;
 *   - concurrency 8: at most 8 handlers at once, slots not waiting for their acknowledgement
 *     (a task counts as done only once its round committed), with a cap on pending acks as runWorker has.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { nowMs } from './lib.js';

type Db = Database.Database;

export const SQLITE_ACK_WINDOW_MS = 2;
const PREFETCH = 256;
const MAX_PENDING_ACKS = 256;

export function sqliteVersion(): string {
  const db = new Database(':memory:');
  try {
    return (db.prepare('select sqlite_version() as v').get() as { v: string }).v;
  } finally {
    db.close();
  }
}

export function openSqliteQueue(dir: string): Db {
  const db = new Database(join(dir, 'queue.sqlite'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec(`CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL,
    state INTEGER NOT NULL DEFAULT 0,  -- 0 ready, 1 leased, 2 done
    attempts INTEGER NOT NULL DEFAULT 0,
    run_at INTEGER NOT NULL,
    lease_until INTEGER,
    last_error TEXT
  );
  CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (state, run_at, id);`);
  return db;
}

/** Enqueues tasks t{from}…t{to-1} (payload {"n":i}) in batches of `batch`, one transaction each; returns the elapsed ms. */
export function sqliteEnqueue(db: Db, from: number, to: number, batch: number): number {
  const insert = db.prepare('INSERT OR IGNORE INTO jobs (key, payload, run_at) VALUES (?, ?, ?)');
  const tx = db.transaction((a: number, b: number, at: number) => {
    let added = 0;
    for (let i = a; i < b; i++) added += insert.run(`t${i}`, JSON.stringify({ n: i }), at).changes;
    return added;
  });
  const t0 = nowMs();
  for (let i = from; i < to; i += batch) {
    const end = Math.min(to, i + batch);
    const added = tx(i, end, Date.now());
    if (added !== end - i) throw new Error(`sqlite enqueue: ${end - i - added} ids unexpectedly present`);
  }
  return nowMs() - t0;
}

interface Job {
  id: number;
  payload: string;
  attempts: number;
}

export type PeerHandler = (payload: unknown, attempt: number) => unknown;

/**
 * Drains the queue with `concurrency` handlers; returns the elapsed ms and the count of
 * completions and failures. Stops when no task is ready or scheduled and none is running.
 */
export async function sqliteDrain(db: Db, handler: PeerHandler, concurrency: number, backoffMs: number): Promise<{ ms: number; completed: number; failed: number }> {
  const claim = db.prepare(
    'UPDATE jobs SET state = 1, attempts = attempts + 1, lease_until = ? WHERE id IN (SELECT id FROM jobs WHERE state = 0 AND run_at <= ? ORDER BY state, run_at, id LIMIT ?) RETURNING id, payload, attempts',
  );
  const complete = db.prepare('UPDATE jobs SET state = 2, lease_until = NULL WHERE id IN (SELECT value FROM json_each(?))');
  const retry = db.prepare('UPDATE jobs SET state = 0, lease_until = NULL, run_at = ?, last_error = ? WHERE id IN (SELECT value FROM json_each(?))');
  const nextDue = db.prepare('SELECT min(run_at) AS due FROM jobs WHERE state = 0');
  const round = db.transaction((done: number[], failed: number[], want: number, now: number): Job[] => {
    if (done.length) complete.run(JSON.stringify(done));
    if (failed.length) retry.run(now + backoffMs, 'fails on attempt 1 (benchmark)', JSON.stringify(failed));
    return want > 0 ? (claim.all(now + 60_000, now, want) as Job[]) : [];
  });

  const buffer: Job[] = [];
  let done: number[] = [];
  let failed: number[] = [];
  let oldestAck = 0;
  let running = 0;
  let completed = 0;
  let failures = 0;
  let exhausted = false;

  const t0 = nowMs();
  await new Promise<void>((resolve, reject) => {
    let scheduled = false;
    let timer: NodeJS.Timeout | null = null;
    const kick = (): void => {
      if (scheduled) return;
      scheduled = true;
      setImmediate(pump);
    };
    const finish = (job: Job, ok: boolean): void => {
      running--;
      if (done.length + failed.length === 0) oldestAck = nowMs();
      (ok ? done : failed).push(job.id);
      kick();
    };
    const run = (job: Job): void => {
      running++;
      let value: unknown;
      try {
        value = handler(JSON.parse(job.payload), job.attempts);
      } catch {
        finish(job, false);
        return;
      }
      Promise.resolve(value).then(
        () => finish(job, true),
        () => finish(job, false),
      );
    };
    function pump(): void {
      scheduled = false;
      if (timer) {
        clearTimeout(timer);
        timer = null;
      }
      try {
        const acks = done.length + failed.length;
        const lowBuffer = buffer.length < concurrency && !exhausted;
        const ackDue = acks > 0 && (acks >= MAX_PENDING_ACKS || nowMs() - oldestAck >= SQLITE_ACK_WINDOW_MS || (running === 0 && buffer.length === 0));
        if (lowBuffer || ackDue) {
          const want = lowBuffer ? PREFETCH - buffer.length : 0;
          const got = round(done, failed, want, Date.now());
          completed += done.length;
          failures += failed.length;
          if (failed.length) exhausted = false; // retries are coming
          done = [];
          failed = [];
          if (want > 0 && got.length === 0) exhausted = true;
          buffer.push(...got);
        }
        while (running < concurrency && buffer.length > 0 && done.length + failed.length < MAX_PENDING_ACKS) run(buffer.shift()!);
        if (running > 0) return; // a finishing handler kicks the next pump
        if (done.length + failed.length > 0) {
          timer = setTimeout(pump, SQLITE_ACK_WINDOW_MS);
          return;
        }
        if (buffer.length > 0) return kick();
        const due = (nextDue.get() as { due: number | null }).due;
        if (due === null) return resolve();
        exhausted = false;
        timer = setTimeout(pump, Math.max(0, due - Date.now()));
      } catch (err) {
        reject(err);
      }
    }
    kick();
  });
  return { ms: nowMs() - t0, completed, failed: failures };
}

export function sqliteCounts(db: Db): { ready: number; leased: number; done: number } {
  const rows = db.prepare('SELECT state, count(*) AS n FROM jobs GROUP BY state').all() as Array<{ state: number; n: number }>;
  const n = (s: number): number => rows.find((r) => r.state === s)?.n ?? 0;
  return { ready: n(0), leased: n(1), done: n(2) };
}
