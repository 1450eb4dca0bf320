import { MetaspnError } from '../../guard/errors.js';
import type { ClockReading } from '../clock.js';
import type { NewTask, TaskRecord } from '../types.js';
import { BufferedLine, LineBuffer } from './codec.js';
import { freshPossible } from './impossible.js';
import type { Effects, IndexState } from './index-state.js';
import type { LoadedLog } from './loader.js';
import { enqsOf, needsSync, shortForm, type LogRecord, type Pair } from './records.js';

/** Records that batch many [slot, fence] pairs of one owner. */
export type BatchKind = 'done' | 'rel' | 'renew' | 'start';
type Batch = { t: BatchKind; o: string; ms: number; l: Pair[] };

/**
 * One locked round, as the operations in it see it: the queue's state (caught up with the log,
 * this process holding the queue's lock) and the way to change it. Whatever may only run inside a
 * round takes a Round; the state is reached through it alone, and a Round refuses use once its
 * round has ended.
 */
export interface Round {
  /** The round's time on the monotonic timeline: what the state machine compares and adds to. */
  readonly now: number;
  /** The same instant on the wall clock (epoch ms): the `at` of records, the times in task records. */
  readonly at: number;
  readonly reading: ClockReading;
  /** The loaded log, caught up. */
  readonly log: LoadedLog;
  readonly idx: IndexState;
  /** Applies the record to the state and queues it for writing; false when the state refused it. */
  emit(r: LogRecord): boolean;
  /**
   * `emit` of `enqsOf(idx.slots.count, at, [tasks[picks[0]], …], queue, x)`, the line encoded and
   * applied straight from the tasks (no record built). Ids and groups must have passed
   * checkTaskId and checkGroup, and be fresh (not indexed, none twice).
   */
  emitFresh(tasks: readonly NewTask[], picks: Int32Array, count: number, queue: string, x: number): boolean;
  /**
   * Queues one [slot, fence] of a batched record (done, rel, renew, start): a round writes one
   * record per kind and owner for all of them. False when the slot already has an operation in this round.
   */
  pair(t: BatchKind, owner: string, n: number, fence: number, ms?: number): boolean;
  /** The task record of a slot, read back from the log (STATE_CORRUPT when it does not read back). */
  taskAt(n: number): TaskRecord;
}

/**
 * The round engine's side of a Round: the records applied and their bytes, not yet appended.
 * Made by the engine under the lock, finished by it before the lock is released.
 */
export class RoundWriter implements Round {
  readonly now: number;
  readonly at: number;
  /** Where the round's bytes go in the log: its end when the round began. */
  readonly start: number;
  /** Where they end. */
  end: number;
  /** The round's bytes: the engine's buffer, emptied for this round. */
  readonly lines: LineBuffer;
  /** A record of the round must be fsynced before its operation is answered. */
  syncNeeded = false;
  /**
   * Records needing an fsync asked for so far (a batched `done` counts when asked for): an
   * operation that asked for none is answered without waiting for the round's fsync.
   */
  durable = 0;
  /** Slots that entered or left the dead letters in this round. */
  readonly effects: Effects = { dead: [], undead: [] };
  private readonly batches = new Map<string, Batch>();
  /** The batch the last pair went to. */
  private last: Batch | null = null;
  private readonly paired = new Set<number>();
  private live = true;
  private iso: string | null = null;

  constructor(
    private readonly loaded: LoadedLog,
    readonly reading: ClockReading,
    private readonly queue: string,
    lines: LineBuffer,
  ) {
    lines.reset();
    this.lines = lines;
    this.now = reading.mono;
    this.at = reading.wall;
    this.start = loaded.end;
    this.end = loaded.end;
    loaded.idx.effects = this.effects;
    // Every record of the round is placed on the reading's monotonic timeline (see src/queue/clock.ts).
    loaded.idx.me = reading;
  }

  get log(): LoadedLog {
    if (!this.live) throw new MetaspnError('INTERNAL_ERROR', `queue ${this.queue}: state used after its round ended`);
    return this.loaded;
  }

  get idx(): IndexState {
    return this.log.idx;
  }

  emit(rec: LogRecord): boolean {
    const reading = this.reading;
    if (reading.boot !== null && rec.t !== 'clk') {
      // The monotonic times that follow count from this boot: said once, before the first of them.
      if (this.idx.logBoot !== reading.boot) this.write({ t: 'clk', at: reading.wall, m: reading.mono, b: reading.boot });
      // Set on the caller's fresh record, not a copy: a spread copy is a slow (dictionary) object,
      // which made encoding and checking every enqueued record several times slower.
      if ('at' in rec) (rec as { m?: number }).m = reading.mono;
    }
    return this.write(rec);
  }

  emitFresh(tasks: readonly NewTask[], picks: Int32Array, count: number, queue: string, x: number): boolean {
    const reading = this.reading;
    let m: number | undefined;
    if (reading.boot !== null) {
      if (this.idx.logBoot !== reading.boot) this.write({ t: 'clk', at: reading.wall, m: reading.mono, b: reading.boot });
      m = reading.mono;
    }
    const log = this.loaded;
    const n = log.idx.slots.count;
    const at = this.at;
    // What impossibleValue would refuse goes the long way, to be refused as it always was.
    if (!freshPossible(at, m, n, x, tasks, picks, count)) {
      const rec = enqsOf(n, at, Array.from(picks.subarray(0, count), (i) => tasks[i]!), queue, x);
      if (m !== undefined) rec.m = m;
      return this.write(rec);
    }
    // The text JSON.stringify gives the record enqsOf makes (keys in its order, `m` set after).
    const head = `{"t":"enqs","n":${n},"at":${JSON.stringify(at)},"q":${JSON.stringify(queue)},"x":${x},"l":[`;
    const tail = m === undefined ? ']}' : `],"m":${JSON.stringify(m)}}`;
    const start = this.lines.length;
    const len = this.lines.addEnqs(head, tasks, picks, count, x, tail);
    const refused = log.idx.refused;
    log.unwritten.set(this.end, new BufferedLine(this.lines, start, len));
    log.idx.applyFresh(at, m, n, x, tasks, picks, count, this.end, len);
    this.end += len;
    this.syncNeeded = true;
    this.durable++;
    return log.idx.refused === refused;
  }

  pair(t: BatchKind, o: string, n: number, fence: number, ms = 0): boolean {
    if (this.paired.has(n)) return false;
    this.paired.add(n);
    if (t === 'done') this.durable++;
    // A round's pairs mostly come in runs of one kind and owner (hundreds of completions): the
    // batch of the last one is found without making its key.
    let b = this.last;
    if (b === null || b.t !== t || b.o !== o || b.ms !== ms) {
      const key = `${t}|${o}|${ms}`;
      b = this.batches.get(key) ?? null;
      if (!b) this.batches.set(key, (b = { t, o, ms, l: [] }));
      this.last = b;
    }
    b.l.push([n, fence]);
    return true;
  }

  taskAt(n: number): TaskRecord {
    return taskAt(this.log, n, this.queue);
  }

  /** Emits the batched records, once every operation of the round has run. */
  writeBatches(): void {
    for (const b of this.batches.values()) {
      if (b.t === 'renew') this.emit({ t: 'renew', at: this.at, o: b.o, ms: b.ms, l: b.l });
      else this.emit({ t: b.t, at: this.at, o: b.o, l: b.l });
    }
    this.batches.clear();
    this.last = null;
  }

  /** No more records: the state stops routing effects here. The handle stays usable until `end`. */
  seal(): void {
    this.loaded.idx.effects = null;
  }

  /** The round is over: the handle refuses use from now on. */
  finish(): void {
    this.seal();
    this.live = false;
  }

  /** The round's wall time as ISO-8601, formatted once. */
  private atIso(): string {
    return (this.iso ??= new Date(this.at).toISOString());
  }

  private write(rec: LogRecord): boolean {
    const log = this.loaded;
    const len = this.lines.add(rec.t === 'enq' ? shortForm(rec, rec.at === this.at ? this.atIso() : undefined) : rec);
    const refused = log.idx.refused;
    log.unwritten.set(this.end, rec);
    log.idx.apply(rec, this.end, len);
    this.end += len;
    if (needsSync(rec)) {
      this.syncNeeded = true;
      this.durable++;
    }
    return log.idx.refused === refused;
  }
}

/** The task record slot `n` of `log` points at, read back (STATE_CORRUPT when it does not read back). */
export function taskAt(log: LoadedLog, n: number, queue: string): TaskRecord {
  const rec = log.recordAt(n) as { task?: TaskRecord } | null;
  if (!rec?.task) throw new MetaspnError('STATE_CORRUPT', `queue ${queue}: the record of task slot ${n} does not read back`);
  return rec.task;
}
