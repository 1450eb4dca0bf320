import { readlinkSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { StateCorruptError } from '../../guard/errors.js';
import type { QueueClock } from '../clock.js';
import { systemClock } from '../system-clock.js';
import { BufferedLine, decodeLine, type ScannedLine } from './codec.js';
import { IndexState, ReplayConflictError, type ReplayConflict } from './index-state.js';
import { readAt, readMany } from '../../storage/io.js';
import { readLines } from './log-io.js';
import { entryRecord, idOfRecord, withShortFail, type EnqsRecord, type LogRecord } from './records.js';
import { NO_ENTRY } from './slots.js';

/** A stretch of the log that failed its checksum, kept so it can be set aside in quarantine/. */
export interface CorruptRange {
  offset: number;
  length: number;
}

/**
 * STATE_CORRUPT (30) for a queue log whose replay met a record that cannot happen under the
 * queue's lock (see ReplayConflict): names the file and the byte offset, and the way out.
 */
export class QueueLogConflictError extends StateCorruptError {
  constructor(
    readonly file: string,
    readonly conflict: ReplayConflict,
  ) {
    const ws = resolve(dirname(file), '..', '..');
    super(
      `queue log ${file}: replay conflict at byte ${conflict.offset} (${conflict.record} record): ${conflict.reason}; ` +
        "no process writes that while it holds the queue's lock, so the log is not trusted and every operation on this queue fails until it is repaired",
      {
        hint: `stop the workers of this queue, then run \`metaspn doctor --workspace ${ws} --repair\`: it keeps every task (a task placed in a taken slot gets a slot of its own) and makes the tasks involved ready again`,
        details: { file, ...conflict },
      },
    );
    this.name = 'QueueLogConflictError';
  }
}

/** The index of one log generation, and what reading it found. */
export class LoadedLog {
  readonly idx: IndexState;
  readonly corrupt: CorruptRange[] = [];
  end = 0;
  /** Records of the round in progress, by offset: applied already, not yet written (a BufferedLine: decoded from the round's bytes when read). */
  readonly unwritten = new Map<number, unknown>();
  /** Records a salvage replaced, by offset: read in place of the line there (which holds impossible values). */
  readonly replaced = new Map<number, unknown>();

  /**
   * `path` names the file in errors (when absent, it is looked up from the descriptor). `clock`:
   * what record times are placed on (src/queue/clock.ts); read before each `readMore`.
   */
  constructor(
    private readonly fd: () => number,
    private readonly path?: string,
    readonly clock: QueueClock = systemClock,
  ) {
    // An id is the same before and after a short `fail`: the record before it is enough.
    this.idx = new IndexState((slot) => idOfRecord(this.baseAt(slot)));
  }

  /** The first record of this log that cannot happen under the lock, if the replay met one. */
  get conflict(): ReplayConflict | null {
    return this.idx.conflict;
  }

  /**
   * Reads new lines from `end` on; returns the byte count of an unterminated tail. Throws
   * QueueLogConflictError (30) at the first record that cannot happen under the lock, or when the
   * counts do not add up after it; the replay stops there, and `conflict` says what it met.
   */
  readMore(onChunk?: () => void): number {
    this.idx.me = this.clock.read();
    return this.strict(() => {
      const r = readLines(this.fd(), this.end, (l) => this.onLine(l), onChunk);
      this.end = r.end;
      this.idx.verify(this.end);
      return r.tail;
    });
  }

  /**
   * Applies records whose lines were just written from `end` on, `lengths[i]` bytes each, as a
   * replay of those lines would, without reading and decoding them: a compaction builds the new
   * generation's index from the records it writes (they are what decoding the lines gives back).
   * Throws as `readMore` does; `endWritten` checks the counts once the last one is applied.
   */
  applyWritten(records: readonly LogRecord[], lengths: readonly number[]): void {
    this.strict(() => {
      for (let i = 0; i < records.length; i++) this.onLine({ offset: this.end, length: lengths[i]!, record: records[i] });
    });
  }

  /** After the last `applyWritten`: the counts checked as at the end of a replay. */
  endWritten(): void {
    this.strict(() => this.idx.verify(this.end));
  }

  /** Runs a step of the replay: a conflict it meets becomes QueueLogConflictError (30), naming this log. */
  private strict<T>(step: () => T): T {
    try {
      return step();
    } catch (err) {
      if (err instanceof ReplayConflictError) throw new QueueLogConflictError(this.path ?? fileOf(this.fd()), err.conflict);
      throw err;
    }
  }

  onLine(l: ScannedLine): void {
    // The line is on disk: `recordAt` may read it back while the replay goes on (the id index
    // confirms a fingerprint match that way, and replay checks ids for duplicates).
    this.end = l.offset + l.length;
    const rec = l.record as LogRecord | null;
    if (rec === null || typeof rec !== 'object' || typeof rec.t !== 'string') {
      this.corrupt.push({ offset: l.offset, length: l.length });
      this.idx.corruptLine();
      return;
    }
    try {
      this.idx.apply(rec, l.offset, l.length);
    } catch (err) {
      if (err instanceof ReplayConflictError) throw err;
      // A record with the right checksum but the wrong shape: refuse it like a stale one.
      this.idx.refused++;
    }
  }

  /**
   * The records of many slots, read in as few reads as their layout allows: tasks enqueued
   * together sit together in the log (in one `enqs` line, or in lines side by side), so a claim of
   * 64 of them is one read, not 64, and a line is read and decoded once however many of them it holds.
   * A slot whose record a short `fail` follows reads back as that `fail` in its long form.
   */
  recordsAt(slots: readonly number[]): unknown[] {
    const t = this.idx.slots;
    const before = this.basesAt(slots);
    if (!slots.some((s) => t.failLen[s] !== 0)) return before;
    // The short `fail`s after them, in one pass of reads too (those written or replaced are in memory).
    const fails: { offset: number; length: number }[] = [];
    for (const s of slots) {
      const off = t.failOff[s]!;
      if (t.failLen[s] !== 0 && off < this.end && !this.replaced.has(off)) fails.push({ offset: off, length: t.failLen[s]! });
    }
    const bufs = readMany(this.fd(), fails);
    const decoded = new Map<number, unknown>(fails.map((f, i) => [f.offset, decodeBuf(bufs[i]!)]));
    return slots.map((s, i) => (t.failLen[s] === 0 ? before[i] : withShortFail(before[i], decoded.get(t.failOff[s]!) ?? this.failAt(s))));
  }

  /** The record of a line the current round encoded at `off` but has not appended. */
  private unwrittenAt(off: number): unknown {
    const u = this.unwritten.get(off);
    return u instanceof BufferedLine ? u.record() : (u ?? null);
  }

  /** The full record a slot points at, read back from the log (with its short `fail`, when one follows it). */
  recordAt(slot: number): unknown {
    const rec = this.baseAt(slot);
    return this.idx.slots.failLen[slot] === 0 ? rec : withShortFail(rec, this.failAt(slot));
  }

  /** The short `fail` that follows a slot's record, read back. */
  private failAt(slot: number): unknown {
    const t = this.idx.slots;
    const off = t.failOff[slot]!;
    if (this.replaced.size && this.replaced.has(off)) return this.replaced.get(off);
    if (off >= this.end) return this.unwrittenAt(off);
    return decodeBuf(readAt(this.fd(), off, t.failLen[slot]!));
  }

  /**
   * The records the slots point at, without a short `fail` after them (see recordsAt): what a
   * task's id is read from, in as few reads as recordsAt.
   */
  basesAt(slots: readonly number[]): unknown[] {
    const t = this.idx.slots;
    const lines = new Map<number, number>();
    for (const s of slots) {
      const off = t.recOff[s]!;
      if (off < this.end && !this.replaced.has(off) && off !== this.lastLine?.offset && !lines.has(off)) lines.set(off, t.recLen[s]!);
    }
    const offsets = [...lines.keys()];
    const bufs = readMany(
      this.fd(),
      offsets.map((offset) => ({ offset, length: lines.get(offset)! })),
    );
    const decoded = new Map<number, unknown>(offsets.map((off, i) => [off, decodeBuf(bufs[i]!)]));
    return slots.map((s) => {
      const off = t.recOff[s]!;
      if (!decoded.has(off)) return this.baseAt(s);
      const rec = decoded.get(off);
      if (t.entry[s] !== NO_ENTRY) this.remember(off, rec);
      return pick(rec, t.entry[s]!);
    });
  }

  /** The record a slot points at, without a short `fail` after it: its id, its task before that failure. */
  baseAt(slot: number): unknown {
    const t = this.idx.slots;
    const off = t.recOff[slot]!;
    const entry = t.entry[slot]!;
    if (this.replaced.size && this.replaced.has(off)) return pick(this.replaced.get(off), entry);
    if (off >= this.end) return pick(this.unwrittenAt(off), entry);
    if (entry !== NO_ENTRY && this.lastLine?.offset === off) return pick(this.lastLine.record, entry);
    const rec = decodeBuf(readAt(this.fd(), off, t.recLen[slot]!));
    if (entry !== NO_ENTRY) this.remember(off, rec);
    return pick(rec, entry);
  }

  /**
   * The `enqs` line read last: the tasks of one are claimed a few at a time, one claim after the
   * other, and each would read and decode the whole line again. Lines below `end` never change.
   */
  private lastLine: { offset: number; record: unknown } | null = null;

  private remember(offset: number, record: unknown): void {
    this.lastLine = { offset, record };
  }
}

/** A line's bytes (with or without its newline) as its record; null when it does not verify. */
function decodeBuf(b: Buffer): unknown {
  return decodeLine(b, 0, b[b.length - 1] === 0x0a ? b.length - 1 : b.length);
}

/** The record of a slot: the line's record, or entry `entry` of an `enqs` as its own `enq`. */
function pick(rec: unknown, entry: number): unknown {
  if (entry === NO_ENTRY || rec === null || (rec as { t?: unknown }).t !== 'enqs') return rec;
  const r = rec as EnqsRecord;
  return entry < r.l.length && r.l[entry] !== null ? entryRecord(r, entry) : null;
}

/** The file behind a descriptor, for an error message (Linux; elsewhere the descriptor number). */
function fileOf(fd: number): string {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return `(descriptor ${fd})`;
  }
}
