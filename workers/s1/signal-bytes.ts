import { DAY_MS, dayNumber } from './dates.js';
import { HASH_PRIME, HASH_SEED } from './signal-table.js';

/**
 * The common signal line read straight from its bytes: a flat object of ASCII strings, no
 * whitespace, no escapes, `value` (if any) a short plain decimal, every field valid. Such a line
 * means the same to JSON.parse and the field rules as to this scanner, which makes no object and
 * no string but the ones kept (the reader makes the id's string, and a subject's only when it is
 * new). Any other line, valid or not, is left to the reader of text (signals.ts), which judges
 * it and names the rule it breaks. Pure: no I/O.
 */

/** What {@link scanPlainLine} found: byte ranges into the line's buffer and the checked values. Reused line to line. */
export class PlainLine {
  idFrom = 0;
  idTo = 0;
  /** FNV-1a over the id's bytes (signal-table.ts `textHash` of its text). */
  idHash = 0;
  subjectFrom = 0;
  subjectTo = 0;
  subjectHash = 0;
  tsFrom = 0;
  tsTo = 0;
  kindFrom = 0;
  kindTo = 0;
  /** Index into the `kinds` given to the scan. */
  kind = 0;
  tsMs = 0;
  /** Fraction-of-second digits of `ts`, 0–3. */
  digits = 0;
  /** `value`, 1 when absent. */
  value = 1;
}

const Q = 0x22; // "
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN = 0x7b; // {
const CLOSE = 0x7d; // }
const BACKSLASH = 0x5c;

const F_ID = 1;
const F_TS = 2;
const F_SUBJECT = 4;
const F_KIND = 8;
const F_VALUE = 16;
const REQUIRED = F_ID | F_TS | F_SUBJECT | F_KIND;

/** Whether `bytes[at, at + text.length)` are the ASCII `text`. */
function bytesAre(bytes: Uint8Array, at: number, text: string): boolean {
  for (let i = 0; i < text.length; i++) if (bytes[at + i] !== text.charCodeAt(i)) return false;
  return true;
}

/** The field flag of the key `bytes[from, to)`, or 0 for any other key. */
function fieldOf(bytes: Uint8Array, from: number, to: number): number {
  switch (to - from) {
    case 9:
      return bytesAre(bytes, from, 'signal_id') ? F_ID : 0;
    case 2:
      return bytesAre(bytes, from, 'ts') ? F_TS : 0;
    case 11:
      return bytesAre(bytes, from, 'subject_ref') ? F_SUBJECT : 0;
    case 4:
      return bytesAre(bytes, from, 'kind') ? F_KIND : 0;
    case 5:
      return bytesAre(bytes, from, 'value') ? F_VALUE : 0;
    default:
      return 0;
  }
}

/** `n` ASCII digits at `at` as a number, or -1. */
function digitsAt(bytes: Uint8Array, at: number, n: number): number {
  let v = 0;
  for (let i = at; i < at + n; i++) {
    const c = bytes[i]! - 48;
    if (!(c >= 0 && c <= 9)) return -1;
    v = v * 10 + c;
  }
  return v;
}

/** The day of the last date seen (signals in time order share it), as its 8 digits and its day number. */
let lastDateDigits = -1;
let lastDay = 0;

/**
 * Epoch ms of the `ts` bytes `[from, to)` when they are `YYYY-MM-DDTHH:MM:SS[.f{1,3}]Z` on a real
 * calendar date, else NaN: the instants `utcInstantMs` accepts, with its value (a property test
 * compares them).
 */
export function instantOfBytes(bytes: Uint8Array, from: number, to: number): number {
  const len = to - from;
  if (len !== 20 && (len < 22 || len > 24)) return Number.NaN;
  if (bytes[from + 4] !== 45 || bytes[from + 7] !== 45 || bytes[from + 10] !== 84 || bytes[from + 13] !== 58 || bytes[from + 16] !== 58 || bytes[to - 1] !== 90) return Number.NaN;
  if (len > 20 && bytes[from + 19] !== 46) return Number.NaN;
  const y = digitsAt(bytes, from, 4);
  const mo = digitsAt(bytes, from + 5, 2);
  const d = digitsAt(bytes, from + 8, 2);
  if (y < 0 || mo < 0 || d < 0) return Number.NaN;
  const date = (y * 100 + mo) * 100 + d;
  if (date !== lastDateDigits) {
    const day = dayNumber(`${String(y).padStart(4, '0')}-${String(mo).padStart(2, '0')}-${String(d).padStart(2, '0')}`);
    if (day === null) return Number.NaN;
    lastDateDigits = date;
    lastDay = day;
  }
  const h = digitsAt(bytes, from + 11, 2);
  const mi = digitsAt(bytes, from + 14, 2);
  const sec = digitsAt(bytes, from + 17, 2);
  const frac = len > 20 ? digitsAt(bytes, from + 20, len - 21) : 0;
  if (h < 0 || mi < 0 || sec < 0 || frac < 0 || h > 23 || mi > 59 || sec > 59) return Number.NaN;
  const ms = len === 20 ? 0 : len === 22 ? frac * 100 : len === 23 ? frac * 10 : frac;
  return lastDay * DAY_MS + ((h * 60 + mi) * 60 + sec) * 1000 + ms;
}

/**
 * Reads the line `bytes[from, to)` (no newline, no `\r`) into `out` when it is a plain signal
 * line (see the module comment) whose fields all pass: `signal_id` and `subject_ref` non-empty,
 * `kind` one of `kinds`, `ts` a valid instant, `value` absent or a decimal `0|[1-9]\d*` with an
 * optional fraction, at most 15 characters (exact below 2^53, no limit can refuse it). False for
 * any other line, which is then the text reader's to judge.
 */
export function scanPlainLine(bytes: Uint8Array, from: number, to: number, kinds: readonly string[], out: PlainLine): boolean {
  let p = from;
  if (bytes[p++] !== OPEN) return false;
  let seen = 0;
  let value = 1;
  for (;;) {
    if (p >= to || bytes[p] !== Q) return false;
    const keyFrom = ++p;
    while (p < to && bytes[p] !== Q) p++;
    if (p >= to) return false;
    const field = fieldOf(bytes, keyFrom, p);
    if (field === 0 || (seen & field) !== 0) return false;
    seen |= field;
    p++;
    if (p >= to || bytes[p++] !== COLON) return false;
    if (field === F_VALUE) {
      const start = p;
      let c = bytes[p];
      if (c === 48) p++;
      else if (c !== undefined && c >= 49 && c <= 57) while (p < to && (c = bytes[p]!) >= 48 && c <= 57) p++;
      else return false;
      const intEnd = p;
      if (p < to && bytes[p] === 46) {
        p++;
        const fracFrom = p;
        while (p < to && (c = bytes[p]!) >= 48 && c <= 57) p++;
        if (p === fracFrom) return false;
      }
      if (p - start > 15) return false;
      if (p === intEnd) {
        value = 0;
        for (let i = start; i < p; i++) value = value * 10 + (bytes[i]! - 48);
      } else {
        value = Number(String.fromCharCode(...bytes.subarray(start, p)));
      }
    } else {
      if (p >= to || bytes[p] !== Q) return false;
      const s = ++p;
      let h = HASH_SEED;
      for (; p < to; p++) {
        const c = bytes[p]!;
        if (c === Q) break;
        if (c < 0x20 || c === BACKSLASH || c >= 0x80) return false;
        h = Math.imul(h ^ c, HASH_PRIME);
      }
      if (p >= to || p === s) return false;
      if (field === F_ID) {
        out.idFrom = s;
        out.idTo = p;
        out.idHash = h;
      } else if (field === F_SUBJECT) {
        out.subjectFrom = s;
        out.subjectTo = p;
        out.subjectHash = h;
      } else if (field === F_TS) {
        out.tsFrom = s;
        out.tsTo = p;
      } else {
        out.kindFrom = s;
        out.kindTo = p;
      }
      p++;
    }
    if (p >= to) return false;
    const c = bytes[p++];
    if (c === COMMA) continue;
    if (c === CLOSE && p === to) break;
    return false;
  }
  if ((seen & REQUIRED) !== REQUIRED) return false;
  let kind = -1;
  for (let k = 0; k < kinds.length; k++) {
    const name = kinds[k]!;
    if (name.length === out.kindTo - out.kindFrom && bytesAre(bytes, out.kindFrom, name)) {
      kind = k;
      break;
    }
  }
  if (kind < 0) return false;
  const tsMs = instantOfBytes(bytes, out.tsFrom, out.tsTo);
  if (Number.isNaN(tsMs)) return false;
  const tsLength = out.tsTo - out.tsFrom;
  out.kind = kind;
  out.tsMs = tsMs;
  out.digits = tsLength === 20 ? 0 : tsLength - 21;
  out.value = value;
  return true;
}
