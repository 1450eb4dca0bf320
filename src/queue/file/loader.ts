import { decodeLine, type ScannedLine } from './codec.js';
import { IndexState } from './index-state.js';
import { readAt, readLines } from './log-io.js';
import { idOfRecord, type LogRecord } from './records.js';

/** Records further apart than this are read separately. */
const GAP = 64 << 10;
/** At most this many bytes in one read. */
const SPAN = 4 << 20;

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
  readMore(): number {
    const r = readLines(this.fd(), this.end, (l) => this.onLine(l));
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
    const out = new Array<unknown>(slots.length);
    const order = slots.map((s, i) => i).sort((a, b) => t.recOff[slots[a]!]! - t.recOff[slots[b]!]!);
    let i = 0;
    while (i < order.length) {
      const first = slots[order[i]!]!;
      if (t.recOff[first]! >= this.end) {
        out[order[i]!] = this.recordAt(first);
        i++;
        continue;
      }
      let j = i + 1;
      let stop = t.recOff[first]! + t.recLen[first]!;
      while (j < order.length) {
        const s = slots[order[j]!]!;
        const off = t.recOff[s]!;
        if (off >= this.end || off - stop > GAP || off + t.recLen[s]! - t.recOff[first]! > SPAN) break;
        stop = Math.max(stop, off + t.recLen[s]!);
        j++;
      }
      const base = t.recOff[first]!;
      const buf = readAt(this.fd(), base, stop - base);
      for (let k = i; k < j; k++) {
        const s = slots[order[k]!]!;
        const from = t.recOff[s]! - base;
        const to = from + t.recLen[s]!;
        out[order[k]!] = decodeLine(buf, from, buf[to - 1] === 0x0a ? to - 1 : to);
      }
      i = j;
    }
    return out;
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
