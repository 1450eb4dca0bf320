import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { DAY_MS, dayNumber, dayText } from './dates.js';
import { compareSignals } from './math/attention.js';
import { compareText } from './math/order.js';
import { SignalTable, type Signal } from './signal-table.js';
import { tsText, tsTextOf } from './signals.js';

/**
 * The two digests that make Season 1 ids cover what their output depends on (S1-SPEC "Digests").
 * Pure: no I/O; the callers hand in the signals and the row ids.
 */

/** The digest of the empty text (no signal, no counted row): the first 16 hex digits of sha256(""). */
export const EMPTY_DIGEST = 'e3b0c44298fc1c14';

/** A sha256 fed with lines, each followed by `\n` (UTF-8), in chunks of about 64 KiB: one update per line cost a native call per signal. */
class LineHash {
  private readonly h = createHash('sha256');
  private chunk = '';

  add(line: string): void {
    this.chunk += `${line}\n`;
    if (this.chunk.length >= 65_536) {
      this.h.update(this.chunk);
      this.chunk = '';
    }
  }

  /** First 16 hex digits of the digest. */
  hex16(): string {
    if (this.chunk !== '') this.h.update(this.chunk);
    this.chunk = '';
    return this.h.digest('hex').slice(0, 16);
  }
}

/** Bytes a {@link DigestLines} gathers before it hashes them. */
const DIGEST_CHUNK = 1 << 20;

/**
 * The bytes of the inputs digest's lines written straight into a buffer that is hashed when
 * full: the pieces of a line ({@link digestLine}'s text) as UTF-8, without making the line's
 * string (a template, then a concatenation, then its encoding, a million times). Pure: no I/O.
 */
export class DigestLines {
  private readonly h = createHash('sha256');
  private buf = Buffer.allocUnsafe(DIGEST_CHUNK);
  private pos = 0;
  /** The day of the last instant written, and its `YYYY-MM-DD`. */
  private day = Number.NaN;
  private dayText = '';

  /** Room for `n` more bytes. */
  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    this.flush();
    if (n > this.buf.length) this.buf = Buffer.allocUnsafe(n);
  }

  private flush(): void {
    if (this.pos > 0) this.h.update(this.buf.subarray(0, this.pos));
    this.pos = 0;
  }

  /** Writes `text`, which must be ASCII. */
  ascii(text: string): void {
    this.room(text.length);
    const b = this.buf;
    let p = this.pos;
    for (let i = 0; i < text.length; i++) b[p++] = text.charCodeAt(i);
    this.pos = p;
  }

  /** Writes `bytes`. */
  bytes(bytes: Uint8Array): void {
    this.room(bytes.length);
    const b = this.buf;
    let p = this.pos;
    for (let i = 0; i < bytes.length; i++) b[p++] = bytes[i]!;
    this.pos = p;
  }

  /** Writes `JSON.stringify(text)` as UTF-8. */
  quoted(text: string): void {
    this.room(text.length + 2);
    const b = this.buf;
    let p = this.pos;
    b[p++] = 0x22;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      // What JSON.stringify writes as itself and UTF-8 as one byte; anything else the slow way.
      if (c < 0x20 || c >= 0x80 || c === 0x22 || c === 0x5c) return this.utf8(JSON.stringify(text));
      b[p++] = c;
    }
    b[p++] = 0x22;
    this.pos = p;
  }

  /** Writes `text` as UTF-8 (from the start of the piece {@link quoted} left). */
  private utf8(text: string): void {
    this.room(Buffer.byteLength(text));
    this.pos += this.buf.write(text, this.pos, 'utf8');
  }

  /** Writes signals.ts `tsTextOf(ms, digits)`: the instant as its `ts` was written. */
  instant(ms: number, digits: number): void {
    if (!Number.isSafeInteger(ms)) return this.ascii(tsTextOf(ms, digits));
    const day = Math.floor(ms / DAY_MS);
    if (day !== this.day) {
      this.day = day;
      this.dayText = dayText(day);
    }
    this.ascii(this.dayText);
    const inDay = ms - day * DAY_MS;
    const milli = inDay % 1000;
    const secs = (inDay - milli) / 1000;
    const hour = Math.floor(secs / 3600);
    const min = Math.floor(secs / 60) % 60;
    const sec = secs % 60;
    this.room(13);
    const b = this.buf;
    let p = this.pos;
    b[p++] = 0x54; // T
    b[p++] = 48 + Math.floor(hour / 10);
    b[p++] = 48 + (hour % 10);
    b[p++] = 0x3a;
    b[p++] = 48 + Math.floor(min / 10);
    b[p++] = 48 + (min % 10);
    b[p++] = 0x3a;
    b[p++] = 48 + Math.floor(sec / 10);
    b[p++] = 48 + (sec % 10);
    if (digits > 0) {
      b[p++] = 0x2e; // .
      b[p++] = 48 + Math.floor(milli / 100);
      if (digits > 1) b[p++] = 48 + (Math.floor(milli / 10) % 10);
      if (digits > 2) b[p++] = 48 + (milli % 10);
    }
    b[p++] = 0x5a; // Z
    this.pos = p;
  }

  /** Writes a value as {@link digestLine} does: `String(v)` when finite, else `null`. */
  number(v: number): void {
    if (v === 1) {
      this.room(1);
      this.buf[this.pos++] = 0x31;
    } else {
      this.ascii(Number.isFinite(v) ? String(v) : 'null');
    }
  }

  /** First 16 hex digits of sha256 over everything written. */
  hex16(): string {
    this.flush();
    return this.h.digest('hex').slice(0, 16);
  }
}

/** First 16 hex digits of sha256 over `lines`, each followed by `\n` (UTF-8). */
export function digestOfLines(lines: Iterable<string>): string {
  const h = new LineHash();
  for (const line of lines) h.add(line);
  return h.hex16();
}

/**
 * The instants stage 1 reads for a date, `[from_ms, to_ms)`: the window's first day at midnight
 * up to the earlier of the day after `date` and `as_of`. A signal counts exactly when its `ts_ms`
 * lies in it (its UTC date in `[date - window_days + 1, date]` and `ts < as_of`).
 * @throws RangeError when `date` is not a `YYYY-MM-DD` calendar date.
 */
export function windowBounds(date: string, asOfMs: number, windowDays: number): { from_ms: number; to_ms: number } {
  const last = dayNumber(date);
  if (last === null) throw new RangeError(`not a YYYY-MM-DD calendar date: "${date}"`);
  return { from_ms: (last - windowDays + 1) * DAY_MS, to_ms: Math.min((last + 1) * DAY_MS, asOfMs) };
}

/** One line of the inputs digest: the stable stringification of `{signal_id, ts, subject_ref, kind, value}`, `ts` as written. */
export function signalDigestLine(s: Signal): string {
  return digestLine(JSON.stringify(s.kind), JSON.stringify(s.signal_id), JSON.stringify(s.subject_ref), tsText(s), s.value);
}

/**
 * A digest line from its parts, the strings already JSON-quoted. Written out with its keys in
 * sorted order: byte for byte what fast-json-stable-stringify gives for these five fields (strings
 * as JSON.stringify, a finite number as String), without sorting the keys of a fresh object per
 * signal, which took a tenth of a 1M-signal run.
 */
function digestLine(kind: string, id: string, subject: string, ts: string, value: number): string {
  return `{"kind":${kind},"signal_id":${id},"subject_ref":${subject},"ts":${JSON.stringify(ts)},"value":${Number.isFinite(value) ? String(value) : 'null'}}`;
}

/**
 * The inputs digest of a date from any list of signals (filters and sorts them itself): one
 * {@link signalDigestLine} per signal in the window, ascending (instant of `ts`, `signal_id`).
 * {@link EMPTY_DIGEST} when none is in the window.
 */
export function inputsDigest(signals: readonly Signal[], date: string, asOfMs: number, windowDays: number): string {
  const { from_ms, to_ms } = windowBounds(date, asOfMs, windowDays);
  const used = signals.filter((s) => s.ts_ms >= from_ms && s.ts_ms < to_ms).sort(compareSignals);
  return digestOfLines(used.map(signalDigestLine));
}

/**
 * The counted digest of a date: the ids of every projection row settlement counts for it (the
 * published runs' rows for earlier dates, this run's for the date), sorted ascending by code
 * unit, one a line. {@link EMPTY_DIGEST} when there is none.
 */
export function countedDigest(ids: Iterable<string>): string {
  return digestOfLines([...ids].sort(compareText));
}

/** Above this many days between the first and the last signal, the sort falls back to the comparator. */
const MAX_DAY_SPAN = 1 << 20;

/**
 * The indices of `t`'s signals in ascending (instant, signal_id) order ({@link compareSignals}).
 * Signals are bucketed by UTC day (a counting sort, file order kept), each day's are ordered by a
 * native sort of float keys `ms_of_day × 2^bits + index` (exact below 2^53), and runs of one
 * instant by signal_id: several times faster on a million signals than a comparator called some
 * twenty million times. Past 64M signals, a span of 2^20 days or an instant that is not a whole millisecond, the comparator
 * sorts: same order.
 */
export function sortedOrder(t: SignalTable): Uint32Array {
  const n = t.length;
  const ts = t.ts;
  const ids = t.ids;
  const order = new Uint32Array(n);
  let minDay = Infinity;
  let maxDay = -Infinity;
  let whole = true;
  for (let i = 0; i < n; i++) {
    if (!Number.isSafeInteger(ts[i])) whole = false;
    const d = Math.floor(ts[i]! / DAY_MS);
    if (d < minDay) minDay = d;
    if (d > maxDay) maxDay = d;
  }
  const bits = Math.max(1, Math.ceil(Math.log2(n + 1)));
  if (n < 2 || !whole || bits > 26 || !(maxDay - minDay < MAX_DAY_SPAN)) {
    for (let i = 0; i < n; i++) order[i] = i;
    return order.sort((a, b) => ts[a]! - ts[b]! || compareText(ids[a]!, ids[b]!));
  }
  const span = maxDay - minDay + 1;
  const start = new Uint32Array(span + 1);
  for (let i = 0; i < n; i++) start[Math.floor(ts[i]! / DAY_MS) - minDay + 1]!++;
  for (let d = 0; d < span; d++) start[d + 1]! += start[d]!;
  const fill = start.slice(0, span);
  for (let i = 0; i < n; i++) order[fill[Math.floor(ts[i]! / DAY_MS) - minDay]!++] = i;
  const scale = 2 ** bits;
  const keys = new Float64Array(n);
  for (let d = 0; d < span; d++) {
    const lo = start[d]!;
    const hi = start[d + 1]!;
    if (hi - lo < 2) continue;
    const dayMs = (d + minDay) * DAY_MS;
    for (let j = lo; j < hi; j++) keys[j] = (ts[order[j]!]! - dayMs) * scale + order[j]!;
    keys.subarray(lo, hi).sort();
    for (let j = lo; j < hi; j++) order[j] = keys[j]! % scale;
  }
  for (let i = 0; i < n;) {
    let j = i + 1;
    while (j < n && ts[order[j]!] === ts[order[i]!]) j++;
    if (j - i > 1) order.subarray(i, j).sort((a, b) => compareText(ids[a]!, ids[b]!));
    i = j;
  }
  return order;
}

/**
 * The signals of a file sorted once by (instant, signal_id): the signals of any date's window are
 * then one contiguous slice, found by binary search (a backfill of many dates over a million
 * signals sorts once, not once a date).
 */
export class SortedSignals {
  private readonly table: SignalTable;
  /** Signal indices in ascending (instant, signal_id) order. */
  private readonly order: Uint32Array;

  constructor(signals: Iterable<Signal> | SignalTable) {
    this.table = signals instanceof SignalTable ? signals : SignalTable.of(signals);
    this.order = sortedOrder(this.table);
  }

  /** How many signals the file holds. */
  get size(): number {
    return this.order.length;
  }

  /** How many signals stage 1 uses for the date. */
  count(date: string, asOfMs: number, windowDays: number): number {
    const [lo, hi] = this.range(date, asOfMs, windowDays);
    return hi - lo;
  }

  /** The date's inputs digest; the same value as {@link inputsDigest} over the same signals. */
  digest(date: string, asOfMs: number, windowDays: number): string {
    const [lo, hi] = this.range(date, asOfMs, windowDays);
    const t = this.table;
    const w = new DigestLines();
    const heads = t.kinds.map((k) => Buffer.from(`{"kind":${JSON.stringify(k)},"signal_id":`));
    // Line by line into the hash: a window of a million signals never exists as one text.
    for (let k = lo; k < hi; k++) {
      const i = this.order[k]!;
      w.bytes(heads[t.kind[i]!]!);
      w.quoted(t.ids[i]!);
      w.ascii(',"subject_ref":');
      w.quoted(t.subjects[t.subject[i]!]!);
      w.ascii(',"ts":"');
      w.instant(t.ts[i]!, t.digits[i]!);
      w.ascii('","value":');
      w.number(t.value[i]!);
      w.ascii('}\n');
    }
    return w.hex16();
  }

  private range(date: string, asOfMs: number, windowDays: number): [number, number] {
    const { from_ms, to_ms } = windowBounds(date, asOfMs, windowDays);
    if (to_ms <= from_ms) return [0, 0];
    return [this.firstAtOrAfter(from_ms), this.firstAtOrAfter(to_ms)];
  }

  private firstAtOrAfter(ms: number): number {
    let lo = 0;
    let hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.table.ts[this.order[mid]!]! < ms) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
