import { existsSync, fdatasyncSync, fstatSync, readdirSync } from 'node:fs';
import { safeMkdir, safeRm } from '../../storage/safe-path.js';
import { join } from 'node:path';
import { MetaspnError, StateCorruptError, UsageError } from '../../guard/errors.js';
import { Mutex } from '../../storage/mutex.js';
import { deadletterDir, queueDir, workspacePaths } from '../../storage/paths.js';
import { bootAlive, type ClockReading, type QueueClock } from '../clock.js';
import { leaseOf, reclaimError } from '../lease.js';
import { clockOf, DEFAULT_MAX_ATTEMPTS, QUEUE_DEFAULTS, queueFull, type QueueOptions } from '../options.js';
import { HOST, ownerAlive } from '../owner.js';
import { checkTaskId, deadLetterOf, newRecord, recordAfterCancel, recordAfterDiscard, recordAfterFailure, recordAfterRetry } from '../record.js';
import { checkGroup } from '../validate.js';
import { transition, type Event } from '../state.js';
import type {
  CancelOptions,
  ClaimOptions,
  ClaimedTask,
  DeadLetter,
  DiscardOptions,
  EnqueueResult,
  FailOutcome,
  Lease,
  NewTask,
  Owner,
  Queue,
  QueueStats,
  TaskError,
  TaskRecord,
  TaskState,
  EnqueueOptions,
  TaskView,
} from '../types.js';
import { LineBuffer } from './codec.js';
import { compact, type Retention } from './compact.js';
import { DeadLetterFiles } from './deadletter-files.js';
import type { Effects, Scope } from './index-state.js';
import { LoadedLog, QueueLogConflictError } from './loader.js';
import { appendAll, closeQuietly, cutTornTail } from '../../storage/io.js';
import { listGens, logPath, openCurrent } from './log-io.js';
import { needsSync, type LogRecord, type Pair } from './records.js';
import { S_CANCELLED, S_COMPLETED, S_DEAD, S_LEASED, S_READY, S_SCHEDULED } from './slots.js';
import { salvage, type ConflictRepair } from './salvage.js';
import { StatsWriter } from './stats-file.js';

export interface FileQueueOptions extends QueueOptions {
  /** Workspace root: the queue lives in queue/<name>/, its dead letters in deadletter/<name>/. */
  workspace: string;
  /** Group-commit window for acknowledgements, in ms. Default 2. */
  ack_window_ms?: number;
  /** How long ids of completed tasks stay known to enqueue's dedup. Default 24 h. */
  completed_retention_ms?: number;
  /** How many completed ids are kept at most. Default 100000. */
  completed_retention_count?: number;
  /** Compaction runs once the log exceeds this size and four times its live bytes. Default 8 MiB. */
  compact_min_bytes?: number;
  /** Warnings about torn or corrupt records go here. Default: none. */
  warn?: (msg: string, details: Record<string, unknown>) => void;
}

/** About what a completed task's tombstone takes in a compacted log. */
const KEPT_BYTES = 80;

type Resolver = (value: unknown) => void;
type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };
interface Op {
  kind: string;
  /** Answered at the next turn of the event loop; the others wait out the ack window. */
  urgent: boolean;
  /** The task a lease operation is on (its order with other operations on that task is kept). */
  id?: string;
  run: (r: Round) => () => unknown;
  resolve: Resolver;
  reject: (err: unknown) => void;
}

/** What one locked round writes. */
interface Round {
  /** The round's time on the monotonic timeline: what the state machine compares and adds to. */
  now: number;
  /** The same instant on the wall clock (epoch ms): the `at` of records, the times in task records. */
  at: number;
  reading: ClockReading;
  /** Applies the record to the state and queues it for writing; false when the state refused it. */
  emit(r: LogRecord): boolean;
  /**
   * Queues one [slot, fence] of a batched record (done, rel, renew): a round writes one record per
   * kind and owner for all of them. False when the slot already has an operation in this round.
   */
  pair(t: BatchKind, owner: string, n: number, fence: number, ms?: number): boolean;
}

/** Records that batch many [slot, fence] pairs of one owner. */
type BatchKind = 'done' | 'rel' | 'renew' | 'start';
type Batch = { t: BatchKind; o: string; ms: number; l: Pair[] };

/** A claim's `only` resolved against one loaded log: ids looked up once, not per claim. */
interface ScopeCache extends Scope {
  log: LoadedLog;
  /** The set's size when resolved: a set changed in place is resolved again. */
  size: number;
  /** slots.count when the missing ids were last looked up: they are looked up again once it grows. */
  count: number;
  /** Ids of the set not in the log (yet). */
  missing: string[];
  member: Set<number>;
}

/**
 * The file backend. One append-only, checksummed log per queue generation; every process keeps
 * the queue's state in memory by replaying it, and changes it by appending records under a short
 * cross-process lock. See docs/QUEUE-FORMAT.md.
 */
export class FileQueue implements Queue {
  readonly name: string;
  private readonly dir: string;
  /** Leases and waits are measured on its monotonic clock (src/queue/clock.ts). */
  private readonly clock: QueueClock;
  private readonly maxAttempts: number;
  private readonly alive: (o: Owner) => boolean;
  private readonly ackWindow: number;
  private readonly retention: Retention;
  private readonly compactMin: number;
  private readonly maxQueueSize: number;
  private readonly warn: (msg: string, details: Record<string, unknown>) => void;
  private readonly mutex: Mutex;
  private readonly dead: DeadLetterFiles;
  private readonly statsFile: StatsWriter;

  private fd: number | null = null;
  private gen = 0;
  private log: LoadedLog | null = null;
  private needReload = true;
  /** Tasks this process claimed and still holds: their slot, and their record as claimed. */
  private held = new Map<string, { slot: number; task: TaskRecord }>();
  /** Claim scopes (ClaimOptions.only) already resolved, by the caller's set. */
  private scopes = new WeakMap<ReadonlySet<string>, ScopeCache>();
  private pending: Op[] = [];
  private flushing = false;
  private timer: NodeJS.Timeout | null = null;
  private immediate = false;
  /** When the oldest pending operation that is not urgent was submitted (performance.now()); -1: none. */
  private lazySince = -1;
  private closed = false;

  constructor(opts: FileQueueOptions) {
    this.name = opts.name;
    const ws = workspacePaths(opts.workspace);
    this.dir = queueDir(ws, opts.name);
    this.clock = clockOf(opts);
    this.maxAttempts = opts.max_attempts ?? DEFAULT_MAX_ATTEMPTS;
    this.alive = opts.ownerAlive ?? ownerAlive;
    this.ackWindow = opts.ack_window_ms ?? QUEUE_DEFAULTS.ack_window_ms;
    this.retention = { ms: opts.completed_retention_ms ?? 86_400_000, count: opts.completed_retention_count ?? 100_000 };
    this.compactMin = opts.compact_min_bytes ?? 8 << 20;
    this.maxQueueSize = opts.max_queue_size ?? 0;
    this.warn = opts.warn ?? (() => undefined);
    this.mutex = new Mutex(join(this.dir, '.mutex'), `queue ${this.name}`);
    this.dead = new DeadLetterFiles(deadletterDir(ws, opts.name));
    this.statsFile = new StatsWriter(this.dir);
  }

  // ---- the Queue interface: each call becomes an op of the next locked round ----

  enqueue(tasks: readonly NewTask[], opts: EnqueueOptions = {}): Promise<EnqueueResult> {
    for (const t of tasks) {
      const bad = checkTaskId(t.id) ?? (t.group !== undefined ? checkGroup(t.group) : null);
      if (bad) return Promise.reject(new UsageError(bad));
    }
    return this.submit('enq', true, (r) => {
      const result: EnqueueResult = { added: [], existing: [], rerun: [] };
      const idx = this.state().idx;
      const at = new Date(r.at).toISOString();
      if (this.maxQueueSize > 0) {
        const open = idx.counts[S_READY]! + idx.counts[S_SCHEDULED]! + idx.counts[S_LEASED]!;
        const fresh = new Set(tasks.filter((t) => idx.ids.get(t.id) < 0).map((t) => t.id)).size;
        if (open + fresh > this.maxQueueSize) throw queueFull(this.name, open, fresh, this.maxQueueSize);
      }
      for (const t of tasks) {
        const n = idx.ids.get(t.id);
        if (n >= 0) {
          const over = idx.slots.state[n] === S_COMPLETED || idx.slots.state[n] === S_CANCELLED;
          if (opts.rerun_completed && over && idx.slots.recOff[n]! >= 0) {
            const rec = this.state().recordAt(n) as { task?: TaskRecord } | null;
            const by = opts.by ?? 'rerun';
            // A completed id kept by a compaction has only its tombstone left: the task is written afresh.
            const ok = rec?.task
              ? r.emit({ t: 'rerun', at: r.at, n, task: recordAfterRetry(rec.task, by, r.at) })
              : r.emit({
                  t: 'snap',
                  n,
                  s: 'ready',
                  f: idx.slots.fence[n]!,
                  tm: r.at,
                  ...(r.reading.boot !== null ? { mt: r.now } : {}),
                  task: recordAfterRetry(newRecord(this.name, t, this.maxAttempts, r.at), by, r.at),
                });
            if (ok) {
              result.rerun.push(t.id);
              continue;
            }
          }
          result.existing.push(t.id);
          continue;
        }
        const task = newRecord(this.name, t, this.maxAttempts, r.at, at);
        r.emit({ t: 'enq', n: idx.slots.count, at: r.at, task });
        result.added.push(t.id);
      }
      return () => result;
    });
  }

  claim(opts: ClaimOptions): Promise<ClaimedTask[]> {
    return this.submit('claim', true, (r) => {
      const log = this.state();
      if (log.idx.paused || opts.max <= 0) return () => [];
      this.reclaimIn(r);
      const slots = log.idx.pickClaimable(r.now, opts.max, opts.only ? this.scopeOf(opts.only) : undefined);
      if (slots.length === 0) return () => [];
      const fences = slots.map((s) => log.idx.slots.fence[s]! + 1);
      r.emit({
        t: 'claim',
        at: r.at,
        o: opts.owner.id,
        pid: opts.owner.pid,
        host: opts.owner.host,
        ms: opts.lease_ms,
        ...(opts.defer_start ? {} : { st: 1 as const }),
        l: slots.map((s, i) => [s, fences[i]!]),
      });
      return () => {
        const mine = slots.filter((s) => log.idx.slots.state[s] === S_LEASED && log.idx.ownerId(s) === opts.owner.id);
        const records = log.recordsAt(mine);
        return mine.map((s, i) => {
          const task = (records[i] as { task?: TaskRecord } | null)?.task;
          if (!task) throw new MetaspnError('STATE_CORRUPT', `queue ${this.name}: the record of task slot ${s} does not read back`);
          this.held.set(task.id, { slot: s, task });
          return { task, lease: leaseOf(log.idx.status(s), r.reading) };
        });
      };
    });
  }

  start(id: string, lease: Lease): Promise<boolean> {
    return this.pairOp(id, lease, { type: 'start', owner: lease.owner, fence: lease.fence }, 'start', S_LEASED);
  }

  renewLease(id: string, lease: Lease, lease_ms: number): Promise<boolean> {
    return this.pairOp(id, lease, { type: 'renew', owner: lease.owner, fence: lease.fence, lease_ms }, 'renew', S_LEASED, lease_ms);
  }

  complete(id: string, lease: Lease): Promise<boolean> {
    return this.pairOp(id, lease, { type: 'complete', owner: lease.owner, fence: lease.fence }, 'done', S_COMPLETED);
  }

  release(id: string, lease: Lease): Promise<boolean> {
    return this.pairOp(id, lease, { type: 'release', owner: lease.owner, fence: lease.fence }, 'rel', S_READY);
  }

  fail(id: string, lease: Lease, error: Omit<TaskError, 'attempt'>, delay_ms: number): Promise<FailOutcome> {
    const ev: Event = { type: 'fail', owner: lease.owner, fence: lease.fence, delay_ms };
    return this.leaseOp<FailOutcome>(
      id,
      ev,
      'lease_lost',
      (r, n) => ({ t: 'fail', at: r.at, o: lease.owner, n, f: lease.fence, ms: delay_ms, task: recordAfterFailure(this.heldTask(id, n), error, r.at) }),
      (n) => (this.state().idx.slots.state[n] === S_DEAD ? 'dead' : 'scheduled'),
    );
  }

  deadLetter(id: string, lease: Lease, error: Omit<TaskError, 'attempt'>): Promise<boolean> {
    const ev: Event = { type: 'dead_letter', owner: lease.owner, fence: lease.fence };
    return this.leaseOp(
      id,
      ev,
      false,
      (r, n) => ({ t: 'dead', at: r.at, o: lease.owner, n, f: lease.fence, task: recordAfterFailure(this.heldTask(id, n), error, r.at) }),
      () => true,
    );
  }

  retry(opts: { ids?: readonly string[]; by: string }): Promise<string[]> {
    return this.submit('retry', true, (r) => {
      const idx = this.state().idx;
      const slots = opts.ids ? opts.ids.map((id) => idx.ids.get(id)).filter((s) => s >= 0) : [...idx.deadSlots].sort((a, b) => a - b);
      const moved: string[] = [];
      for (const n of slots) {
        if (idx.slots.state[n] !== S_DEAD) continue;
        const task = recordAfterRetry(this.taskAt(n), opts.by, r.at);
        r.emit({ t: 'retry', at: r.at, n, task });
        moved.push(task.id);
      }
      return () => moved;
    });
  }

  cancel(opts: CancelOptions): Promise<string[]> {
    const bad = checkGroup(opts.group);
    if (bad) return Promise.reject(new UsageError(bad));
    return this.submit('cancel', true, (r) => {
      const log = this.state();
      const slots = log.idx.cancellable(opts.group);
      const cancelled: string[] = [];
      for (let i = 0; i < slots.length; i += 4096) {
        const batch = slots.slice(i, i + 4096);
        const records = log.recordsAt(batch);
        batch.forEach((n, k) => {
          const task = (records[k] as { task?: TaskRecord } | null)?.task;
          if (!task) throw new MetaspnError('STATE_CORRUPT', `queue ${this.name}: the record of task slot ${n} does not read back`);
          if (opts.keep?.has(task.id)) return;
          if (r.emit({ t: 'cancel', at: r.at, n, task: recordAfterCancel(task, opts.by, opts.reason, r.at) })) cancelled.push(task.id);
        });
      }
      return () => cancelled;
    });
  }

  discard(opts: DiscardOptions): Promise<string[]> {
    return this.submit('discard', true, (r) => {
      const idx = this.state().idx;
      const slots = opts.ids ? [...new Set(opts.ids)].map((id) => idx.ids.get(id)).filter((s) => s >= 0) : [...idx.deadSlots].sort((a, b) => a - b);
      const discarded: string[] = [];
      for (const n of slots) {
        if (idx.slots.state[n] !== S_DEAD) continue;
        // Leaving the dead state removes its dead-letter file in this round, under the lock.
        const task = recordAfterDiscard(this.taskAt(n), opts.by, opts.reason, r.at);
        if (r.emit({ t: 'discard', at: r.at, n, task })) discarded.push(task.id);
      }
      return () => discarded;
    });
  }

  nextDueAt(only?: ReadonlySet<string>): Promise<number | null> {
    return this.submit('next_due', true, (r) => {
      const idx = this.state().idx;
      if (!only) {
        const due = idx.stats(this.name, r.now, 0).next_due_at;
        return () => due;
      }
      let due: number | null = null;
      for (const n of this.scopeOf(only).slots) if (idx.slots.state[n] === S_SCHEDULED) due = Math.min(due ?? Infinity, idx.slots.time[n]!);
      const wall = due === null ? null : idx.wall(due);
      return () => wall;
    });
  }

  pause(by: string): Promise<void> {
    return this.submit('pause', true, (r) => {
      r.emit({ t: 'pause', at: r.at, by });
      return () => undefined;
    });
  }

  resume(by: string): Promise<void> {
    return this.submit('resume', true, (r) => {
      r.emit({ t: 'resume', at: r.at, by });
      return () => undefined;
    });
  }

  stats(): Promise<QueueStats> {
    return this.submit('stats', true, (r) => () => {
      const log = this.state();
      return log.idx.stats(this.name, r.now, log.corrupt.length);
    });
  }

  /**
   * What `metaspn doctor --repair` does to a queue, in one locked round: loading cuts a torn tail
   * into quarantine/, removes leftovers of a crashed compaction and rewrites missing or broken
   * dead-letter files; then expired leases and leases of dead owners go back; then, when corrupt
   * records were skipped, a compaction sets them aside in quarantine/. Nothing is deleted.
   *
   * A log whose replay meets a conflict (a record no writer holding the lock writes, see
   * docs/QUEUE-FORMAT.md) fails every round, so it is salvaged first, under the lock: every task
   * is kept, the ones a conflict touched are made ready again, and the result is written as the
   * next generation the way a compaction writes one. `conflict` reports what was done.
   */
  async repair(): Promise<{ reclaimed: string[]; corrupt_set_aside: number; conflict?: ConflictRepair }> {
    let conflict: ConflictRepair | null = null;
    try {
      return await this.repairRound();
    } catch (err) {
      if (!(err instanceof QueueLogConflictError)) throw err;
      conflict = await this.salvageConflict();
    }
    const after = await this.repairRound();
    return conflict ? { ...after, conflict } : after;
  }

  /**
   * Compacts the log now, in one locked round, whatever its size: the live state is written as the
   * next generation (see docs/QUEUE-FORMAT.md, Compaction). Normally a round does this by itself
   * once the log is large enough.
   */
  compact(): Promise<void> {
    return this.submit('compact', true, () => {
      this.forceCompaction = true;
      return () => undefined;
    });
  }

  private repairRound(): Promise<{ reclaimed: string[]; corrupt_set_aside: number }> {
    return this.submit('repair', true, (r) => {
      const reclaimed = this.reclaimIn(r);
      const corrupt = this.state().corrupt.length;
      if (corrupt > 0) this.forceCompaction = true;
      return () => ({ reclaimed, corrupt_set_aside: corrupt });
    });
  }

  /**
   * Salvages a log that holds conflicts, holding the queue's lock; this instance's rounds wait
   * meanwhile. Null when, under the lock, the log replays cleanly after all (repaired meanwhile).
   */
  private async salvageConflict(): Promise<ConflictRepair | null> {
    while (this.flushing) await new Promise((resolve) => setImmediate(resolve));
    this.flushing = true;
    try {
      await this.mutex.acquire();
      try {
        return this.salvageLocked();
      } finally {
        this.mutex.releaseLock();
      }
    } finally {
      this.flushing = false;
      if (this.pending.length) this.schedule(true);
    }
  }

  private salvageLocked(): ConflictRepair | null {
    closeQuietly(this.fd);
    this.fd = null;
    this.log = null;
    this.needReload = true;
    safeMkdir(this.dir);
    this.removeLeftovers();
    const { gen, fd } = openCurrent(this.dir);
    this.fd = fd;
    this.gen = gen;
    const file = logPath(this.dir, gen);
    // The strict replay once more, now that nobody else can append: is there still a conflict?
    const strict = new LoadedLog(() => fd, file, this.clock);
    try {
      strict.readMore();
      return null;
    } catch (err) {
      if (!(err instanceof QueueLogConflictError)) throw err;
    }
    const me = this.clock.read();
    const { log, tail, report } = salvage(fd, file, this.clock);
    if (tail > 0) this.cutTornTail(log, tail);
    this.mutex.assertHeld();
    log.idx.me = me;
    const next = compact(this.dir, gen, log, fd, me, this.retention);
    // The new generation is replayed strictly like any other; dead-letter files follow it.
    this.reload();
    this.writeStats(this.clock.read());
    this.warn('queue log salvaged after a replay conflict', { queue: this.name, file, offset: strict.conflict!.offset, generation: next });
    return { conflict: strict.conflict!, file, salvage: report, generation: logPath(this.dir, next) };
  }

  private forceCompaction = false;

  reclaimExpired(): Promise<string[]> {
    return this.submit('reclaim', true, (r) => {
      const ids = this.reclaimIn(r);
      return () => ids;
    });
  }

  states(ids: readonly string[]): Promise<(TaskState | null)[]> {
    return this.submit('states', true, () => {
      const idx = this.state().idx;
      const out = ids.map((id) => {
        const n = idx.ids.get(id);
        return n >= 0 ? idx.stateOf(n) : null;
      });
      return () => out;
    });
  }

  getTask(id: string): Promise<TaskView | null> {
    return this.submit('task', true, () => {
      const idx = this.state().idx;
      const n = idx.ids.get(id);
      // A slot kept only for dedup (a compacted completed or cancelled task) has no record left.
      const rec = n >= 0 ? ((this.held.get(id)?.task ?? (this.state().recordAt(n) as { task?: TaskRecord } | null)?.task) ?? null) : null;
      const out: TaskView | null = rec ? { state: idx.stateOf(n), task: rec } : null;
      return () => out;
    });
  }

  async listDead(): Promise<DeadLetter[]> {
    return this.dead.list();
  }

  async getDead(id: string): Promise<DeadLetter | null> {
    return this.dead.read(id);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.pending.length) await this.flush(true);
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.statsFile.close();
    this.mutex.close();
    closeQuietly(this.fd);
    this.fd = null;
  }

  // ---- rounds ----

  /**
   * An operation on a task this process holds. Checked against the state before anything is
   * written, so a fenced-off holder writes nothing; `done` reads the outcome right after applying.
   */
  private leaseOp<T>(id: string, ev: Event, refused: T, make: (r: Round, n: number) => LogRecord, done: (n: number) => T): Promise<T> {
    return this.submit(ev.type, false, id, (r) => {
      const idx = this.state().idx;
      const n = this.held.get(id)?.slot ?? idx.ids.get(id);
      if (n < 0 || !transition(idx.status(n), ev, r.now).ok) return () => refused;
      if (!r.emit(make(r, n))) return () => refused;
      this.held.delete(id);
      const value = done(n);
      return () => value;
    });
  }

  /** A lease operation that rides in the round's batched record; answered once that record is applied. */
  private pairOp(id: string, lease: Lease, ev: Event, t: BatchKind, expect: number, ms?: number): Promise<boolean> {
    return this.submit(ev.type, t === 'renew' || t === 'start', id, (r) => {
      const idx = this.state().idx;
      const n = this.held.get(id)?.slot ?? idx.ids.get(id);
      if (n < 0 || !transition(idx.status(n), ev, r.now).ok || !r.pair(t, lease.owner, n, lease.fence, ms)) return () => false;
      if (t !== 'renew' && t !== 'start') this.held.delete(id);
      return () => idx.slots.state[n] === expect && idx.slots.fence[n] === lease.fence;
    });
  }

  /** The record of a task this process claimed (kept from the claim), else read back. */
  private heldTask(id: string, n: number): TaskRecord {
    return this.held.get(id)?.task ?? this.taskAt(n);
  }

  private submit<T>(kind: string, urgent: boolean, run: (r: Round) => () => unknown): Promise<T>;
  private submit<T>(kind: string, urgent: boolean, id: string, run: (r: Round) => () => unknown): Promise<T>;
  private submit<T>(kind: string, urgent: boolean, a: string | ((r: Round) => () => unknown), b?: (r: Round) => () => unknown): Promise<T> {
    if (this.closed) return Promise.reject(new MetaspnError('INTERNAL_ERROR', `queue ${this.name} is closed`));
    const [id, run] = typeof a === 'string' ? [a, b!] : [undefined, a];
    return new Promise<T>((resolve, reject) => {
      if (!urgent && this.lazySince < 0) this.lazySince = performance.now();
      this.pending.push({ kind, urgent, ...(id !== undefined ? { id } : {}), run, resolve: resolve as Resolver, reject });
      this.schedule(urgent);
    });
  }

  private schedule(urgent: boolean): void {
    if (this.flushing) return;
    if (urgent || this.ackWindow <= 0) {
      if (this.timer) {
        clearTimeout(this.timer);
        this.timer = null;
      }
      if (!this.immediate) {
        this.immediate = true;
        setImmediate(() => {
          this.immediate = false;
          void this.flush();
        });
      }
    } else if (!this.timer && !this.immediate) {
      this.timer = setTimeout(() => {
        this.timer = null;
        void this.flush();
      }, this.ackWindow);
    }
  }

  /** Runs rounds while there are operations due; `all`: every pending one, ack window or not (close). */
  private async flush(all = false): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      for (;;) {
        const ops = this.takeRound(all);
        if (ops.length === 0) break;
        await this.runRound(ops);
      }
    } finally {
      this.flushing = false;
      // Operations left to their ack window: flushed when it closes.
      if (this.pending.length && !this.timer && !this.immediate) {
        const wait = this.lazySince < 0 ? 0 : Math.max(0, this.lazySince + this.ackWindow - performance.now());
        this.timer = setTimeout(() => {
          this.timer = null;
          void this.flush();
        }, wait);
      }
    }
  }

  /**
   * The operations of the next round: every pending one, except while the ack window of the
   * pending acknowledgements is open and the only urgent operations are starts. Then the starts
   * go alone (a start needs no fsync: see needsSync) and the acknowledgements keep waiting for
   * their window. Otherwise each start dragged the acknowledgements pending beside it into a
   * round of its own, and its handler waited for their fsync: a worker ran at most its
   * concurrency in tasks per fsync. A start on a task with an operation pending before it waits
   * with that operation, so operations on one task keep their order. (A claim still takes every
   * pending operation with it: `--once` reads an empty claim as the queue's state after them.)
   */
  private takeRound(all: boolean): Op[] {
    const ops = this.pending;
    if (ops.length === 0) return ops;
    const open = !all && this.lazySince >= 0 && performance.now() - this.lazySince < this.ackWindow;
    if (open && ops.every((op) => !op.urgent || op.kind === 'start')) {
      const now: Op[] = [];
      const later: Op[] = [];
      const waiting = new Set<string>();
      for (const op of ops) {
        if (op.urgent && !(op.id !== undefined && waiting.has(op.id))) now.push(op);
        else {
          later.push(op);
          if (op.id !== undefined) waiting.add(op.id);
        }
      }
      this.pending = later;
      return now;
    }
    this.pending = [];
    this.lazySince = -1;
    return ops;
  }

  private async runRound(ops: Op[]): Promise<void> {
    let outcomes: Outcome[] = [];
    let syncNeeded = false;
    try {
      await this.mutex.acquire();
    } catch (err) {
      for (const op of ops) op.reject(err);
      return;
    }
    try {
      ({ outcomes, syncNeeded } = this.roundLocked(ops));
    } catch (err) {
      this.needReload = true;
      this.mutex.releaseLock();
      for (const op of ops) op.reject(err);
      return;
    }
    this.mutex.releaseLock();
    try {
      // Group commit outside the lock: others append while this fsync runs; it covers their bytes too.
      if (syncNeeded && this.fd !== null) fdatasyncSync(this.fd);
    } catch (err) {
      this.needReload = true;
      for (const op of ops) op.reject(err);
      return;
    }
    ops.forEach((op, i) => {
      const o = outcomes[i]!;
      if (o.ok) op.resolve(o.value);
      else op.reject(o.error);
    });
  }

  private roundLocked(ops: Op[]): { outcomes: Outcome[]; syncNeeded: boolean } {
    const log = this.catchUp();
    const start = log.end;
    const lines = new LineBuffer();
    let end = start;
    let syncNeeded = false;
    const effects: Effects = { dead: [], undead: [] };
    log.idx.effects = effects;
    const reading = this.clock.read();
    // Every record of the round is placed on the reading's monotonic timeline (see src/queue/clock.ts).
    log.idx.me = reading;
    const write = (rec: LogRecord): boolean => {
      const len = lines.add(rec);
      const refused = log.idx.refused;
      log.unwritten.set(end, rec);
      log.idx.apply(rec, end, len);
      end += len;
      if (needsSync(rec)) syncNeeded = true;
      return log.idx.refused === refused;
    };
    const round: Round = {
      now: reading.mono,
      at: reading.wall,
      reading,
      emit: (rec) => {
        if (reading.boot !== null && rec.t !== 'clk') {
          // The monotonic times that follow count from this boot: said once, before the first of them.
          if (log.idx.logBoot !== reading.boot) write({ t: 'clk', at: reading.wall, m: reading.mono, b: reading.boot });
          // Set on the caller's fresh record, not a copy: a spread copy is a slow (dictionary) object,
          // which made encoding and checking every enqueued record several times slower.
          if ('at' in rec) (rec as { m?: number }).m = reading.mono;
        }
        return write(rec);
      },
      pair: (t, o, n, fence, ms = 0) => {
        if (paired.has(n)) return false;
        paired.add(n);
        const key = `${t}|${o}|${ms}`;
        let b = batches.get(key);
        if (!b) batches.set(key, (b = { t, o, ms, l: [] }));
        b.l.push([n, fence]);
        return true;
      },
    };
    const batches = new Map<string, Batch>();
    const paired = new Set<number>();
    let results: Array<() => unknown>;
    try {
      results = ops.map((op) => op.run(round));
      for (const b of batches.values()) {
        if (b.t === 'renew') round.emit({ t: 'renew', at: round.at, o: b.o, ms: b.ms, l: b.l });
        else round.emit({ t: b.t, at: round.at, o: b.o, l: b.l });
      }
    } finally {
      log.idx.effects = null;
    }
    if (lines.length > 0) {
      log.unwritten.clear();
      this.fence(start);
      appendAll(this.fd!, lines.bytes(), start);
      log.end = end;
    }
    if (effects.dead.length || effects.undead.length) {
      // Dead-letter files follow the log, under the lock, so they never race a retry.
      fdatasyncSync(this.fd!);
      syncNeeded = false;
      for (const n of effects.dead) this.dead.write(deadLetterOfTask(this.taskAt(n)));
      for (const n of effects.undead) this.dead.remove(this.taskAt(n).id);
    }
    // Answers are read now, under the lock and before a compaction renumbers the slots.
    const outcomes = results.map((f): Outcome => {
      try {
        return { ok: true, value: f() };
      } catch (error) {
        return { ok: false, error };
      }
    });
    if (this.forceCompaction || this.compactionDue(log, end)) {
      this.forceCompaction = false;
      fdatasyncSync(this.fd!);
      syncNeeded = false;
      this.compactNow(reading);
    }
    this.writeStats(reading);
    return { outcomes, syncNeeded };
  }

  /**
   * Checked before the bytes reach the file: this process holds the queue's lock, and the log
   * ends where its replay ended. Anything else means a writer that did not hold the lock (a
   * process of an older version, a hand edit): nothing is written, the round fails with
   * STATE_CORRUPT (30), and the next one replays afresh.
   */
  private fence(start: number): void {
    this.mutex.assertHeld();
    const size = fstatSync(this.fd!).size;
    if (size !== start) {
      this.needReload = true;
      throw new StateCorruptError(`queue ${this.name}: ${logPath(this.dir, this.gen)} grew from ${start} to ${size} bytes without the queue's lock; nothing written`, {
        hint: 'another writer appended without the lock (an older metaspn?); stop it, then run `metaspn doctor --workspace DIR`',
      });
    }
  }

  /** Compaction copies the live part; waiting until it is a third of the file keeps the copying under one write per byte. */
  private compactionDue(log: LoadedLog, end: number): boolean {
    if (end < this.compactMin) return false;
    const kept = Math.min(log.idx.counts[3]!, this.retention.count) * KEPT_BYTES;
    return end > 3 * (log.idx.liveBytes + kept);
  }

  /** The loaded log; valid only inside a round. */
  private state(): LoadedLog {
    if (!this.log) throw new MetaspnError('INTERNAL_ERROR', 'queue state used outside a round');
    return this.log;
  }

  private catchUp(): LoadedLog {
    // A compaction renames the next generation in, then unlinks ours: either shows here.
    if (this.needReload || this.fd === null || fstatSync(this.fd).nlink === 0 || existsSync(logPath(this.dir, this.gen + 1))) {
      return this.reload();
    }
    const log = this.log!;
    let tail: number;
    try {
      tail = log.readMore();
    } catch (err) {
      // A conflict (QueueLogConflictError, 30) stays one: every round replays afresh and fails again.
      this.needReload = true;
      throw err;
    }
    if (tail > 0) this.cutTornTail(log, tail);
    this.noteCorrupt(log);
    return log;
  }

  private reload(): LoadedLog {
    closeQuietly(this.fd);
    safeMkdir(this.dir);
    this.removeLeftovers();
    const { gen, fd } = openCurrent(this.dir);
    this.fd = fd;
    this.gen = gen;
    const log = new LoadedLog(() => this.fd!, logPath(this.dir, gen), this.clock);
    // About one task per 250 bytes of log (an enqueue record): size the tables once.
    const expected = Math.floor(fstatSync(fd).size / 250);
    log.idx.slots.reserve(expected);
    log.idx.ids.reserve(expected);
    this.log = log;
    // A conflict throws here (30), before dead-letter files are reconciled with a state not to be trusted.
    const tail = log.readMore();
    if (tail > 0) this.cutTornTail(log, tail);
    this.seenCorrupt = 0;
    this.noteCorrupt(log);
    this.reconcileDeadLetters(log);
    const held = new Map<string, { slot: number; task: TaskRecord }>();
    for (const [id, h] of this.held) {
      const n = log.idx.ids.get(id);
      if (n >= 0 && log.idx.slots.state[n] === S_LEASED) held.set(id, { slot: n, task: h.task });
    }
    this.held = held;
    this.needReload = false;
    return log;
  }

  /** Older generations and temp files a crash left behind (the highest generation is whole). */
  private removeLeftovers(): void {
    const gens = listGens(this.dir);
    for (const g of gens.slice(0, -1)) safeRm(logPath(this.dir, g), { force: true });
    for (const f of readdirSync(this.dir)) if (f.endsWith('.tmp')) safeRm(join(this.dir, f), { force: true });
  }

  /** A writer died mid-line: set its bytes aside in quarantine/ and cut them off before appending. */
  private cutTornTail(log: LoadedLog, tail: number): void {
    cutTornTail(this.fd!, logPath(this.dir, this.gen), log.end, tail, join(this.dir, 'quarantine', 'corrupt.jsonl'), new Date(this.clock.read().wall));
    this.warn('torn last line set aside', { queue: this.name, offset: log.end, length: tail });
  }

  private seenCorrupt = 0;

  private noteCorrupt(log: LoadedLog): void {
    for (const c of log.corrupt.slice(this.seenCorrupt)) {
      this.warn('corrupt queue record skipped (kept until compaction sets it aside)', { queue: this.name, ...c });
    }
    this.seenCorrupt = log.corrupt.length;
  }

  private reconcileDeadLetters(log: LoadedLog): void {
    const files = new Set(this.dead.ids());
    for (const n of log.idx.deadSlots) {
      const task = this.taskAt(n);
      const present = files.delete(task.id);
      // Missing, or half-written by a crash: written again from the log.
      if (!present || this.dead.read(task.id)?.task.id !== task.id) this.dead.write(deadLetterOfTask(task));
    }
    for (const id of files) this.dead.remove(id);
  }

  private compactNow(me: ClockReading): void {
    const log = this.state();
    this.mutex.assertHeld();
    compact(this.dir, this.gen, log, this.fd!, me, this.retention);
    this.reload();
  }

  private writeStats(me: ClockReading): void {
    const log = this.state();
    log.idx.me = me;
    // The reading goes with the wall times it produced: a reader on this boot re-projects them after a step.
    this.statsFile.write({ gen: this.gen, end: log.end, at: me.wall, mono: me.mono, boot: me.boot, stats: log.idx.stats(this.name, me.mono, log.corrupt.length) });
  }

  /**
   * Reclaims leases that expired or whose owner process is gone. Runs inside a round; costs
   * nothing per task while no lease has expired and every owner holding one is alive.
   */
  private reclaimIn(r: Round): string[] {
    const idx = this.state().idx;
    const slots = new Set(idx.expiredLeases(r.now));
    const gone = new Set<number>();
    idx.leasesOf.forEach((count, o) => {
      const owner = idx.owners[o]!;
      // A holder that claimed on an earlier boot of this host is gone, whatever its pid is now.
      if (count > 0 && (!this.alive(owner) || (owner.host === HOST && !bootAlive(idx.ownerBoots[o] ?? null, r.reading)))) gone.add(o);
    });
    if (gone.size) for (const n of idx.leased) if (gone.has(idx.slots.owner[n]!)) slots.add(n);
    const out: string[] = [];
    // Leases whose handler never started (prefetched tasks) go back to ready on their owner's
    // behalf with no attempt charged: one `rel` per owner, written now so this round can claim them.
    const unstarted = new Map<string, Pair[]>();
    for (const n of slots) {
      const owner = idx.ownerOf(n);
      if (owner && idx.slots.started[n] !== 1) {
        const l = unstarted.get(owner.id) ?? unstarted.set(owner.id, []).get(owner.id)!;
        l.push([n, idx.slots.fence[n]!]);
        continue;
      }
      const dead = owner !== null && gone.has(idx.slots.owner[n]!);
      const task = recordAfterFailure(this.taskAt(n), reclaimError(dead, owner ?? undefined, r.at), r.at);
      if (r.emit({ t: 'reclaim', at: r.at, n, f: idx.slots.fence[n]!, task })) out.push(task.id);
    }
    for (const [o, l] of unstarted) {
      r.emit({ t: 'rel', at: r.at, o, l });
      for (const [n] of l) if (idx.slots.state[n] === S_READY) out.push(this.taskAt(n).id);
    }
    return out;
  }

  /**
   * The slots of a claim's `only` in the loaded log, looked up once per set (a lookup confirms the
   * id by reading its record); ids not in the log yet are looked up again when tasks were added.
   */
  private scopeOf(only: ReadonlySet<string>): Scope {
    const log = this.state();
    const idx = log.idx;
    let c = this.scopes.get(only);
    if (!c || c.log !== log || c.size !== only.size) {
      const member = new Set<number>();
      c = { log, size: only.size, count: idx.slots.count, missing: [...only], member, slots: [], has: (n) => member.has(n) };
      this.scopes.set(only, c);
      c.count = -1;
    }
    if (c.missing.length && idx.slots.count !== c.count) {
      const missing: string[] = [];
      for (const id of c.missing) {
        const n = idx.ids.get(id);
        if (n < 0) missing.push(id);
        else if (!c.member.has(n)) {
          c.member.add(n);
          c.slots.push(n);
        }
      }
      c.slots.sort((a, b) => a - b);
      c.missing = missing;
      c.count = idx.slots.count;
    }
    return c;
  }

  private taskAt(n: number): TaskRecord {
    const rec = this.state().recordAt(n) as { task?: TaskRecord } | null;
    if (!rec?.task) throw new MetaspnError('STATE_CORRUPT', `queue ${this.name}: the record of task slot ${n} does not read back`);
    return rec.task;
  }
}

/**
 * A dead letter as written from the log: `dead_at` is the wall time the failure record carries (the
 * task's `updated_at`), so a file written again from the log is byte for byte the first one (a time
 * projected from the monotonic clock could differ by a millisecond between two readers).
 */
function deadLetterOfTask(task: TaskRecord): DeadLetter {
  return deadLetterOf(task, Date.parse(task.updated_at));
}
