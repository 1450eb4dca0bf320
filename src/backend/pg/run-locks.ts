/**
 * Run locks on PostgreSQL: the same promises as the file backend's (src/guard/run-lock.ts, one
 * conformance suite: test/unit/run-lock-conformance.ts), for runs on any host of one database.
 *
 * - **A row per lock name** (`<schema>.run_lock`) carries the payload operators know (active, pid,
 *   host, start_ts_utc, ttl_sec, reason, cmd, lock_id) and `generation`, the fencing token: one more
 *   at each acquisition.
 * - **The holder is alive while its lock session is**: each acquisition opens a connection of its
 *   own (direct, never through a transaction-mode pooler) and holds a session-level advisory lock
 *   keyed by schema and name for the whole run. A holder that dies (SIGKILL, its host gone once TCP
 *   gives up, its session terminated) loses it with its session, and the next acquirer takes over
 *   at once (`holder_gone`). A live holder is never taken over, however slow or stopped, except past
 *   its TTL by the database clock (`ttl_expired`) or by `forceBreak` with a reason: the breaker
 *   ends the holder's session (`pg_terminate_backend`: the role needs `pg_signal_backend` or the
 *   holder's role) and so every statement the holder had in flight.
 * - **Every change of hands holds the row's lock** (`SELECT … FOR UPDATE`), taken before the
 *   advisory lock, and so does `whileHeld`: nobody takes the lock over while a fenced function
 *   runs, and a fenced function never runs once the generation moved (RunLockLostError, 30).
 * Pid and host are recorded for operators; they never decide liveness.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { DataInvalidError, MetaspnError, type ErrorCode } from '../../guard/errors.js';
import {
  describeHolder,
  RunLockLostError,
  type BrokenLock,
  type LockPayload,
  type LockStatus,
  type RunLock,
  type RunLockLog,
  type RunLockRequest,
  type RunLocks,
  type StaleReason,
} from '../../guard/run-lock.js';
import { HeldRunLockBase } from '../../guard/run-lock/held-base.js';
import { assertLockName, LOCK_HELD_HINT as HINT, resolveRunLockRequest, type ResolvedRunLockRequest } from '../../guard/run-lock/request.js';
import { HOST } from '../../queue/owner.js';
import { CONNECT_TIMEOUT_MS, driver, isUnavailable, KEEPALIVE_DELAY_MS, pgError, sharedPool, STATEMENT_TIMEOUT_MS, type PgPool } from './connection.js';
import { ensureSchema, quoteSchema } from './migrations.js';
import { DEFAULT_POOL_MAX, DEFAULT_SCHEMA, targetOf, type PgSetting } from './setting.js';
import type { PgTxFence, Queryable } from './stores.js';

/** Timing of the PostgreSQL run lock, in milliseconds. */
export const PG_LOCK_TIMING = {
  /**
   * How long a change of hands or a fenced function waits for the lock's row, held for the
   * length of a takeover or of a fenced function; longer means a holder is stuck inside one: the
   * acquirer reports the lock held (11 or 40), as the file backend does for a busy gate.
   */
  rowWaitMs: 10_000,
  /** How long a breaker waits for the session it terminated to end (and free the advisory lock). */
  terminateWaitMs: 5_000,
  /** How often a holder reads its row to learn that it was taken over (and checks its session). */
  watchMs: 2_000,
} as const;

/** Options of {@link PgRunLocks}. */
export interface PgRunLocksOptions {
  /** The database and schema; `url` opens the lock sessions (and the shared pool, unless `pool` is given). */
  setting: Pick<PgSetting, 'url' | 'source'> & Partial<Pick<PgSetting, 'schema' | 'pool_max'>>;
  /** A pool for migrations and `status` instead of the process's shared one (not ended by the locks). */
  pool?: PgPool;
}

/** A lock's row as the statements return it. */
interface LockRow {
  generation: string;
  lock_id: string | null;
  active: number;
  pid: number | null;
  host: string | null;
  start_ts_utc: string | null;
  ttl_sec: number | null;
  reason: string | null;
  cmd: string | null;
  expired: boolean;
  alive: boolean;
}

/** The columns of a lock's row, whether it is past its TTL at `$now` (or the database's now()), and whether a session holds its advisory lock. */
function rowSelect(S: string, lockWhat = ''): string {
  return `SELECT r.generation::text AS generation, r.lock_id, r.active, r.pid, r.host,
                 to_char(r.start_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS start_ts_utc,
                 r.ttl_sec, r.reason, r.cmd,
                 coalesce(coalesce($2::timestamptz, now()) >= r.start_ts + r.ttl_sec * interval '1 second', false) AS expired,
                 EXISTS (SELECT 1 FROM pg_locks l, (SELECT hashtextextended($3, 0) AS k) x
                          WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                            AND l.classid = ((x.k >> 32) & 4294967295)::oid AND l.objid = (x.k & 4294967295)::oid) AS alive
            FROM ${S}.run_lock r WHERE r.name = $1 ${lockWhat}`;
}

function payloadOf(r: LockRow): LockPayload | null {
  if (Number(r.generation) === 0 || r.start_ts_utc === null) return null;
  return {
    active: r.active === 1 ? 1 : 0,
    pid: r.pid ?? 0,
    host: r.host ?? '',
    start_ts_utc: r.start_ts_utc,
    ttl_sec: r.ttl_sec ?? 0,
    reason: r.reason ?? '',
    cmd: r.cmd ?? '',
    ...(r.lock_id ? { lock_id: r.lock_id } : {}),
    generation: Number(r.generation),
  };
}

/** Why the active holder of `r` may be taken over now, or null. */
function staleOf(r: LockRow): StaleReason | null {
  if (r.active !== 1) return null;
  if (!r.alive) return 'holder_gone';
  return r.expired ? 'ttl_expired' : null;
}

type Resolved = ResolvedRunLockRequest;

/** Holders in this process, by database, schema and name: a takeover made here is known to them at once. */
const holders = new Map<string, Set<HeldPgRunLock>>();

/**
 * The run locks of one PostgreSQL schema (see the module's description). Nothing connects until
 * `acquire` or `status`; the schema is migrated then when it is behind.
 */
export class PgRunLocks implements RunLocks {
  readonly #setting: PgRunLocksOptions['setting'] & { schema: string };
  readonly #pool: PgPool | undefined;
  readonly #s: string;

  constructor(opts: PgRunLocksOptions) {
    const schema = opts.setting.schema ?? DEFAULT_SCHEMA;
    this.#s = quoteSchema(schema);
    this.#setting = { ...opts.setting, schema };
    this.#pool = opts.pool;
  }

  /** Where the locks are, for messages and `LockStatus.path`: `pg:<host:port/db>/<schema>.run_lock/<name>`. */
  where(name: string): string {
    return `pg:${targetOf(this.#setting.url)}/${this.#setting.schema}.run_lock/${name}`;
  }

  /**
   * Takes the lock `opts.name` (see RunLocks.acquire). `opts.now`, when given, stands for the
   * database clock in this call (tests): `start_ts_utc` and the TTL check use it instead of now().
   * @throws MetaspnError BUSINESS_SKIP (11) or LOCK_TIMEOUT (40) when held (by `onLockHeld`),
   *   also when a stuck holder keeps the row for PG_LOCK_TIMING.rowWaitMs; UsageError (64) for a
   *   bad name or number or `forceBreak` without a reason; the mapped driver error (11
   *   unreachable, 20 login or privileges refused, e.g. no right to end a holder's session; 50).
   */
  async acquire(opts: RunLockRequest): Promise<RunLock> {
    const o = resolveRunLockRequest(opts);
    await this.#withPool((pool) => ensureSchema(pool, this.#setting));
    const session = await this.#connect(o.name);
    let done = false;
    try {
      const key = this.#key(o.name);
      // Seen before anything else: forceBreak breaks the holder the operator saw, not one that took
      // the lock meanwhile (two forced runs racing: the second finds the first and reports held).
      const seen = await this.#look(session, o, key);
      const forceTarget = o.forceBreak && seen?.active === 1 ? `${seen.lock_id}/${seen.generation}` : null;
      const waitStart = performance.now();
      let waiting = false;
      for (;;) {
        const got = await this.#attempt(session, o, key, forceTarget);
        if ('lock' in got) {
          done = true;
          return got.lock;
        }
        const who = got.busy
          ? `run lock ${o.name} is changing hands: another session kept its row for ${PG_LOCK_TIMING.rowWaitMs / 1000}s`
          : `run lock ${o.name} is held by ${describeHolder(got.holder)}`;
        const hint = got.busy ? 'a stopped or hung metaspn process is inside a fenced publish or a takeover; it frees the row when it continues or exits' : HINT;
        const details = { lock: this.where(o.name), holder: got.holder };
        if (o.onLockHeld === 'retryable') throw heldError('BUSINESS_SKIP', who, hint, details);
        if (o.onLockHeld === 'fail') throw heldError('LOCK_TIMEOUT', `${who} (--on-lock-held fail: treated as an incident)`, hint, details);
        const left = waitStart + o.lockWaitSec * 1000 - performance.now();
        if (left <= 0) throw heldError('LOCK_TIMEOUT', `waited ${o.lockWaitSec}s for the lock; ${who}`, hint, details);
        if (!waiting) {
          waiting = true;
          o.log.info({ lock: this.where(o.name), holder: got.holder, wait_sec: o.lockWaitSec }, `${who}; waiting up to ${o.lockWaitSec}s`);
        }
        await sleep(Math.min(o.pollMs, left));
      }
    } catch (err) {
      throw pgError(err, this.#setting, `taking run lock ${o.name}`);
    } finally {
      if (!done) await session.end().catch(() => undefined);
    }
  }

  /**
   * Who holds the lock, since when, and whether the next acquirer would take it over; read-only.
   * `held` and `holder_alive` say whether a session holds the lock's advisory lock; the TTL is
   * judged by the database clock (or `opts.now`, standing for it).
   */
  async status(name: string, opts: { now?: () => number } = {}): Promise<LockStatus> {
    assertLockName(name);
    return this.#withPool(async (pool) => {
      await ensureSchema(pool, this.#setting);
      try {
        const nowParam = opts.now ? new Date(opts.now()).toISOString() : null;
        const r = (await pool.query<LockRow>(rowSelect(this.#s), [name, nowParam, this.#key(name)])).rows[0];
        const payload = r ? payloadOf(r) : null;
        return {
          path: this.where(name),
          exists: payload !== null,
          payload,
          held: r?.alive ?? false,
          holder_alive: r && r.active === 1 ? r.alive : null,
          stale_reason: r ? staleOf(r) : null,
        };
      } catch (err) {
        throw pgError(err, this.#setting, `reading run lock ${name}`);
      }
    });
  }

  async #withPool<T>(f: (pool: PgPool) => Promise<T>): Promise<T> {
    if (this.#pool) return f(this.#pool);
    const lease = sharedPool({ url: this.#setting.url, pool_max: this.#setting.pool_max ?? DEFAULT_POOL_MAX });
    try {
      return await f(lease.pool);
    } catch (err) {
      throw pgError(err, this.#setting, 'reading run locks');
    } finally {
      await lease.release();
    }
  }

  /** The advisory lock's key text: schema and name (two schemas of one database never share a lock). */
  #key(name: string): string {
    return `metaspn:run-lock:${this.#setting.schema}:${name}`;
  }

  /** A lock session: a connection of its own, never pooled. */
  async #connect(name: string): Promise<pg.Client> {
    const c = new (driver().Client)({
      connectionString: this.#setting.url,
      keepAlive: true,
      keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      application_name: `metaspn run-lock ${name}`.slice(0, 63),
      statement_timeout: STATEMENT_TIMEOUT_MS,
    });
    // Errors of an idle session (terminated, server gone) are seen by the holder's listeners.
    c.on('error', () => undefined);
    try {
      await c.connect();
      // A server or role default must not end an idle holder's session (it would lose the lock),
      // nor one inside a long fenced publish.
      await c.query('SET idle_session_timeout = 0; SET idle_in_transaction_session_timeout = 0');
    } catch (err) {
      await c.end().catch(() => undefined);
      throw err;
    }
    return c;
  }

  async #look(c: pg.Client, o: Resolved, key: string): Promise<LockRow | null> {
    return (await c.query<LockRow>(rowSelect(this.#s), [o.name, nowOf(o), key])).rows[0] ?? null;
  }

  /** One look, then (unless a live holder was seen) a second one holding the row, that takes the lock. */
  async #attempt(c: pg.Client, o: Resolved, key: string, forceTarget: string | null): Promise<{ lock: RunLock } | { holder: LockPayload | null; busy: boolean }> {
    const S = this.#s;
    // Outside the row lock: a live, unexpired holder is reported without queueing for its row
    // (which a holder inside a fenced publish keeps).
    const first = await this.#look(c, o, key);
    if (first && first.active === 1 && first.alive && !first.expired && !(forceTarget !== null && forceTarget === `${first.lock_id}/${first.generation}`)) {
      return { holder: payloadOf(first), busy: false };
    }
    await c.query('BEGIN');
    let advisory = false;
    try {
      await c.query(`SET LOCAL lock_timeout = ${PG_LOCK_TIMING.rowWaitMs}`);
      await c.query(`INSERT INTO ${S}.run_lock (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`, [o.name]);
      let row: LockRow;
      try {
        row = (await c.query<LockRow>(rowSelect(S, 'FOR UPDATE OF r'), [o.name, nowOf(o), key])).rows[0]!;
      } catch (err) {
        if ((err as { code?: string }).code === '55P03') {
          await c.query('ROLLBACK');
          return { holder: null, busy: true };
        }
        throw err;
      }
      advisory = (await c.query<{ got: boolean }>('SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS got', [key])).rows[0]!.got;
      const holder = row.active === 1 ? payloadOf(row) : null;
      let broke: BrokenLock | null = null;
      if (advisory) {
        // No session holds it: an active row's holder is gone.
        if (holder) broke = { why: 'holder_gone', holder };
      } else {
        const forced = forceTarget !== null && forceTarget === `${row.lock_id}/${row.generation}`;
        if (!holder || !(row.expired || forced)) {
          await c.query('ROLLBACK');
          return { holder, busy: false };
        }
        broke = { why: row.expired ? 'ttl_expired' : 'forced', holder };
        // End the live holder's session (and whatever it had in flight), then wait for its lock.
        // Ending another role's session takes pg_signal_backend (or superuser, or the holder's role).
        try {
          await c.query(
            `SELECT pg_terminate_backend(l.pid, ${PG_LOCK_TIMING.terminateWaitMs}) FROM pg_locks l, (SELECT hashtextextended($1, 0) AS k) x
              WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.pid <> pg_backend_pid()
                AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND l.classid = ((x.k >> 32) & 4294967295)::oid AND l.objid = (x.k & 4294967295)::oid`,
            [key],
          );
        } catch (err) {
          if ((err as { code?: string }).code !== '42501') throw err;
          await c.query('ROLLBACK').catch(() => undefined);
          const role = (await c.query<{ r: string }>('SELECT current_user AS r').catch(() => null))?.rows[0]?.r ?? 'this role';
          throw new DataInvalidError(
            this.#setting.source,
            null,
            `cannot break run lock ${o.name} held by ${describeHolder(holder)}: role ${role} may not end the holder's session (${(err as Error).message})`,
            { cause: err, hint: `grant it: GRANT pg_signal_backend TO ${role}; (a superuser's session needs a superuser), or break the lock as the holder's role; nothing was changed` },
          );
        }
        this.#warnTakeover(o, broke);
        try {
          await c.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [key]);
        } catch (err) {
          // The terminated session did not end within the row wait: report the lock as changing hands.
          if ((err as { code?: string }).code !== '55P03') throw err;
          await c.query('ROLLBACK');
          return { holder, busy: true };
        }
        advisory = true;
      }
      if (broke?.why === 'holder_gone') this.#warnTakeover(o, broke);
      const lockId = randomUUID();
      const r = (
        await c.query<{ generation: string; start_ts_utc: string }>(
          `UPDATE ${S}.run_lock SET generation = generation + 1, lock_id = $2, active = 1, pid = $3, host = $4, backend_pid = pg_backend_pid(),
                  start_ts = coalesce($5::timestamptz, now()), ttl_sec = $6, reason = $7, cmd = $8
            WHERE name = $1
            RETURNING generation::text AS generation, to_char(start_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS start_ts_utc`,
          [o.name, lockId, process.pid, HOST, nowOf(o), o.ttlSec, o.reason, o.cmd],
        )
      ).rows[0]!;
      await c.query('COMMIT');
      const payload: LockPayload & { lock_id: string; generation: number } = {
        active: 1,
        pid: process.pid,
        host: HOST,
        start_ts_utc: r.start_ts_utc,
        ttl_sec: o.ttlSec,
        reason: o.reason,
        cmd: o.cmd,
        lock_id: lockId,
        generation: Number(r.generation),
      };
      const group = `${this.#setting.url}\n${this.#setting.schema}\n${o.name}`;
      if (broke) for (const h of holders.get(group) ?? []) h.markCompromised(new Error(`run lock ${o.name} is now held by ${describeHolder(payload)}`));
      const held = new HeldPgRunLock(c, { name: o.name, S, log: o.log, onCompromised: o.onCompromised, where: this.where(o.name), group }, payload, broke);
      o.log.info({ lock: this.where(o.name), ...payload }, `run lock ${o.name} acquired`);
      return { lock: held };
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      if (advisory) await c.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [key]).catch(() => undefined);
      throw err;
    }
  }

  #warnTakeover(o: Resolved, broke: BrokenLock): void {
    const h = broke.holder;
    const why =
      broke.why === 'ttl_expired'
        ? `its ttl of ${h?.ttl_sec}s from ${h?.start_ts_utc} has passed (database clock)`
        : broke.why === 'forced'
          ? `--force-lock-break (reason: ${o.reason})`
          : 'its lock session ended (the process died, or its connection was lost)';
    o.log.warn(
      {
        lock: this.where(o.name),
        why: broke.why,
        pid: h?.pid ?? null,
        host: h?.host ?? null,
        start_ts_utc: h?.start_ts_utc ?? null,
        lock_id: h?.lock_id ?? null,
        generation: h?.generation ?? null,
        reason: o.reason,
      },
      `breaking run lock ${o.name} held by ${describeHolder(h)}: ${why}`,
    );
  }
}

function nowOf(o: Resolved): string | null {
  return o.now ? new Date(o.now()).toISOString() : null;
}

function heldError(code: ErrorCode, message: string, hint: string, details: Record<string, unknown>): MetaspnError {
  return new MetaspnError(code, message, { hint, details });
}

interface HeldOptions {
  name: string;
  /** The quoted schema. */
  S: string;
  log: RunLockLog;
  onCompromised: ((err: Error) => void) | undefined;
  where: string;
  group: string;
}

/**
 * One acquisition of a PostgreSQL run lock: its lock session holds the advisory lock until
 * release. `stillHeld()` is what this process knows without a round trip: not released, not
 * taken over (a takeover by this process marks it at once; one by another host ends this
 * session, noticed as soon as the driver sees it, and every PG_LOCK_TIMING.watchMs a read of the
 * row checks the generation). `whileHeld` and `whileHeldTx` check the row itself, holding it.
 */
export class HeldPgRunLock extends HeldRunLockBase implements RunLock, PgTxFence {
  #payload: LockPayload & { lock_id: string; generation: number };
  readonly #c: pg.Client;
  readonly #o: HeldOptions;
  #sessionLost = false;
  /** Fenced functions and watch reads run one at a time on the session: the end of the last one queued (never its value). */
  #turn: Promise<void> = Promise.resolve();
  #busy = false;

  constructor(
    c: pg.Client,
    o: HeldOptions,
    payload: LockPayload & { lock_id: string; generation: number },
    readonly broke: BrokenLock | null,
  ) {
    super({ name: o.name, where: o.where, log: o.log, onCompromised: o.onCompromised, lostHow: 'its session ended' });
    this.#c = c;
    this.#o = o;
    this.#payload = payload;
    const lost = (): void => {
      if (this.releasing) return;
      this.#sessionLost = true;
      this.markCompromised(new Error(`run lock ${o.name}: its lock session ended (terminated by a breaker, or the connection was lost)`));
    };
    c.on('error', lost);
    c.on('end', lost);
    let set = holders.get(o.group);
    if (!set) holders.set(o.group, (set = new Set()));
    set.add(this);
    this.startWatch(PG_LOCK_TIMING.watchMs, () => void this.#poll());
  }

  get payload(): LockPayload {
    return this.#payload;
  }

  /** The fencing token of this acquisition: 1 for the lock's first, one more at each after it. */
  get generation(): number {
    return this.#payload.generation;
  }

  stillHeld(): boolean {
    return !this.releasing && !this.compromised && !this.#sessionLost;
  }

  whileHeld<T>(fn: () => T | Promise<T>): Promise<T> {
    return this.#fenced(async () => fn(), false);
  }

  /**
   * Like `whileHeld`, and `fn`'s statements run on the lock session inside the fenced transaction:
   * they commit only while this holder holds the lock (a publish: PgStores.publish). A lock lost
   * meanwhile (its session ended) commits nothing.
   * @throws RunLockLostError (30) without calling `fn` when the lock is no longer held, or when its
   *   session ended before the commit (nothing of `fn`'s statements committed); LOCK_TIMEOUT (40)
   *   when the row stays busy PG_LOCK_TIMING.rowWaitMs; whatever `fn` throws (rolled back).
   */
  whileHeldTx<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.#fenced(() => fn(this.#c), true);
  }

  #fenced<T>(fn: () => Promise<T>, tx: boolean): Promise<T> {
    if (this.releasing) return Promise.reject(new RunLockLostError(this.#o.name, null, new Error('released by this holder')));
    const run = this.#turn.then(async () => {
      this.#busy = true;
      try {
        return await this.#inFence(fn, tx);
      } finally {
        this.#busy = false;
      }
    });
    this.#turn = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  async #inFence<T>(fn: () => Promise<T>, tx: boolean): Promise<T> {
    const c = this.#c;
    if (!this.stillHeld()) throw new RunLockLostError(this.#o.name, null);
    let row: { generation: string; lock_id: string | null; active: number } | undefined;
    try {
      await c.query('BEGIN');
      await c.query(`SET LOCAL lock_timeout = ${PG_LOCK_TIMING.rowWaitMs}`);
      row = (
        await c.query<{ generation: string; lock_id: string | null; active: number }>(`SELECT generation::text AS generation, lock_id, active FROM ${this.#o.S}.run_lock WHERE name = $1 FOR UPDATE`, [
          this.#o.name,
        ])
      ).rows[0];
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      if ((err as { code?: string }).code === '55P03') {
        throw new MetaspnError('LOCK_TIMEOUT', `run lock ${this.#o.name}: its row stayed busy for ${PG_LOCK_TIMING.rowWaitMs / 1000}s; not publishing`, {
          hint: 'another session is taking the lock over or stuck inside one; re-run once it is free',
        });
      }
      this.#sessionLost = true;
      this.markCompromised(err as Error);
      throw new RunLockLostError(this.#o.name, null, err as Error);
    }
    if (!row || row.lock_id !== this.#payload.lock_id || Number(row.generation) !== this.#payload.generation || row.active !== 1) {
      await c.query('ROLLBACK').catch(() => undefined);
      const err = new Error(`run lock ${this.#o.name} moved to generation ${row?.generation ?? '(none)'}`);
      this.markCompromised(err);
      throw new RunLockLostError(this.#o.name, null, err);
    }
    let out: T;
    try {
      out = await fn();
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      // The session ended under fn's statements (a breaker terminated it, the connection dropped):
      // nothing of them committed, and the lock is no longer this holder's.
      if (tx && (this.#sessionLost || isUnavailable(err))) {
        this.#sessionLost = true;
        this.markCompromised(err as Error);
        throw new RunLockLostError(this.#o.name, null, err as Error);
      }
      throw err;
    }
    try {
      await c.query('COMMIT');
    } catch (err) {
      this.#sessionLost = true;
      this.markCompromised(err as Error);
      // With `tx` nothing of fn's statements committed (or, at worst, an ambiguous commit); without
      // it fn's own writes happened while the lock could no longer be vouched for.
      if (tx) throw new RunLockLostError(this.#o.name, null, err as Error);
      this.#o.log.warn({ lock: this.#o.where, err: (err as Error).message }, `run lock ${this.#o.name}: its session ended during a fenced write; the write was made, the lock is lost`);
    }
    return out;
  }

  /** From a timer: never throws. */
  async #poll(): Promise<void> {
    if (this.releasing || this.compromised || this.#busy) return;
    const check = this.#turn.then(async () => {
      if (this.releasing || this.compromised) return;
      try {
        const r = (
          await this.#c.query<{ generation: string; lock_id: string | null; active: number }>(`SELECT generation::text AS generation, lock_id, active FROM ${this.#o.S}.run_lock WHERE name = $1`, [
            this.#o.name,
          ])
        ).rows[0];
        if (!r || r.lock_id !== this.#payload.lock_id || r.active !== 1) this.markCompromised(new Error(`run lock ${this.#o.name} is held by generation ${r?.generation ?? '(none)'} now`));
      } catch (err) {
        this.watchFailed(err);
      }
    });
    this.#turn = check.then(
      () => undefined,
      () => undefined,
    );
    await this.#turn;
  }

  protected lostFields(): Record<string, unknown> {
    return { lock_id: this.#payload.lock_id, generation: this.#payload.generation };
  }

  /** Never rejects: marks our row released (never a successor's), frees the advisory lock, ends the session. */
  protected async releaseOnce(): Promise<void> {
    holders.get(this.#o.group)?.delete(this);
    if (holders.get(this.#o.group)?.size === 0) holders.delete(this.#o.group);
    await this.#turn;
    const c = this.#c;
    try {
      if (!this.#sessionLost) {
        await c.query('BEGIN');
        await c.query(`SET LOCAL lock_timeout = ${PG_LOCK_TIMING.rowWaitMs}`);
        const r = await c.query(`UPDATE ${this.#o.S}.run_lock SET active = 0 WHERE name = $1 AND lock_id = $2 AND active = 1 RETURNING 1`, [this.#o.name, this.#payload.lock_id]);
        // Freed before the commit: an acquirer that gets the row next finds the lock free.
        await c.query('SELECT pg_advisory_unlock_all()');
        await c.query('COMMIT');
        if (r.rowCount === 1) {
          this.#payload = { ...this.#payload, active: 0 };
          if (!this.compromised) this.#o.log.info({ lock: this.#o.where, lock_id: this.#payload.lock_id }, `run lock ${this.#o.name} released`);
        } else {
          this.#o.log.warn({ lock: this.#o.where, lock_id: this.#payload.lock_id }, `run lock ${this.#o.name} was taken over while held; leaving the current holder's lock alone`);
        }
      } else {
        this.#o.log.warn({ lock: this.#o.where, lock_id: this.#payload.lock_id }, `run lock ${this.#o.name} was lost while held (its session ended); nothing to release`);
      }
    } catch (err) {
      // Ending the session frees the lock anyway; the row is taken over at once by the next acquirer.
      this.#o.log.warn({ lock: this.#o.where, err: (err as Error)?.message ?? String(err) }, `run lock ${this.#o.name}: could not mark the row released; the session ends, which frees the lock`);
    } finally {
      await c.end().catch(() => undefined);
    }
  }
}
