import { MetaspnError } from '../../guard/errors.js';
import type { Mutex } from '../../storage/mutex.js';
import type { QueueClock } from '../clock.js';
import type { CompactionTrigger } from './compaction-trigger.js';
import type { DeadLetterMirror } from './deadletter-mirror.js';
import type { QueueLogFile } from './log-file.js';
import { RoundWriter, type Round } from './round.js';
import type { StatsWriter } from './stats-file.js';

/** What an operation answers, read once its round's records are applied (still under the lock). */
export type Answer = () => unknown;

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };
interface Op {
  kind: string;
  /** Answered at the next turn of the event loop; the others wait out the ack window. */
  urgent: boolean;
  /** The task a lease operation is on (its order with other operations on that task is kept). */
  id?: string;
  run: (r: Round) => Answer;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/** What a round is made of besides its operations. */
export interface RoundParts {
  queue: string;
  /** The queue's cross-process lock, held for the whole round. */
  mutex: Mutex;
  file: QueueLogFile;
  clock: QueueClock;
  /** Group-commit window for acknowledgements, in ms. */
  ackWindow: number;
  dead: DeadLetterMirror;
  compaction: CompactionTrigger;
  stats: StatsWriter;
}

/**
 * The group-commit round engine. Every operation on the queue is submitted here and runs inside a
 * locked round with the others pending: the lock is taken, the log caught up, the operations run
 * against a Round (each appending records), the records appended in one write, dead-letter files
 * and a due compaction follow, the stats snapshot is rewritten, and the lock released; the fsync
 * comes after (one for the whole round, covering what other processes appended meanwhile), and
 * only then are the operations answered.
 */
export class RoundEngine {
  private pending: Op[] = [];
  private flushing = false;
  private timer: NodeJS.Timeout | null = null;
  private immediate = false;
  /** When the oldest pending operation that is not urgent was submitted (performance.now()); -1: none. */
  private lazySince = -1;
  private closed = false;

  constructor(private readonly p: RoundParts) {}

  /** Runs `run` in the next round; `id`: the task a lease operation is on. */
  submit<T>(kind: string, urgent: boolean, id: string | undefined, run: (r: Round) => Answer): Promise<T> {
    if (this.closed) return Promise.reject(new MetaspnError('INTERNAL_ERROR', `queue ${this.p.queue} is closed`));
    return new Promise<T>((resolve, reject) => {
      if (!urgent && this.lazySince < 0) this.lazySince = performance.now();
      this.pending.push({ kind, urgent, ...(id !== undefined ? { id } : {}), run, resolve: resolve as (value: unknown) => void, reject });
      this.schedule(urgent);
    });
  }

  /** Runs `fn` holding the queue's lock with no round of this process running (a salvage). */
  async exclusive<T>(fn: () => T): Promise<T> {
    while (this.flushing) await new Promise((resolve) => setImmediate(resolve));
    this.flushing = true;
    try {
      await this.p.mutex.acquire();
      try {
        return fn();
      } finally {
        this.p.mutex.releaseLock();
      }
    } finally {
      this.flushing = false;
      if (this.pending.length) this.schedule(true);
    }
  }

  /** Runs what is pending, ack window or not; later submissions are refused. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.pending.length) await this.flush(true);
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(urgent: boolean): void {
    if (this.flushing) return;
    if (urgent || this.p.ackWindow <= 0) {
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
      }, this.p.ackWindow);
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
        const wait = this.lazySince < 0 ? 0 : Math.max(0, this.lazySince + this.p.ackWindow - performance.now());
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
    const open = !all && this.lazySince >= 0 && performance.now() - this.lazySince < this.p.ackWindow;
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
    const { mutex, file } = this.p;
    let outcomes: Outcome[] = [];
    let syncNeeded = false;
    try {
      await mutex.acquire();
    } catch (err) {
      for (const op of ops) op.reject(err);
      return;
    }
    try {
      ({ outcomes, syncNeeded } = this.roundLocked(ops));
    } catch (err) {
      file.invalidate();
      mutex.releaseLock();
      for (const op of ops) op.reject(err);
      return;
    }
    mutex.releaseLock();
    try {
      // Group commit outside the lock: others append while this fsync runs; it covers their bytes too.
      if (syncNeeded) file.sync();
    } catch (err) {
      file.invalidate();
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
    const { queue, mutex, file, clock, dead, compaction, stats } = this.p;
    let log = file.catchUp();
    const r = new RoundWriter(log, clock.read(), queue);
    let answers: Answer[];
    try {
      answers = ops.map((op) => op.run(r));
      r.writeBatches();
    } finally {
      r.seal();
    }
    if (r.lines.length > 0) {
      log.unwritten.clear();
      file.append(mutex, r.lines.bytes(), r.start);
      log.end = r.end;
    }
    let syncNeeded = r.syncNeeded;
    if (r.effects.dead.length || r.effects.undead.length) {
      // Dead-letter files follow the log, under the lock, so they never race a retry.
      file.sync();
      syncNeeded = false;
      dead.follow(r.effects, (n) => r.taskAt(n));
    }
    // Answers are read now, under the lock and before a compaction renumbers the slots.
    const outcomes = answers.map((f): Outcome => {
      try {
        return { ok: true, value: f() };
      } catch (error) {
        return { ok: false, error };
      }
    });
    r.finish();
    if (compaction.take(log, r.end)) {
      file.sync();
      syncNeeded = false;
      log = file.compact(mutex, log, r.reading, compaction.retention);
    }
    stats.snapshot(queue, file.generation, log, r.reading);
    return { outcomes, syncNeeded };
  }
}
