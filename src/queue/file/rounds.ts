import { fdatasync } from 'node:fs';
import { MetaspnError } from '../../guard/errors.js';
import type { Mutex } from '../../storage/mutex.js';
import type { QueueClock } from '../clock.js';
import type { CompactionTrigger } from './compaction-trigger.js';
import type { DeadLetterMirror } from './deadletter-mirror.js';
import type { QueueLogFile } from './log-file.js';
import { LineBuffer } from './codec.js';
import { RoundWriter, type Round } from './round.js';
import type { StatsWriter } from './stats-file.js';

/** What an operation answers, read once its round's records are applied (still under the lock). */
export type Answer = () => unknown;

/**
 * One operation: what it runs in its round, then what that round made of it. An answer waiting for
 * the fsync that covers its round waits as the operation itself (no object or closure more a task).
 */
interface Op {
  kind: string;
  /** Run at the next turn of the event loop; the others wait out the ack window (or an urgent one). */
  urgent: boolean;
  run: (r: Round) => Answer;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  /** Its answer, read under the lock; or what reading it threw (`failed`). */
  value: unknown;
  failed: boolean;
  /** It asked for records needing an fsync. */
  durable: boolean;
}

/**
 * Operations whose answer promises nothing durable: a start, a renewal, a release and a claim
 * write records that need no fsync (records.ts, needsSync), and are answered as soon as their
 * round has appended, whatever else the round wrote. Every other operation is answered after an
 * fsync that covers its round: also one that wrote nothing (an enqueue of ids present, stats),
 * since what it read may be records not yet on disk.
 */
const EAGER = new Set(['start', 'renew', 'release', 'claim']);

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
 * and a due compaction follow, the stats snapshot is rewritten, and the lock released.
 *
 * The fsync (fdatasync) comes after, off the event loop: rounds go on while it runs, and the
 * operations that wrote records needing it are answered only once an fdatasync that began after
 * their round's write has returned (one fdatasync covers every round before it, and whatever other
 * processes appended meanwhile). Starts, renewals, releases and claims are answered at once.
 */
export class RoundEngine {
  private pending: Op[] = [];
  private flushing = false;
  private timer: NodeJS.Timeout | null = null;
  private immediate = false;
  /** When the oldest pending operation that is not urgent was submitted (performance.now()); -1: none. */
  private lazySince = -1;
  private closed = false;
  /** Answers waiting for the next fdatasync. */
  private waiting: Op[] = [];
  /** An fdatasync is in flight. */
  private syncing = false;
  /** Records needing an fsync were appended since the last fdatasync began. */
  private dirty = false;
  /** The bytes of a round, reused from round to round. */
  private readonly lines = new LineBuffer();
  /** Callers of `close` waiting for the fdatasyncs to end. */
  private idle: Array<() => void> = [];

  constructor(private readonly p: RoundParts) {}

  /** Runs `run` in the next round. */
  submit<T>(kind: string, urgent: boolean, run: (r: Round) => Answer): Promise<T> {
    if (this.closed) return Promise.reject(new MetaspnError('INTERNAL_ERROR', `queue ${this.p.queue} is closed`));
    return new Promise<T>((resolve, reject) => {
      if (!urgent && this.lazySince < 0) this.lazySince = performance.now();
      this.pending.push({ kind, urgent, run, resolve: resolve as (value: unknown) => void, reject, value: undefined, failed: false, durable: false });
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

  /** Runs what is pending, ack window or not, and waits for its fdatasync; later submissions are refused. */
  async close(): Promise<void> {
    if (this.closed) return;
    // A round in progress (or a salvage) ends first: its answers may still need their fdatasync.
    while (this.flushing) await new Promise((resolve) => setImmediate(resolve));
    if (this.pending.length) await this.flush();
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    while (this.syncing || this.waiting.length) await new Promise<void>((resolve) => this.idle.push(resolve));
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

  /** Runs rounds while there are operations pending. */
  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      for (;;) {
        const ops = this.takeRound();
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
   * The operations of the next round: every pending one. Acknowledgements (completions, failures)
   * wait out their window unless an urgent operation comes first, and then ride in its round: a
   * start no longer waits for their fsync (it is answered once the round has appended), so a
   * round per batch of starts carries the acknowledgements pending beside it, and no round of
   * their own is needed.
   */
  private takeRound(): Op[] {
    const ops = this.pending;
    this.pending = [];
    this.lazySince = -1;
    return ops;
  }

  private async runRound(ops: Op[]): Promise<void> {
    const { mutex, file } = this.p;
    let syncNeeded = false;
    try {
      await mutex.acquire();
    } catch (err) {
      for (const op of ops) op.reject(err);
      return;
    }
    try {
      syncNeeded = this.roundLocked(ops);
    } catch (err) {
      file.invalidate();
      mutex.releaseLock();
      for (const op of ops) op.reject(err);
      return;
    }
    mutex.releaseLock();
    if (syncNeeded) this.dirty = true;
    for (const op of ops) {
      if (op.failed) op.reject(op.value);
      else if ((EAGER.has(op.kind) && !op.durable) || (!this.dirty && !this.syncing)) op.resolve(op.value);
      else this.waiting.push(op);
    }
    this.kick();
  }

  /**
   * Starts an fdatasync for the answers waiting, unless one is in flight (its end starts the next).
   * It runs on libuv's thread pool, the descriptor pinned open meanwhile. It syncs the current
   * generation: a round's bytes went to an older one only if a compaction replaced it since, and
   * a compaction fsyncs the log it copies before copying it (ours, or another process's under
   * the lock), so those bytes are on disk already.
   */
  private kick(): void {
    if (this.syncing || this.waiting.length === 0) return;
    const batch = this.waiting;
    this.waiting = [];
    this.dirty = false;
    const { file } = this.p;
    const fd = file.pin();
    if (fd === null) {
      // The log could not be reopened after the round that wrote these: nothing synced, nothing acknowledged.
      const err = new MetaspnError('INTERNAL_ERROR', `queue ${this.p.queue}: the log was closed before its fdatasync`);
      for (const w of batch) w.reject(err);
      return;
    }
    this.syncing = true;
    fdatasync(fd, (err) => {
      file.unpin(fd);
      this.syncing = false;
      if (err) {
        file.invalidate();
        for (const w of batch) w.reject(err);
      } else {
        for (const op of batch) op.resolve(op.value);
      }
      this.kick();
      if (!this.syncing && this.waiting.length === 0) for (const f of this.idle.splice(0)) f();
    });
  }

  /** Runs a round's operations under the lock, their answers read into them; true when what it appended needs an fsync. */
  private roundLocked(ops: Op[]): boolean {
    const { queue, mutex, file, clock, dead, compaction, stats } = this.p;
    let log = file.catchUp();
    const r = new RoundWriter(log, clock.read(), queue, this.lines);
    const answers: Answer[] = new Array<Answer>(ops.length);
    try {
      for (let i = 0; i < ops.length; i++) {
        const op = ops[i]!;
        const before = r.durable;
        answers[i] = op.run(r);
        op.durable = r.durable !== before;
      }
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
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      try {
        op.value = answers[i]!();
      } catch (error) {
        op.value = error;
        op.failed = true;
      }
    }
    r.finish();
    if (compaction.take(log, r.end)) {
      file.sync();
      syncNeeded = false;
      log = file.compact(mutex, log, r.reading, compaction.retention);
    }
    stats.snapshot(queue, file.generation, log, r.reading);
    return syncNeeded;
  }
}
