import { decodeLine, type ScannedLine } from './codec.js';
import { IndexState } from './index-state.js';
import { readAt, readLines, readMany } from './log-io.js';
import { idOfRecord, type LogRecord } from './records.js';

/** A stretch of the log that failed its checksum, kept so it can be set aside in quarantine/. */
export interface CorruptRange {
  offset: number;
  length: number;
}

/** The index of one log generation, and what reading it found. */
export class LoadedLog {
  readonly idx: IndexState;
  readonly corrupt: CorruptRange[] = [];
  end = 0;
  /** Records of the round in progress, by offset: applied already, not yet written. */
  readonly unwritten = new Map<number, unknown>();

  constructor(private readonly fd: () => number) {
    this.idx = new IndexState((slot) => idOfRecord(this.recordAt(slot)));
  }

  /** Reads new lines from `end` on; returns the byte count of an unterminated tail. */
  readMore(onChunk?: () => void): number {
    const r = readLines(this.fd(), this.end, (l) => this.onLine(l), onChunk);
    this.end = r.end;
    return r.tail;
  }

  onLine(l: ScannedLine): void {
    const rec = l.record as LogRecord | null;
    if (rec === null || typeof rec !== 'object' || typeof rec.t !== 'string') {
      this.corrupt.push({ offset: l.offset, length: l.length });
      return;
    }
    try {
      this.idx.apply(rec, l.offset, l.length);
    } catch {
      // A record with the right checksum but the wrong shape: refuse it like a stale one.
      this.idx.refused++;
    }
  }

  /**
   * The records of many slots, read in as few reads as their layout allows: tasks enqueued
   * together sit together in the log, so a claim of 64 of them is one read, not 64.
   */
  recordsAt(slots: readonly number[]): unknown[] {
    const t = this.idx.slots;
    const onDisk = slots.filter((s) => t.recOff[s]! < this.end);
    const bufs = readMany(this.fd(), onDisk.map((s) => ({ offset: t.recOff[s]!, length: t.recLen[s]! })));
    const read = new Map(onDisk.map((s, i) => [s, bufs[i]!]));
    return slots.map((s) => {
      const b = read.get(s);
      if (!b) return this.recordAt(s);
      return decodeLine(b, 0, b[b.length - 1] === 0x0a ? b.length - 1 : b.length);
    });
  }

  /** The full record a slot points at, read back from the log. */
  recordAt(slot: number): unknown {
    const t = this.idx.slots;
    if (t.recOff[slot]! >= this.end) return this.unwritten.get(t.recOff[slot]!) ?? null;
    const len = t.recLen[slot]!;
    const buf = readAt(this.fd(), t.recOff[slot]!, len);
    return decodeLine(buf, 0, buf[len - 1] === 0x0a ? len - 1 : len);
  }
}
