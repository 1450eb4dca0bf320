import { join } from 'node:path';
import { MetaspnError, UsageError } from '../../guard/errors.js';
import { Mutex } from '../../storage/mutex.js';
import { deadletterDir, queueDir, workspacePaths } from '../../storage/paths.js';
import type { QueueClock } from '../clock.js';
import { leaseOf } from '../lease.js';
import { clockOf, DEFAULT_MAX_ATTEMPTS, QUEUE_DEFAULTS, queueFull, type QueueOptions } from '../options.js';
import { ownerAlive } from '../owner.js';
import { checkTaskId, newRecord, recordAfterCancel, recordAfterDiscard, recordAfterFailure, recordAfterRetry } from '../record.js';
import { checkGroup } from '../validate.js';
import { refusal, type Event } from '../state.js';
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
import { CompactionTrigger } from './compaction-trigger.js';
import { DeadLetterFiles } from './deadletter-files.js';
import { DeadLetterMirror } from './deadletter-mirror.js';
import { HeldTasks } from './held.js';
import { LocalStarts } from './local-starts.js';
import { QueueLogConflictError } from './loader.js';
import { QueueLogFile } from './log-file.js';
import { ENQS_MAX, type LogRecord } from './records.js';
import { reclaimIn } from './reclaim.js';
import { taskAt, type BatchKind, type Round } from './round.js';
import { RoundEngine, type Answer } from './rounds.js';
import type { ConflictRepair } from './salvage.js';
import { Scopes } from './scope.js';
import { keepShapes } from './shapes.js';
import { FreshBatch, S_CANCELLED, S_COMPLETED, S_DEAD, S_LEASED, S_READY, S_SCHEDULED } from './slots.js';
import { StatsWriter } from './stats-file.js';
import { TornTail } from './torn-tail.js';

export interface FileQueueOptions extends QueueOptions {
  /** Workspace root: the queue lives in queue/<name>/, its dead letters in deadletter/<name>/. */
  workspace: string;
  /** Group-commit window for acknowledgements, in ms. Default 2. */
  ack_window_ms?: number;
  /** How long ids of completed tasks stay known to enqueue's dedup. Default 24 h. */
  completed_retention_ms?: number;
  /** How many completed ids are kept at most. Default 100000. */
  completed_retention_count?: number;
  /** Compaction runs once the log exceeds this size and three times its live bytes. Default 8 MiB. */
  compact_min_bytes?: number;
  /**
   * A worker's start marks (queue/<worker>/starts/, docs/QUEUE-FORMAT.md) go into the log as one
   * `start` record, and its file is emptied, once the file holds more than this many bytes of marks.
   * Default 256 KiB; 1 to 64 MiB.
   */
  start_marks_fold_bytes?: number;
  /** Warnings about torn or corrupt records go here. Default: none. */
  warn?: (msg: string, details: Record<string, unknown>) => void;
}

/**
 * The file backend. One append-only, checksummed log per queue generation; every process keeps
 * the queue's state in memory by replaying it, and changes it by appending records under a short
 * cross-process lock. See docs/QUEUE-FORMAT.md.
 *
 * This class turns each call of the Queue interface into an operation of the next locked round
 * (rounds.ts), which runs it against a Round (round.ts): the only way to the queue's state. The
 * other concerns live beside it: the log file, its recovery and reload (log-file.ts), torn tails
 * (torn-tail.ts), dead-letter files (deadletter-mirror.ts), when to compact (compaction-trigger.ts),
 * the stats snapshot (stats-file.ts), the tasks this process holds (held.ts) and the reclaiming of
 * leases whose owner is gone (reclaim.ts).
 */
export class FileQueue implements Queue {
  readonly name: string;
  private readonly dir: string;
  /** Leases and waits are measured on its monotonic clock (src/queue/clock.ts). */
  private readonly clock: QueueClock;
  private readonly maxAttempts: number;
  private readonly alive: (o: Owner) => boolean;
  private readonly maxQueueSize: number;
  private readonly warn: (msg: string, details: Record<string, unknown>) => void;
  private readonly mutex: Mutex;
  private readonly dead: DeadLetterMirror;
  private readonly statsFile: StatsWriter;
  private readonly compaction: CompactionTrigger;
  private readonly file: QueueLogFile;
  private readonly rounds: RoundEngine;
  private readonly held = new HeldTasks();
  private readonly scopes = new Scopes();
  private readonly starts: LocalStarts;

  constructor(opts: FileQueueOptions) {
    keepShapes(() => new FileQueue({ workspace: opts.workspace, name: opts.name }));
    this.name = opts.name;
    const ws = workspacePaths(opts.workspace);
    this.dir = queueDir(ws, opts.name);
    this.clock = clockOf(opts);
    this.maxAttempts = opts.max_attempts ?? DEFAULT_MAX_ATTEMPTS;
    this.alive = opts.ownerAlive ?? ownerAlive;
    this.maxQueueSize = opts.max_queue_size ?? 0;
    this.warn = opts.warn ?? (() => undefined);
    this.mutex = new Mutex(join(this.dir, '.mutex'), `queue ${this.name}`);
    this.dead = new DeadLetterMirror(new DeadLetterFiles(deadletterDir(ws, opts.name)));
    this.statsFile = new StatsWriter(this.dir);
    this.compaction = new CompactionTrigger(
      { ms: opts.completed_retention_ms ?? 86_400_000, count: opts.completed_retention_count ?? 100_000 },
      opts.compact_min_bytes ?? 8 << 20,
    );
    const torn = new TornTail(this.dir, this.name, this.clock, this.warn);
    this.file = new QueueLogFile(this.dir, this.name, this.clock, torn, (log) => {
      this.dead.reconcile(log, (n) => taskAt(log, n, this.name));
      this.held.rebase(log);
      // Defined once the constructor has run: the first load happens in a round, after it.
      this.starts?.reloaded();
    });
    this.rounds = new RoundEngine({
      queue: this.name,
      mutex: this.mutex,
      file: this.file,
      clock: this.clock,
      ackWindow: opts.ack_window_ms ?? QUEUE_DEFAULTS.ack_window_ms,
      dead: this.dead,
      compaction: this.compaction,
      stats: this.statsFile,
    });
    this.starts = new LocalStarts(this.dir, this.clock, this.held, (kind, urgent, run) => this.rounds.submit(kind, urgent, run), opts.start_marks_fold_bytes);
  }

  // ---- the Queue interface: each call becomes an op of the next locked round ----

  enqueue(tasks: readonly NewTask[], opts: EnqueueOptions = {}): Promise<EnqueueResult> {
    for (let i = 0; i < tasks.length; i++) {
      const t = tasks[i]!;
      const bad = checkTaskId(t.id) ?? (t.group !== undefined ? checkGroup(t.group) : null);
      if (bad) return Promise.reject(new UsageError(bad));
    }
    return this.rounds.submit('enq', true, (r) => {
      const idx = r.idx;
      if (this.maxQueueSize > 0) {
        const open = idx.counts[S_READY]! + idx.counts[S_SCHEDULED]! + idx.counts[S_LEASED]!;
        const fresh = new Set(tasks.filter((t) => idx.ids.get(t.id) < 0).map((t) => t.id)).size;
        if (open + fresh > this.maxQueueSize) throw queueFull(this.name, open, fresh, this.maxQueueSize);
      }
      // Sized for the whole call, filled in order and cut to length at the end.
      const added = new Array<string>(tasks.length);
      let addedCount = 0;
      const result: EnqueueResult = { added, existing: [], rerun: [] };
      idx.reserveFresh(tasks.length);
      // Fresh tasks go out ENQS_MAX to a line (one `enqs`; a lone one as an `enq`), in the order given.
      const batch = new FreshBatch(ENQS_MAX);
      const flush = (): void => {
        if (batch.count === 1) {
          r.emit({ t: 'enq', n: idx.slots.count, at: r.at, task: newRecord(this.name, tasks[batch.picks[0]!]!, this.maxAttempts, r.at) });
        } else if (batch.count > 1) r.emitFresh(tasks, batch.picks, batch.count, this.name, this.maxAttempts);
        batch.clear();
      };
      for (let i = 0; i < tasks.length; i++) {
        const t = tasks[i]!;
        const n = idx.ids.getFresh(t.id, batch, i);
        if (n === -1) {
          added[addedCount++] = t.id;
          if (batch.count === ENQS_MAX) flush();
          continue;
        }
        if (n >= 0) {
          const over = idx.slots.state[n] === S_COMPLETED || idx.slots.state[n] === S_CANCELLED;
          if (opts.rerun_completed && over && idx.slots.recOff[n]! >= 0) {
            const rec = r.log.recordAt(n) as { task?: TaskRecord } | null;
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
        }
        // Indexed already, or given twice in this call.
        result.existing.push(t.id);
      }
      flush();
      added.length = addedCount;
      return () => result;
    });
  }

  claim(opts: ClaimOptions): Promise<ClaimedTask[]> {
    return this.rounds.submit('claim', true, (r) => {
      const log = r.log;
      if (log.idx.paused || opts.max <= 0) return () => [];
      const marks = this.starts.reader(r, this.alive);
      reclaimIn(r, this.alive, marks);
      const slots = log.idx.pickClaimable(r.now, opts.max, opts.only ? this.scopes.of(r, opts.only) : undefined);
      if (slots.length === 0) return () => (marks.sweep(), []);
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
        marks.sweep();
        const mine = slots.filter((s) => log.idx.slots.state[s] === S_LEASED && log.idx.ownerId(s) === opts.owner.id);
        const records = log.recordsAt(mine);
        this.starts.know(opts.owner);
        return mine.map((s, i) => {
          const task = (records[i] as { task?: TaskRecord } | null)?.task;
          if (!task) throw new MetaspnError('STATE_CORRUPT', `queue ${this.name}: the record of task slot ${s} does not read back`);
          this.held.hold(s, task, opts.owner.id, log.idx.slots.fence[s]!, log.idx.slots.time[s]!);
          return { task, lease: leaseOf(log.idx.status(s), r.reading) };
        });
      };
    });
  }

  /**
   * Marks a lease's handler as begun. For a lease this process claimed, with at least
   * START_MARK_MARGIN_MS of it left, the mark goes to its owner's start-mark file (no locked round;
   * local-starts.ts); otherwise a `start` record goes in the next round.
   */
  start(id: string, lease: Lease): Promise<boolean> {
    return this.starts.start(id, lease, this.lockedStart) ?? this.lockedStart(id, lease);
  }

  /** A start as a `start` record in the next locked round. */
  private readonly lockedStart = (id: string, lease: Lease): Promise<boolean> =>
    this.pairOp(id, lease, { type: 'start', owner: lease.owner, fence: lease.fence }, 'start', S_LEASED);

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
      // The short form (only what the failure changes) onto a task whose record is a long one;
      // after a short one, the long form, so a task always reads back from at most two lines.
      (r, n) =>
        r.idx.slots.failLen[n] === 0
          ? { t: 'fail', at: r.at, o: lease.owner, n, f: lease.fence, ms: delay_ms, id, a: r.idx.slots.attempts[n]! + 1, e: error }
          : { t: 'fail', at: r.at, o: lease.owner, n, f: lease.fence, ms: delay_ms, task: recordAfterFailure(this.heldTask(r, id, n), error, r.at) },
      (r, n) => (r.idx.slots.state[n] === S_DEAD ? 'dead' : 'scheduled'),
    );
  }

  deadLetter(id: string, lease: Lease, error: Omit<TaskError, 'attempt'>): Promise<boolean> {
    const ev: Event = { type: 'dead_letter', owner: lease.owner, fence: lease.fence };
    return this.leaseOp(
      id,
      ev,
      false,
      (r, n) => ({ t: 'dead', at: r.at, o: lease.owner, n, f: lease.fence, task: recordAfterFailure(this.heldTask(r, id, n), error, r.at) }),
      () => true,
    );
  }

  retry(opts: { ids?: readonly string[]; by: string }): Promise<string[]> {
    return this.rounds.submit('retry', true, (r) => {
      const idx = r.idx;
      const slots = opts.ids ? opts.ids.map((id) => idx.ids.get(id)).filter((s) => s >= 0) : [...idx.deadSlots].sort((a, b) => a - b);
      const moved: string[] = [];
      for (const n of slots) {
        if (idx.slots.state[n] !== S_DEAD) continue;
        const task = recordAfterRetry(r.taskAt(n), opts.by, r.at);
        r.emit({ t: 'retry', at: r.at, n, task });
        moved.push(task.id);
      }
      return () => moved;
    });
  }

  cancel(opts: CancelOptions): Promise<string[]> {
    const bad = checkGroup(opts.group);
    if (bad) return Promise.reject(new UsageError(bad));
    return this.rounds.submit('cancel', true, (r) => {
      const log = r.log;
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
    return this.rounds.submit('discard', true, (r) => {
      const idx = r.idx;
      const slots = opts.ids ? [...new Set(opts.ids)].map((id) => idx.ids.get(id)).filter((s) => s >= 0) : [...idx.deadSlots].sort((a, b) => a - b);
      const discarded: string[] = [];
      for (const n of slots) {
        if (idx.slots.state[n] !== S_DEAD) continue;
        // Leaving the dead state removes its dead-letter file in this round, under the lock.
        const task = recordAfterDiscard(r.taskAt(n), opts.by, opts.reason, r.at);
        if (r.emit({ t: 'discard', at: r.at, n, task })) discarded.push(task.id);
      }
      return () => discarded;
    });
  }

  nextDueAt(only?: ReadonlySet<string>): Promise<number | null> {
    return this.rounds.submit('next_due', true, (r) => {
      const idx = r.idx;
      if (!only) {
        const due = idx.stats(this.name, r.now, 0).next_due_at;
        return () => due;
      }
      let due: number | null = null;
      for (const n of this.scopes.of(r, only).slots) if (idx.slots.state[n] === S_SCHEDULED) due = Math.min(due ?? Infinity, idx.slots.time[n]!);
      const wall = due === null ? null : idx.wall(due);
      return () => wall;
    });
  }

  pause(by: string): Promise<void> {
    return this.rounds.submit('pause', true, (r) => {
      r.emit({ t: 'pause', at: r.at, by });
      return () => undefined;
    });
  }

  resume(by: string): Promise<void> {
    return this.rounds.submit('resume', true, (r) => {
      r.emit({ t: 'resume', at: r.at, by });
      return () => undefined;
    });
  }

  stats(): Promise<QueueStats> {
    return this.rounds.submit('stats', true, (r) => () => {
      const log = r.log;
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
    return this.rounds.submit('compact', true, () => {
      this.compaction.force();
      return () => undefined;
    });
  }

  reclaimExpired(): Promise<string[]> {
    return this.rounds.submit('reclaim', true, (r) => {
      const marks = this.starts.reader(r, this.alive);
      const ids = reclaimIn(r, this.alive, marks);
      return () => (marks.sweep(), ids);
    });
  }

  states(ids: readonly string[]): Promise<(TaskState | null)[]> {
    return this.rounds.submit('states', true, (r) => {
      const idx = r.idx;
      const out = ids.map((id) => {
        const n = idx.ids.get(id);
        return n >= 0 ? idx.stateOf(n) : null;
      });
      return () => out;
    });
  }

  getTask(id: string): Promise<TaskView | null> {
    return this.rounds.submit('task', true, (r) => {
      const idx = r.idx;
      const n = idx.ids.get(id);
      // A slot kept only for dedup (a compacted completed or cancelled task) has no record left.
      // The record kept from this process's claim only while that lease is still the task's: a
      // reclaim (of an expired lease, by any process) wrote a newer one.
      const h = n >= 0 ? this.held.get(id) : undefined;
      const mine = h !== undefined && idx.slots.state[n] === S_LEASED && idx.slots.fence[n] === h.fence ? h.task : undefined;
      const rec = n >= 0 ? ((mine ?? (r.log.recordAt(n) as { task?: TaskRecord } | null)?.task) ?? null) : null;
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
    await this.starts.close();
    await this.rounds.close();
    this.statsFile.close();
    this.mutex.close();
    this.file.close();
  }

  // ---- operations inside a round ----

  private repairRound(): Promise<{ reclaimed: string[]; corrupt_set_aside: number }> {
    return this.rounds.submit('repair', true, (r) => {
      const marks = this.starts.reader(r, this.alive);
      const reclaimed = reclaimIn(r, this.alive, marks);
      const corrupt = r.log.corrupt.length;
      if (corrupt > 0) this.compaction.force();
      return () => {
        marks.sweep();
        return { reclaimed, corrupt_set_aside: corrupt };
      };
    });
  }

  /**
   * Salvages a log that holds conflicts, holding the queue's lock; this instance's rounds wait
   * meanwhile. Null when, under the lock, the log replays cleanly after all (repaired meanwhile).
   */
  private salvageConflict(): Promise<ConflictRepair | null> {
    return this.rounds.exclusive(() => {
      const done = this.file.salvage(this.mutex, this.compaction.retention, this.warn);
      if (!done) return null;
      this.statsFile.snapshot(this.name, this.file.generation, done.log, this.clock.read());
      return done.repair;
    });
  }

  /**
   * An operation on a task this process holds. Checked against the state before anything is
   * written, so a fenced-off holder writes nothing; `done` reads the outcome right after applying.
   */
  private leaseOp<T>(id: string, ev: Event, refused: T, make: (r: Round, n: number) => LogRecord, done: (r: Round, n: number) => T): Promise<T> {
    return this.rounds.submit(ev.type, false, (r): Answer => {
      const idx = r.idx;
      const n = this.held.slot(id) ?? idx.ids.get(id);
      if (n < 0 || refusal(idx.status(n), ev, r.now) !== null) return () => refused;
      if (!r.emit(make(r, n))) return () => refused;
      this.held.drop(id);
      const value = done(r, n);
      return () => value;
    });
  }

  /** A lease operation that rides in the round's batched record; answered once that record is applied. */
  private pairOp(id: string, lease: Lease, ev: Event, t: BatchKind, expect: number, ms?: number): Promise<boolean> {
    return this.rounds.submit(ev.type, t === 'renew' || t === 'start', (r): Answer => {
      const idx = r.idx;
      const n = this.held.slot(id) ?? idx.ids.get(id);
      if (n < 0 || refusal(idx.status(n), ev, r.now) !== null || !r.pair(t, lease.owner, n, lease.fence, ms)) return () => false;
      if (t !== 'renew' && t !== 'start') this.held.drop(id);
      return () => {
        const ok = idx.slots.state[n] === expect && idx.slots.fence[n] === lease.fence;
        // A renewal pushes out the expiry a start mark is judged by (local-starts.ts).
        const h = ok && t === 'renew' ? this.held.get(id) : undefined;
        if (h && h.fence === lease.fence) h.expires = idx.slots.time[n]!;
        return ok;
      };
    });
  }

  /** The record of a task this process claimed (kept from the claim), else read back. */
  private heldTask(r: Round, id: string, n: number): TaskRecord {
    return this.held.task(id) ?? r.taskAt(n);
  }
}
