import { createHash } from 'node:crypto';
import { DAY_MS, dayNumber } from './dates.js';
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
    const kinds = t.kinds.map((k) => JSON.stringify(k));
    // Quoted once per subject that the window holds (a subject has many signals).
    const subjects = new Array<string | undefined>(t.subjects.length);
    // Line by line into the hash: a window of a million signals never exists as one text.
    const h = new LineHash();
    for (let k = lo; k < hi; k++) {
      const i = this.order[k]!;
      const s = t.subject[i]!;
      const subject = (subjects[s] ??= JSON.stringify(t.subjects[s]));
      h.add(digestLine(kinds[t.kind[i]!]!, JSON.stringify(t.ids[i]), subject, tsTextOf(t.ts[i]!, t.digits[i]), t.value[i]!));
    }
    return h.hex16();
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
