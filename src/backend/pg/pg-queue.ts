import { MetaspnError, UsageError } from '../../guard/errors.js';
import { clockOf, DEFAULT_MAX_ATTEMPTS, QUEUE_DEFAULTS, queueFull, type QueueOptions } from '../../queue/options.js';
import { reclaimError } from '../../queue/memory.js';
import { checkTaskId, deadLetterOf, iso } from '../../queue/record.js';
import { checkGroup } from '../../queue/validate.js';
import type { QueueClock } from '../../queue/clock.js';
import type {
  CancelOptions,
  ClaimOptions,
  ClaimedTask,
  DeadLetter,
  DiscardOptions,
  EffectsCommit,
  EffectsOutcome,
  EnqueueOptions,
  EnqueueResult,
  FailOutcome,
  Lease,
  NewTask,
  Owner,
  Queue,
  QueueStats,
  StartsAhead,
  TaskEffect,
  TaskError,
  TaskRecord,
  TaskState,
  TaskView,
} from '../../queue/types.js';
import { inTransactionOnce, isUnavailable, pgError, retryingRefused, sharedPool, type PgPool, type PoolLease } from './connection.js';
import { AckBatcher, GroupWindow, type AckKind, type AckOp } from './acks.js';
import { commitEffectsBatch, settleCompletion, type CompletionContext } from './completions.js';
import { EffectsBatcher } from './effects.js';
import { ensureSchema } from './migrations.js';
import { holdPresence, type PresenceHandle } from './presence.js';
import { DEFAULT_POOL_MAX, DEFAULT_SCHEMA, type PgSetting } from './setting.js';
import { plainArray, textArray } from './params.js';
import { prepared, statements, type Statements } from './statements.js';
import { WAKE_CHANNEL, WakeListener } from './wake.js';

/** Task states by their code in the `state` column. */
const STATES: readonly TaskState[] = ['ready', 'scheduled', 'leased', 'completed', 'dead', 'cancelled'];

/** How many expired leases one claim gives back before it claims (the rest: the next claims). */
const RECLAIM_BATCH = 1000;

/** Default of {@link PgQueueOptions.presence_check_ms}. */
const PRESENCE_CHECK_MS = 500;

/** Claims prune completed and cancelled tasks past retention at most this often (ms). */
const PRUNE_EVERY_MS = 60_000;

/** Leases without their start mark a queue remembers at most (PgQueue.unmarked; more: it forgets them, and their marks go to the rows). */
const MARKED_MAX = 100_000;

/** Rows one prune statement deletes at most. */
const PRUNE_BATCH = 10_000;

export interface PgQueueOptions extends QueueOptions {
  /** The database and schema (src/backend/pg/setting.ts). `url` is used unless `pool` is given. */
  setting: Pick<PgSetting, 'url' | 'source'> & Partial<Pick<PgSetting, 'schema' | 'pool_max'>>;
  /**
   * A pool to use instead of the process's shared one for `setting.url` (two pools in one process
   * behave as two hosts). The queue does not end a pool it was given.
   */
  pool?: PgPool;
  /**
   * TEST ONLY: the time, in epoch ms, every statement takes as the database's `now()` (passed as a
   * parameter, River's `$now` pattern), so a test can move the database clock by hand. Unset in
   * production: the database clock decides every lease, due time and expiry.
   */
  dbNow?: () => number;
  /**
   * Hold a presence session for each owner that claims (presence.ts), and hand out the leases of
   * owners whose presence ended without waiting for their expiry. Default true; ignored when
   * `ownerAlive` is given (that judge decides instead).
   */
  presence?: boolean;
  /**
   * How often a claim looks up the presence of lease owners, checks its own presence session with a
   * round trip and gives back expired leases before claiming, in ms (default 500; 0: every claim).
   * In between, a claim gives back expired leases only when it comes back short, then claims again
   * for the rest ({@link PgQueue.claim}): the same tasks in the same order, one statement a claim;
   * an expired lease stays leased up to this long after a full claim (stats count it as leased).
   * `reclaimExpired` always does all of it.
   */
  presence_check_ms?: number;
  /**
   * Group-commit window of lease operations (start, renew, complete, release), in ms: the calls
   * made within it share one statement per kind. Default 2; 0: the next turn of the event loop.
   */
  ack_window_ms?: number;
  /**
   * How long completed and cancelled tasks are kept (ms, on the database clock), as the file
   * backend's `completed_retention_ms`: past it their rows are deleted ({@link PgQueue.prune}), an
   * enqueue of their id adds it afresh, and `queue stats` still counts them. Default 24 h.
   */
  completed_retention_ms?: number;
  /** How many completed and cancelled tasks are kept at most (the newest). Default 100000. */
  completed_retention_count?: number;
  /**
   * How many prefetched tasks beyond the free slots the worker loop marks started ahead of their
   * turn ({@link StartsAhead}), 0–4096. Their marks share a commit instead of one each before every
   * handler; a worker that dies charges at most this many tasks whose handler never ran an attempt
   * (as graphile-worker, Oban and River charge every fetched job). Default 128; 0: each task is
   * marked as its handler is about to run.
   */
  start_ahead?: number;
}

/** Default of {@link PgQueueOptions.start_ahead}: QUEUE_DEFAULTS.start_ahead. */
export const DEFAULT_START_AHEAD = QUEUE_DEFAULTS.start_ahead;

const ACK_WHAT: Record<AckKind, string> = { start: 'starting a task', renew: 'renewing a lease', complete: 'completing a task', release: 'releasing a task' };

/**
 * The PostgreSQL backend of {@link Queue}: the file backend's semantics (src/queue/state.ts), with
 * every state change one guarded statement and every time decision on the database clock.
 *
 * - Claims take due retries first, then ready tasks in the order they became ready, with
 *   `FOR UPDATE SKIP LOCKED`: concurrent claimers on any number of hosts never wait for each
 *   other and never get the same task.
 * - Leases expire on the database clock. The caller's clock (`now`/`clock` of QueueOptions) only
 *   stamps the record's own times (`updated_at`, retries, cancellations, as the file backend does)
 *   and turns database times into the caller's wall-clock times for display: a time shown is the
 *   caller's now plus what remains on the database clock, so a caller whose clock is off shows
 *   right remainders and decides nothing.
 * - Fencing: complete, fail, renew, start and release match on (state, fence, owner) in the
 *   statement itself; a holder that lost its lease changes nothing.
 * - Owner liveness: lease expiry on the database clock, sped up by presence (presence.ts): an owner
 *   holds an advisory lock on a session of its own while it lives, and the leases of an owner
 *   whose session ended are handed out at once. `ownerAlive`, when given, decides instead (asked
 *   about the owners of current leases by id, pid and host); pid and host are never checked by
 *   this backend itself.
 * - Counts by state and totals come from counters kept by triggers (exact at commit).
 * - Back-pressure (`max_queue_size`) holds exactly under concurrent enqueuers: they serialise on
 *   the queue's row.
 * The schema is migrated on first use (src/backend/pg/migrations.ts). Errors of the driver become
 * MetaspnErrors (exit 11 unreachable, 20 refused login, 50 other; connection.ts).
 */
export class PgQueue implements Queue, EffectsCommit, StartsAhead {
  readonly name: string;
  /** Prefetched tasks the worker loop may mark started ahead of their turn ({@link PgQueueOptions.start_ahead}). */
  readonly start_ahead: number;
  /** Effects commit in the transaction of the completion ({@link completeWithEffects}). */
  readonly atomic = true;
  private readonly sql: Statements;
  private readonly pool: PgPool;
  private readonly lease: PoolLease | null;
  private readonly schema: string;
  private readonly clock: QueueClock;
  private readonly maxAttempts: number;
  private readonly maxQueueSize: number;
  private readonly setting: PgQueueOptions['setting'] & { schema: string };
  private readonly alive: ((o: Owner) => boolean) | undefined;
  private readonly dbNow: (() => number) | undefined;
  private readonly owners = new Set<string>();
  /**
   * Leases this queue handed out whose claim has a `claim_mark` row (schema-v9.ts) and that the
   * claim did not mark started: by task id, the claim's number and the lease. Their start marks
   * go to that row; any other start (a lease not found here) is the row statement `start`.
   */
  private readonly unmarked = new Map<string, { claim: number; fence: number; owner: string }>();
  private readonly presence: boolean;
  private readonly presences = new Map<string, PresenceHandle>();
  private presenceCheckedAt = 0;
  private readonly presenceCheckMs: number;
  private readonly retention: { ms: number; count: number };
  private prunedAt = Date.now();
  private pruning: Promise<void> | null = null;
  private wake: WakeListener | null = null;
  private readonly acks: AckBatcher;
  /**
   * Start marks, in a window of their own written at the next turn of the event loop: a buffered
   * task's handler waits for its mark, so marks never wait behind a batch of completions or for
   * the ack window (docs/PERFORMANCE.md, 2026-12-01 07:00–08:30).
   */
  private readonly marks: AckBatcher;
  private readonly fx: EffectsBatcher;
  private readonly fails: GroupWindow<FailOp>;
  private schemaReady: Promise<void> | null = null;
  private hasRow = false;
  private closed = false;
  /** {@link outages}: connections lost or refused (idle ones the pool dropped, and statements). */
  private lost = 0;
  private readonly onPoolError = (): void => void this.lost++;
  /** What completions.ts needs of this queue. */
  private readonly cx: CompletionContext;

  constructor(opts: PgQueueOptions) {
    this.name = opts.name;
    this.start_ahead = Math.min(4096, Math.max(0, Math.floor(opts.start_ahead ?? DEFAULT_START_AHEAD)));
    this.schema = opts.setting.schema ?? DEFAULT_SCHEMA;
    this.setting = { ...opts.setting, schema: this.schema };
    this.sql = statements(this.schema);
    if (opts.pool) {
      this.pool = opts.pool;
      this.lease = null;
    } else {
      this.lease = sharedPool({ url: opts.setting.url, pool_max: opts.setting.pool_max ?? DEFAULT_POOL_MAX });
      this.pool = this.lease.pool;
    }
    this.clock = clockOf(opts);
    this.maxAttempts = opts.max_attempts ?? DEFAULT_MAX_ATTEMPTS;
    this.maxQueueSize = opts.max_queue_size ?? 0;
    this.alive = opts.ownerAlive;
    this.dbNow = opts.dbNow;
    this.presence = opts.presence !== false && opts.ownerAlive === undefined;
    this.presenceCheckMs = Math.max(0, opts.presence_check_ms ?? PRESENCE_CHECK_MS);
    this.retention = { ms: opts.completed_retention_ms ?? 86_400_000, count: opts.completed_retention_count ?? 100_000 };
    this.cx = {
      pool: this.pool,
      sql: this.sql,
      name: this.name,
      schema: this.schema,
      setting: this.setting,
      nowParam: () => this.nowParam(),
      ready: (what) => this.ready(what),
      lostConnection: () => void this.lost++,
    };
    this.acks = new AckBatcher(opts.ack_window_ms ?? QUEUE_DEFAULTS.ack_window_ms, (kind, ops) => this.ackBatch(kind, ops));
    this.marks = new AckBatcher(0, (kind, ops) => this.ackBatch(kind, ops));
    this.fx = new EffectsBatcher(opts.ack_window_ms ?? QUEUE_DEFAULTS.ack_window_ms, (ops) => commitEffectsBatch(this.cx, ops));
    this.fails = new GroupWindow<FailOp>(opts.ack_window_ms ?? QUEUE_DEFAULTS.ack_window_ms, (ops) => this.failBatch(ops));
    // An idle connection the server ended (a restart, a terminated session) is dropped by the pool
    // with an 'error' event: the next statement runs on a new connection and would never tell.
    this.pool.on('error', this.onPoolError);
  }

  /**
   * How many times this queue lost its database ({@link StartsAhead.outages}): idle connections the
   * server ended, and statements that found it unreachable or lost their connection. Grows only.
   */
  outages(): number {
    return this.lost;
  }

  async enqueue(tasks: readonly NewTask[], opts: EnqueueOptions = {}): Promise<EnqueueResult> {
    for (const t of tasks) {
      const bad = checkTaskId(t.id) ?? (t.group !== undefined ? checkGroup(t.group) : null);
      if (bad) throw new UsageError(bad);
    }
    // The first of each id counts; a repeat within the batch is `existing` (it is known by then).
    const first = new Map<string, NewTask>();
    for (const t of tasks) if (!first.has(t.id)) first.set(t.id, t);
    const unique = [...first.values()];
    if (unique.length === 0) return { added: [], existing: [], rerun: [] };
    await this.ready('enqueueing');
    if (!this.hasRow) {
      // The queue's row: what `queue` commands know it by, and what back-pressure locks.
      await this.run('enqueueing', () => this.pool.query(this.sql.ensureQueue, [this.name]));
      this.hasRow = true;
    }
    const wall = this.wallIso();
    // `run` retries the whole transaction (a stale statement, a lost deadlock): once, not nested.
    const { added, rerun } = await this.run('enqueueing', () =>
      inTransactionOnce(this.pool, async (c) => {
        if (this.maxQueueSize > 0) {
          // Enqueuers of this queue serialise on its row: the open count below is exact.
          await c.query(this.sql.lockQueue, [this.name]);
          const open = Number((await c.query<{ open: number }>(this.sql.openCount, [this.name])).rows[0]!.open);
          const ids = unique.map((t) => t.id);
          const known = (await c.query<{ n: number }>(this.sql.knownCount, [this.name, ids])).rows[0]!.n;
          const fresh = ids.length - known;
          if (open + fresh > this.maxQueueSize) throw queueFull(this.name, open, fresh, this.maxQueueSize);
        }
        const ins = await c.query<{ id: string }>(this.sql.insert, [
          this.name,
          this.nowParam(),
          wall,
          unique.map((t) => t.id),
          unique.map((t) => t.max_attempts ?? this.maxAttempts),
          unique.map((t) => t.group ?? null),
          unique.map((t) => JSON.stringify(t.payload ?? null) ?? 'null'),
        ]);
        const addedSet = new Set(ins.rows.map((r) => r.id));
        let rerunSet = new Set<string>();
        if (opts.rerun_completed) {
          const others = unique.filter((t) => !addedSet.has(t.id)).map((t) => t.id);
          if (others.length) {
            const r = await c.query<{ id: string }>(this.sql.rerun, [this.name, this.nowParam(), wall, opts.by ?? 'rerun', others]);
            rerunSet = new Set(r.rows.map((x) => x.id));
            if (rerunSet.size && addedSet.size) {
              const both = unique.filter((t) => addedSet.has(t.id) || rerunSet.has(t.id)).map((t) => t.id);
              await c.query(this.sql.reorder, [this.name, both]);
            }
          }
        }
        // Idle workers of this queue on any host wake at the commit (a hint; they poll anyway).
        if (addedSet.size || rerunSet.size) await c.query(`SELECT pg_notify($1, $2)`, [WAKE_CHANNEL, this.wakeKey()]);
        return { added: addedSet, rerun: rerunSet };
      }),
    );
    const result: EnqueueResult = { added: [], existing: [], rerun: [] };
    const seen = new Set<string>();
    for (const t of tasks) {
      if (seen.has(t.id)) result.existing.push(t.id);
      else if (added.has(t.id)) result.added.push(t.id);
      else if (rerun.has(t.id)) result.rerun.push(t.id);
      else result.existing.push(t.id);
      seen.add(t.id);
    }
    return result;
  }

  async claim(opts: ClaimOptions): Promise<ClaimedTask[]> {
    if (opts.max <= 0) return [];
    await this.ready('claiming');
    // Presence is looked up at most every presence_check_ms by claims (each lookup reads the
    // owners of the queue's leases), and expired leases are given back before the claim as often.
    const look = Date.now() - this.presenceCheckedAt >= this.presenceCheckMs;
    if (!this.owners.has(opts.owner.id)) {
      await this.run('claiming', () => this.pool.query(this.sql.noteOwner, [opts.owner.id, opts.owner.pid, opts.owner.host]));
      this.owners.add(opts.owner.id);
    }
    if (look) this.presenceCheckedAt = Date.now();
    // Presence is checked (on its own session, with a round trip when `look`) while expired leases are given back.
    const [held] = await Promise.all([this.ownPresence(opts.owner, look), look ? this.reclaim(true) : undefined]);
    if (Date.now() - this.prunedAt >= PRUNE_EVERY_MS && !this.pruning) {
      // In the background (a few seconds for a large backlog of completed rows): claims go on.
      this.prunedAt = Date.now();
      this.pruning = this.prune()
        .then(
          () => undefined,
          // Tried again at the next minute (the server may be back by then).
          () => undefined,
        )
        .finally(() => (this.pruning = null));
    }
    // Held (or held again after a lost session) before claiming: a live owner is never taken for
    // gone. Not held: its key is cleared, and its leases are judged by expiry alone.
    if (!held) await this.run('claiming', () => this.pool.query(this.sql.noPresence, [opts.owner.id]));
    const first = Math.max(0, Math.floor(opts.start_first ?? 0));
    const got = await this.claimOnce(opts, opts.max, first);
    if (look || got.length >= opts.max) return got;
    // Short: the leases given back now would have come after every task it took (a lease given
    // back is ready after those already ready, in enqueue order), so giving them back first would
    // have handed out the same tasks, in the same order. A full claim leaves them to the next
    // short claim, or to the next claim after presence_check_ms: one statement a claim, not two.
    if ((await this.reclaim(false)).length === 0) return got;
    return got.concat(await this.claimOnce(opts, opts.max - got.length, Math.max(0, first - got.length)));
  }

  /** One claim statement: at most `max` tasks, the first `first` of them marked started (unless all are). */
  private async claimOnce(opts: ClaimOptions, max: number, first: number): Promise<ClaimedTask[]> {
    const wall = this.clock.read().wall;
    const r = await this.run('claiming', () =>
      this.pool.query<RecordRow & { fence: number; expires: number; now: number; started: boolean; claim: number }>(
        prepared(this.sql.claim, [this.name, this.nowParam(), opts.owner.id, max, opts.lease_ms, opts.only ? [...opts.only] : null, opts.defer_start !== true, first]),
      ),
    );
    // The claim wrote a claim_mark row when it handed out tasks it did not mark (statements.ts claim).
    if (opts.defer_start === true && r.rows.length > first) {
      // Bounded by the leases held: entries leave at their acknowledgement; a queue whose caller drops leases unacknowledged starts afresh.
      if (this.unmarked.size > MARKED_MAX) this.unmarked.clear();
      for (const row of r.rows) if (!row.started) this.unmarked.set(row.id, { claim: row.claim, fence: Number(row.fence), owner: opts.owner.id });
    }
    const marked = opts.defer_start === true;
    return r.rows.map((row) => {
      const c: ClaimedTask = { task: this.recordOf(row), lease: { owner: opts.owner.id, fence: Number(row.fence), expires_at: Math.round(wall + (row.expires - row.now)) } };
      if (marked && row.started) c.started = true;
      return c;
    });
  }

  async start(id: string, lease: Lease): Promise<boolean> {
    return this.ack('start', id, lease);
  }

  async renewLease(id: string, lease: Lease, lease_ms: number): Promise<boolean> {
    return this.ack('renew', id, lease, lease_ms);
  }

  /**
   * When the connection drops during the completion (its commit may or may not have happened), the
   * fence decides: the task is read again on a new connection, and `true` means this holder's
   * completion is the one recorded (completed with this lease's fence: the fence changes only on a
   * claim); a lease still held is completed now; anything else is `false` (lease lost). A database
   * still unreachable after about 1.5 s: `false` too (unknown to this holder; completions.ts).
   *
   * Lease operations (start, renew, complete, release, fail, deadLetter) never throw for an
   * unreachable database: they report the lease as lost, and the worker stops at its next claim,
   * which throws (exit 11).
   */
  async complete(id: string, lease: Lease): Promise<boolean> {
    this.unmarked.delete(id);
    return this.ack('complete', id, lease);
  }

  /**
   * Completes the task and writes its effects in one transaction: the fenced completion first
   * (it locks the task's row; a lease no longer held ends the transaction with nothing written:
   * `lease_lost`), then the effects (rows of step stores, entries of effect logs; schema-v4.ts),
   * then COMMIT. A crash or a lost connection at any point leaves both or neither. A row whose id
   * is stored with other content rolls all of it back (`conflict`; the task stays leased).
   *
   * A connection dropped during the commit is settled by the fence, as {@link complete} is:
   * completed with this lease's fence means it committed (effects with it); a lease still held
   * means it did not, and the transaction is tried again; anything else is `lease_lost`.
   *
   * Like the other lease operations it never throws for an unreachable database: the outcome is
   * then `lease_lost` (nothing of it is known to be written; the lease expires and the task runs
   * again, its effects written once by whoever completes it).
   *
   * Group-committed like the other acknowledgements: the calls of one `ack_window_ms` share one
   * transaction (one completion statement, one put per store, one insert of log entries). A batch
   * in which rows conflict is rolled back and written again without the tasks that wrote them,
   * which are then completed one by one (each learns `conflict` or `completed` for itself).
   */
  async completeWithEffects(id: string, lease: Lease, effects: readonly TaskEffect[]): Promise<EffectsOutcome> {
    if (this.closed) throw new MetaspnError('INTERNAL_ERROR', `queue ${this.name} is closed (while completing a task with its effects)`);
    this.unmarked.delete(id);
    return this.fx.push(id, lease, effects);
  }

  async release(id: string, lease: Lease): Promise<boolean> {
    this.unmarked.delete(id);
    return this.ack('release', id, lease);
  }

  async fail(id: string, lease: Lease, error: Omit<TaskError, 'attempt'>, delay_ms: number): Promise<FailOutcome> {
    const state = await this.failed(id, lease, error, delay_ms, false);
    return state === null ? 'lease_lost' : state === 4 ? 'dead' : 'scheduled';
  }

  async deadLetter(id: string, lease: Lease, error: Omit<TaskError, 'attempt'>): Promise<boolean> {
    return (await this.failed(id, lease, error, 0, true)) !== null;
  }

  async retry(opts: { ids?: readonly string[]; by: string }): Promise<string[]> {
    await this.ready('retrying dead letters');
    const r = await this.run('retrying dead letters', () => this.pool.query<{ id: string }>(this.sql.retry, [this.name, this.nowParam(), this.wallIso(), opts.by, opts.ids ? [...opts.ids] : null]));
    if (r.rows.length) await this.run('retrying dead letters', () => this.pool.query(`SELECT pg_notify($1, $2)`, [WAKE_CHANNEL, this.wakeKey()]));
    return r.rows.map((x) => x.id);
  }

  /**
   * An idle worker's wait: resolves when tasks of this queue were enqueued (or retried) on any host
   * (LISTEN/NOTIFY on a session of its own, wake.ts), after `ms` at the latest (polling stays the
   * fallback), when `signal` aborts, or at once after (re)starting to listen.
   */
  waitForWork(ms: number, signal: AbortSignal): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.wake ??= new WakeListener(this.setting.url, this.wakeKey());
    return this.wake.wait(ms, signal);
  }

  async cancel(opts: CancelOptions): Promise<string[]> {
    const bad = checkGroup(opts.group);
    if (bad) throw new UsageError(bad);
    await this.ready('cancelling tasks');
    const r = await this.run('cancelling tasks', () =>
      this.pool.query<{ id: string }>(this.sql.cancel, [this.name, this.nowParam(), this.wallIso(), opts.by, opts.reason, opts.group, opts.keep ? [...opts.keep] : []]),
    );
    return r.rows.map((x) => x.id);
  }

  async discard(opts: DiscardOptions): Promise<string[]> {
    await this.ready('discarding dead letters');
    const r = await this.run('discarding dead letters', () =>
      this.pool.query<{ id: string }>(this.sql.discard, [this.name, this.nowParam(), this.wallIso(), opts.by, opts.reason, opts.ids ? [...opts.ids] : null]),
    );
    return r.rows.map((x) => x.id);
  }

  async nextDueAt(only?: ReadonlySet<string>): Promise<number | null> {
    await this.ready('reading the next retry');
    const wall = this.clock.read().wall;
    const r = await this.run('reading the next retry', () => this.pool.query<{ due: number | null; now: number }>(this.sql.nextDue, [this.name, this.nowParam(), only ? [...only] : null]));
    const row = r.rows[0]!;
    return row.due === null ? null : Math.round(wall + (row.due - row.now));
  }

  async pause(by: string): Promise<void> {
    await this.setPaused(true, by);
  }

  async resume(by: string): Promise<void> {
    await this.setPaused(false, by);
  }

  async stats(): Promise<QueueStats> {
    await this.ready('reading queue stats');
    const wall = this.clock.read().wall;
    const r = await this.run('reading queue stats', () =>
      this.pool.query<{ counts: Record<string, string | number>; paused: boolean; next_due: number | null; oldest_ready: number | null; now: number }>(this.sql.stats, [this.name, this.nowParam()]),
    );
    const row = r.rows[0]!;
    const n = (k: number): number => Number(row.counts[String(k)] ?? 0);
    const shown = (t: number | null): number | null => (t === null ? null : Math.round(wall + (t - row.now)));
    // The oldest task waiting to be claimed: the first ready one, or a retry already due.
    const due = row.next_due !== null && row.next_due <= row.now ? row.next_due : null;
    const oldest = row.oldest_ready === null ? due : due === null ? row.oldest_ready : Math.min(due, row.oldest_ready);
    return {
      queue: this.name,
      ready: n(0),
      scheduled: n(1),
      leased: n(2),
      completed: n(3),
      dead: n(4),
      cancelled: n(5),
      paused: row.paused,
      next_due_at: shown(row.next_due),
      oldest_ready_at: shown(oldest),
      corrupt_records: 0,
      totals: { failed: n(10), dead_lettered: n(11), retried: n(12) },
    };
  }

  async reclaimExpired(): Promise<string[]> {
    return this.reclaim(true);
  }

  private async reclaim(lookAtOwners: boolean): Promise<string[]> {
    await this.ready('reclaiming leases');
    const wall = this.clock.read().wall;
    const gone: string[] = [];
    const errors: string[] = [];
    if (this.alive || (this.presence && lookAtOwners)) {
      if (!this.alive) this.presenceCheckedAt = Date.now();
      // Gone owners: those whose presence session ended, or whom an injected judge (tests, an
      // embedding application) declares gone among the current holders.
      const sql = this.alive ? this.sql.leaseOwners : this.sql.goneOwners;
      const owners = await this.run('reclaiming leases', () => this.pool.query<{ owner: string; pid: number | null; host: string | null }>(prepared(sql, [this.name])));
      for (const o of owners.rows) {
        const owner: Owner = { id: o.owner, pid: o.pid ?? 0, host: o.host ?? '' };
        if (!this.alive || !this.alive(owner)) {
          gone.push(o.owner);
          errors.push(JSON.stringify(reclaimError(true, o.pid !== null ? owner : undefined, wall)));
        }
      }
    }
    const expired = JSON.stringify(reclaimError(false, undefined, wall));
    const r = await this.run('reclaiming leases', () => this.pool.query<{ id: string }>(prepared(this.sql.reclaim, [this.name, this.nowParam(), iso(wall), RECLAIM_BATCH, expired, gone, errors])));
    return r.rows.map((x) => x.id);
  }

  /**
   * Deletes the rows of completed and cancelled tasks past retention (`completed_retention_ms`,
   * `completed_retention_count`), in statements of at most 10,000 rows that skip rows locked by
   * others; `queue stats` keeps counting them. Also deletes the `claim_mark` rows of claims with
   * no leased task left (schema-v9.ts). Claims start it in the background once a minute.
   * @returns how many rows were deleted.
   */
  async prune(): Promise<number> {
    await this.ready('pruning completed tasks');
    let total = 0;
    for (;;) {
      const r = await this.run('pruning completed tasks', () =>
        this.pool.query<{ pruned: number }>(this.sql.prune, [this.name, this.nowParam(), this.retention.ms, this.retention.count, PRUNE_BATCH]),
      );
      const n = r.rows[0]!.pruned;
      total += n;
      if (n < PRUNE_BATCH) break;
    }
    await this.run('pruning completed tasks', () => this.pool.query(this.sql.pruneMarks, [this.name]));
    return total;
  }

  async states(ids: readonly string[]): Promise<(TaskState | null)[]> {
    if (ids.length === 0) return [];
    await this.ready('reading task states');
    const r = await this.run('reading task states', () => this.pool.query<{ id: string; state: number }>(this.sql.states, [this.name, [...ids]]));
    const by = new Map(r.rows.map((x) => [x.id, STATES[x.state] ?? null]));
    return ids.map((id) => by.get(id) ?? null);
  }

  async listDead(): Promise<DeadLetter[]> {
    return (await this.dead(null)).sort((a, b) => (a.dead_at < b.dead_at ? -1 : a.dead_at > b.dead_at ? 1 : a.task.id < b.task.id ? -1 : 1));
  }

  async getDead(id: string): Promise<DeadLetter | null> {
    return (await this.dead(id))[0] ?? null;
  }

  async getTask(id: string): Promise<TaskView | null> {
    await this.ready('reading a task');
    const r = await this.run('reading a task', () => this.pool.query<RecordRow & { state: number }>(this.sql.task, [this.name, id]));
    const row = r.rows[0];
    const state = row ? STATES[row.state] : undefined;
    return row && state ? { state, task: this.recordOf(row) } : null;
  }

  /** The names of the queues this schema knows (any that was ever enqueued to or paused), sorted. */
  async queueNames(): Promise<string[]> {
    await this.ready('listing queues');
    const r = await this.run('listing queues', () => this.pool.query<{ name: string }>(this.sql.queueNames));
    return r.rows.map((x) => x.name);
  }

  /**
   * Worker presence across the schema (every queue, not only this one): how many worker processes
   * hold their presence session now, and how many of them hold leases of each queue. For the ops
   * server's /metrics and page; read-only.
   */
  async workersPresent(): Promise<{ present: number; byQueue: Record<string, number> }> {
    await this.ready('reading worker presence');
    const r = await this.run('reading worker presence', () => this.pool.query<{ present: number; by_queue: Record<string, number> }>(this.sql.presence));
    const row = r.rows[0]!;
    return { present: row.present, byQueue: row.by_queue };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Acknowledgements already asked for are written first.
    await Promise.all([this.acks.drain(), this.marks.drain(), this.fx.drain(), this.fails.drain(), this.pruning]);
    this.closed = true;
    this.pool.off('error', this.onPoolError);
    await Promise.all([...this.presences.values()].map((p) => p.release()));
    await this.wake?.close();
    await this.lease?.release();
  }

  // ---- internals ----

  /** This owner's presence held (true), or presence off for this queue (true: nothing to clear); `check`: with a round trip (presence.ts). */
  private async ownPresence(owner: Owner, check: boolean): Promise<boolean> {
    if (!this.presence) return true;
    let p = this.presences.get(owner.id);
    if (!p) this.presences.set(owner.id, (p = holdPresence(this.setting.url, this.sql.workerTable, owner)));
    return p.ensure(check);
  }

  private async dead(id: string | null): Promise<DeadLetter[]> {
    await this.ready('reading dead letters');
    const r = await this.run('reading dead letters', () => this.pool.query<RecordRow>(this.sql.dead, [this.name, id]));
    // dead_at is the failure's wall time (the record's updated_at), as the file backend writes it.
    return r.rows.map((row) => {
      const task = this.recordOf(row);
      return deadLetterOf(task, Date.parse(task.updated_at));
    });
  }

  private async setPaused(paused: boolean, by: string): Promise<void> {
    await this.ready(paused ? 'pausing' : 'resuming');
    await this.run(paused ? 'pausing' : 'resuming', () => this.pool.query(this.sql.pause, [this.name, paused, by, this.wallIso()]));
  }

  /** Lease operations are group-committed per ack window (acks.ts): one statement per kind; start marks in their own window (`marks`). */
  private ack(kind: AckKind, id: string, lease: Lease, ms = 0): Promise<boolean> {
    if (this.closed) return Promise.reject(new MetaspnError('INTERNAL_ERROR', `queue ${this.name} is closed (while ${ACK_WHAT[kind]})`));
    return (kind === 'start' ? this.marks : this.acks).push(kind, id, lease, ms);
  }

  /** One statement for the ops of one kind; each op learns whether its lease was held. */
  private async ackBatch(kind: AckKind, ops: AckOp[]): Promise<void> {
    if (ops.length === 0) return;
    const what = ACK_WHAT[kind];
    try {
      await this.ready(what);
      if (kind === 'start') return await this.startBatch(ops);
      const ids = textArray(ops, (o) => o.id);
      const fences = plainArray(ops, (o) => o.lease.fence);
      const owners = textArray(ops, (o) => o.lease.owner);
      const params = [this.name, this.nowParam(), ids, fences, owners, ...(kind === 'renew' ? [plainArray(ops, (o) => o.ms)] : [])];
      const r = await this.run(what, () => this.pool.query<{ id: string }>(prepared(this.sql[kind], params)));
      const ok = new Set(r.rows.map((x) => x.id));
      for (const o of ops) o.resolve(ok.has(o.id));
    } catch (err) {
      if (isUnavailable((err as { cause?: unknown }).cause ?? err)) {
        // Committed or not, nobody can tell: for a completion the fence decides, task by task;
        // the others report the lease as lost (it is, once it expires: another worker runs it).
        if (kind === 'complete') await Promise.all(ops.map((o) => settleCompletion(this.cx, o.id, o.lease).then(o.resolve, o.reject)));
        else for (const o of ops) o.resolve(false);
        return;
      }
      for (const o of ops) o.reject(err);
    }
  }

  /**
   * Start marks of one window: those of leases whose claim has a claim_mark row go there (one
   * statement, one row per claim), the others to their task rows; each op learns whether it was marked.
   */
  private async startBatch(ops: AckOp[]): Promise<void> {
    const byClaim: AckOp[] = [];
    const byRow: AckOp[] = [];
    for (const o of ops) {
      const u = this.unmarked.get(o.id);
      (u && u.fence === o.lease.fence && u.owner === o.lease.owner ? byClaim : byRow).push(o);
    }
    const ok = new Set<string>();
    await Promise.all([
      byClaim.length
        ? this.run('starting a task', () =>
            this.pool.query<{ ids: string[] }>(
              prepared(this.sql.startMarks, [this.name, plainArray(byClaim, (o) => this.unmarked.get(o.id)!.claim), textArray(byClaim, (o) => o.id), textArray(byClaim, (o) => o.lease.owner)]),
            ),
          ).then((r) => r.rows.forEach((x) => x.ids.forEach((id) => ok.add(id))))
        : undefined,
      byRow.length
        ? this.run('starting a task', () =>
            this.pool.query<{ id: string }>(prepared(this.sql.start, [this.name, textArray(byRow, (o) => o.id), plainArray(byRow, (o) => o.lease.fence), textArray(byRow, (o) => o.lease.owner)])),
          ).then((r) => r.rows.forEach((x) => ok.add(x.id)))
        : undefined,
    ]);
    for (const o of ops) {
      // Marked once: a later start of the same lease (none in the runner) goes to the row.
      this.unmarked.delete(o.id);
      o.resolve(ok.has(o.id));
    }
  }

  /** The state the failure left (1 scheduled, 0 ready, 4 dead), or null: the lease was lost. */
  private failed(id: string, lease: Lease, error: Omit<TaskError, 'attempt'>, delay_ms: number, deadNow: boolean): Promise<number | null> {
    if (this.closed) return Promise.reject(new MetaspnError('INTERNAL_ERROR', `queue ${this.name} is closed (while recording a failure)`));
    this.unmarked.delete(id);
    // Group-committed per ack window, as completions are: the failures of concurrent tasks share a statement (and a commit).
    return new Promise((resolve, reject) => this.fails.add({ id, lease, error: JSON.stringify(error), delay_ms, deadNow, wall: this.wallIso(), resolve, reject }));
  }

  /** One statement for the failures of one window; each learns the state it left, or null (lease lost). */
  private async failBatch(ops: FailOp[]): Promise<void> {
    try {
      await this.ready('recording a failure');
      const r = await this.run('recording a failure', () =>
        this.pool.query<{ id: string; state: number }>(
          prepared(this.sql.failMany, [
            this.name,
            this.nowParam(),
            textArray(ops, (o) => o.id),
            plainArray(ops, (o) => o.lease.fence),
            textArray(ops, (o) => o.lease.owner),
            textArray(ops, (o) => o.error),
            plainArray(ops, (o) => o.delay_ms),
            plainArray(ops, (o) => o.deadNow),
            textArray(ops, (o) => o.wall),
          ]),
        ),
      );
      const state = new Map(r.rows.map((x) => [x.id, x.state]));
      for (const o of ops) o.resolve(state.get(o.id) ?? null);
    } catch (err) {
      // Unreachable: reported as a lost lease; its expiry counts the attempt (lease_expired).
      if (isUnavailable((err as { cause?: unknown }).cause ?? err)) for (const o of ops) o.resolve(null);
      else for (const o of ops) o.reject(err);
    }
  }

  /** The schema is migrated (once per pool: a schema behind is brought up to date, a newer one refused). */
  private ready(what: string): Promise<void> {
    if (this.closed) return Promise.reject(new MetaspnError('INTERNAL_ERROR', `queue ${this.name} is closed (while ${what})`));
    this.schemaReady ??= ensureSchema(this.pool, this.setting);
    const p = this.schemaReady;
    // A failure is not kept: the next call tries again (the server may be back).
    p.catch(() => {
      if (this.schemaReady === p) this.schemaReady = null;
    });
    return p;
  }

  private async run<T>(what: string, f: () => Promise<T>): Promise<T> {
    try {
      // A named statement a schema change or a dropped session made stale runs again, prepared anew;
      // one that lost a deadlock runs again.
      return await retryingRefused(this.pool, f);
    } catch (err) {
      if (isUnavailable(err)) this.lost++;
      throw pgError(err, this.setting, `${what} (queue ${this.name})`);
    }
  }

  /** What wake-ups of this queue carry: `<schema>.<queue>`. */
  private wakeKey(): string {
    return `${this.schema}.${this.name}`;
  }

  /** `$2` of every statement: null (the database clock), or the test clock's time. */
  private nowParam(): string | null {
    return this.dbNow ? new Date(this.dbNow()).toISOString() : null;
  }

  private wallIso(): string {
    return iso(this.clock.read().wall);
  }

  private recordOf(row: RecordRow): TaskRecord {
    const r: TaskRecord = {
      id: row.id,
      queue: this.name,
      payload: JSON.parse(row.payload) as unknown,
      attempt_count: row.attempt_count,
      max_attempts: row.max_attempts,
      created_at: row.created_at,
      updated_at: row.updated_at,
      errors: row.errors,
      retries: row.retries,
    };
    // Set in place (same key order as spreads, without their temporary objects: a claim makes hundreds).
    if (row.grp !== null) r.group = row.grp;
    if (row.cancelled !== null) r.cancelled = row.cancelled;
    return r;
  }
}

/** A failure waiting for its window (failBatch). */
interface FailOp {
  id: string;
  lease: Lease;
  /** The error as JSON text. */
  error: string;
  delay_ms: number;
  deadNow: boolean;
  /** The writer's wall time (ISO), the record's updated_at. */
  wall: string;
  resolve(state: number | null): void;
  reject(err: unknown): void;
}

/** A task row as the statements return it. */
interface RecordRow {
  id: string;
  payload: string;
  attempt_count: number;
  max_attempts: number;
  created_at: string;
  updated_at: string;
  errors: TaskError[];
  retries: TaskRecord['retries'];
  grp: string | null;
  cancelled: TaskRecord['cancelled'] | null;
}
