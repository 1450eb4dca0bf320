import { checkLimit, rangeText } from '../config/limits.js';
import { UsageError } from '../guard/errors.js';

/**
 * UTC calendar dates and instants: the partitions of every pipeline (Season 1 included).
 *
 * A date is always the text `YYYY-MM-DD` (4-digit year): that text sorts the same way the
 * dates do, so callers may compare dates with `<`. Day arithmetic goes through a day number
 * (days since 1970-01-01) computed by hand, because `Date.UTC` silently maps years 0-99 to
 * 1900-1999 and rolls 2026-02-30 over to March.
 */

/** Milliseconds in one UTC day. */
export const DAY_MS = 86_400_000;

const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;
// `--as-of`: a date alone (midnight UTC) or a date-time with seconds optional and an explicit
// zone; a zone-less time would silently depend on the machine's local time zone.
const AS_OF_RE = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?(Z|[+-]\d{2}:\d{2}))?$/;

function isLeapYear(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

function daysInMonth(y: number, m: number): number {
  if (m === 2) return isLeapYear(y) ? 29 : 28;
  return m === 4 || m === 6 || m === 9 || m === 11 ? 30 : 31;
}

// Howard Hinnant's days_from_civil: exact for every proleptic Gregorian date.
function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function civilFromDays(z: number): [number, number, number] {
  const zz = z + 719468;
  const era = Math.floor(zz / 146097);
  const doe = zz - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  return [m <= 2 ? yoe + era * 400 + 1 : yoe + era * 400, m, d];
}

function realDayNumber(y: number, m: number, d: number): number | null {
  if (m < 1 || m > 12 || d < 1 || d > daysInMonth(y, m)) return null;
  return daysFromCivil(y, m, d);
}

function timeMs(h: number, mi: number, s: number, frac: string | undefined): number | null {
  if (h > 23 || mi > 59 || s > 59) return null; // no leap seconds: Date cannot hold them
  return ((h * 60 + mi) * 60 + s) * 1000 + (frac === undefined ? 0 : Number(frac.padEnd(3, '0')));
}

/** Days since 1970-01-01 of a `YYYY-MM-DD` text, or `null` when it is not a real calendar date. */
export function dayNumber(text: string): number | null {
  const m = DATE_RE.exec(text);
  if (m === null) return null;
  return realDayNumber(Number(m[1]), Number(m[2]), Number(m[3]));
}

/** The `YYYY-MM-DD` text of a day number (inverse of {@link dayNumber}). */
export function dayText(n: number): string {
  const [y, m, d] = civilFromDays(n);
  return `${String(y).padStart(4, '0')}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`;
}

/** Whether `text` is exactly `YYYY-MM-DD` and a real calendar date (2024-02-29 yes, 2026-02-30 no). */
export function isDateText(text: string): boolean {
  return dayNumber(text) !== null;
}

function requireDay(text: string): number {
  const n = dayNumber(text);
  if (n === null) throw new RangeError(`not a YYYY-MM-DD calendar date: "${text}"`);
  return n;
}

/**
 * Parses a date flag strictly: `YYYY-MM-DD` and a real calendar date.
 * @param flag the flag name used in the message; default `--date`.
 * @throws UsageError such as `--date must be YYYY-MM-DD, got "2026-13-01"`.
 */
export function parseDate(text: string, flag = '--date'): string {
  if (isDateText(text)) return text;
  const why = DATE_RE.test(text) ? ' (no such calendar date)' : '';
  throw new UsageError(`${flag} must be YYYY-MM-DD, got ${JSON.stringify(text)}${why}`, {
    hint: `pass ${flag} as a UTC calendar date, e.g. ${flag} 2026-01-15`,
  });
}

/** The date `n` days after `d` (`n` may be negative). Throws RangeError if `d` is not a date. */
export function addDays(d: string, n: number): string {
  return dayText(requireDay(d) + n);
}

/** Whole days from `a` to `b` (`b - a`; negative when `b` is earlier). */
export function daysBetween(a: string, b: string): number {
  return requireDay(b) - requireDay(a);
}

/** Epoch milliseconds of `date` at 00:00:00.000Z. */
export function dayStartMs(date: string): number {
  return requireDay(date) * DAY_MS;
}

/** The default as-of of a run for `date`: the next day at `T00:00:00.000Z`, in `toISOString()` form. */
export function defaultAsOf(date: string): string {
  return new Date(dayStartMs(date) + DAY_MS).toISOString();
}

// Reads `n` ASCII digits of `s` at `at` as a number, or -1 if any is not a digit.
function digitsAt(s: string, at: number, n: number): number {
  let v = 0;
  for (let i = at; i < at + n; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v;
}

/**
 * Epoch milliseconds of a signal's `ts`, which must be `YYYY-MM-DDTHH:MM:SS[.f{1,3}]Z` on a real
 * calendar date; `null` otherwise. At most 3 fraction digits: `ts_ms` then never merges two
 * distinct instants, so ordering by it is ordering by `ts`.
 */
export function utcInstantMs(text: string): number | null {
  // Hand-rolled rather than a regex: it runs once per signal, a million times for a big file.
  const len = text.length;
  if (len !== 20 && (len < 22 || len > 24)) return null;
  if (
    text.charCodeAt(4) !== 45 || // -
    text.charCodeAt(7) !== 45 ||
    text.charCodeAt(10) !== 84 || // T
    text.charCodeAt(13) !== 58 || // :
    text.charCodeAt(16) !== 58 ||
    text.charCodeAt(len - 1) !== 90 || // Z
    (len > 20 && text.charCodeAt(19) !== 46) // .
  ) {
    return null;
  }
  const y = digitsAt(text, 0, 4);
  const mo = digitsAt(text, 5, 2);
  const d = digitsAt(text, 8, 2);
  const h = digitsAt(text, 11, 2);
  const mi = digitsAt(text, 14, 2);
  const sec = digitsAt(text, 17, 2);
  const frac = len > 20 ? digitsAt(text, 20, len - 21) : 0;
  if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || sec < 0 || frac < 0) return null;
  const day = realDayNumber(y, mo, d);
  if (day === null || h > 23 || mi > 59 || sec > 59) return null;
  const ms = len === 20 ? 0 : len === 22 ? frac * 100 : len === 23 ? frac * 10 : frac;
  return day * DAY_MS + ((h * 60 + mi) * 60 + sec) * 1000 + ms;
}

/**
 * Epoch milliseconds of an `--as-of` text: `YYYY-MM-DD` (midnight UTC) or
 * `YYYY-MM-DDTHH:MM[:SS[.fff]]` followed by `Z` or `+HH:MM`/`-HH:MM`; `null` otherwise.
 */
export function asOfInstantMs(text: string): number | null {
  const m = AS_OF_RE.exec(text);
  if (m === null) return null;
  const day = realDayNumber(Number(m[1]), Number(m[2]), Number(m[3]));
  if (day === null) return null;
  if (m[4] === undefined) return day * DAY_MS;
  const t = timeMs(Number(m[4]), Number(m[5]), Number(m[6] ?? '0'), m[7]);
  if (t === null) return null;
  const zone = m[8] ?? 'Z';
  if (zone === 'Z') return day * DAY_MS + t;
  const zh = Number(zone.slice(1, 3));
  const zm = Number(zone.slice(4, 6));
  if (zh > 23 || zm > 59) return null;
  const offsetMs = (zh * 60 + zm) * 60_000 * (zone.startsWith('-') ? -1 : 1);
  return day * DAY_MS + t - offsetMs;
}

/**
 * The canonical as-of of a run: `--as-of` when given, else {@link defaultAsOf}; always in
 * `Date.prototype.toISOString()` form.
 * @throws UsageError when `date` or `asOfText` does not parse, or when `asOfText` is later than
 *   the default (the spec lets `--as-of` only set an earlier instant).
 */
export function resolveAsOf(date: string, asOfText: string | undefined): string {
  const fallback = defaultAsOf(parseDate(date));
  if (asOfText === undefined) return fallback;
  const ms = asOfInstantMs(asOfText);
  if (ms === null) {
    throw new UsageError(`--as-of must be an ISO-8601 instant such as 2026-01-15T12:00:00Z, got ${JSON.stringify(asOfText)}`, {
      hint: 'give a date-time with Z or an explicit offset, or a date alone for midnight UTC',
    });
  }
  const canonical = new Date(ms).toISOString();
  if (ms > Date.parse(fallback)) {
    throw new UsageError(`--as-of ${canonical} is later than ${fallback}, the default for --date ${date}`, {
      hint: '--as-of may only set an earlier instant; leave it out to use all data of the date',
    });
  }
  return canonical;
}

/**
 * Refuses a backfill range (checked dates, `start <= end`) of more dates than
 * LIMITS.backfill_partitions, before any date of it is planned.
 * @throws UsageError `--start S --end E spans N dates; a backfill covers …`.
 */
export function checkBackfillSpan(start: string, end: string): void {
  const n = requireDay(end) - requireDay(start) + 1;
  if (checkLimit('backfill_partitions', n) !== null) throw new UsageError(`--start ${start} --end ${end} spans ${n} dates; a backfill covers ${rangeText('backfill_partitions')}`);
}

/** Every date from `start` to `end`, both included, ascending; empty when `start > end`. */
export function seasonDates(start: string, end: string): string[] {
  const first = requireDay(start);
  const last = requireDay(end);
  const out: string[] = [];
  for (let n = first; n <= last; n++) out.push(dayText(n));
  return out;
}
