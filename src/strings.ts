/**
 * `s` with its characters in one piece. A string made as `a + b.slice(…)` is a pair of pieces,
 * the second a view into the whole of `b` (kept alive with it): every Map lookup and comparison
 * of it walks the pieces, and a hundred thousand such strings kept (ids in a store's index, row
 * hashes) hold the whole of each `b` besides. Reading a character has V8 copy it into one flat
 * string once (a hint to the engine; the value is the same string). Pure, O(length) once.
 */
export function flat(s: string): string {
  s.charCodeAt(0);
  return s;
}

/**
 * `s` cut to at most `n` characters (UTF-16 units), the last one `…` when it was cut: for a value
 * echoed in a one-line message (an id or name the user gave, of any length). `n` ≥ 1.
 */
export function truncate(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n - 1)}…`;
}

/** Longest run of characters without a blank that an error line shows whole (`clipWords`). */
export const ECHO_MAX = 120;

/**
 * `s` with every run of more than `max` characters without a blank cut to its first 100 and a
 * count of the rest: a value of any length given on the command line (a date, a hash, a host, a
 * module path) and echoed in a one-line error keeps the line short and its rule readable.
 */
export function clipWords(s: string, max: number = ECHO_MAX): string {
  if (s.length <= max) return s;
  return s.replace(new RegExp(`\\S{${max + 1},}`, 'g'), (w) => `${w.slice(0, 100)}…(${w.length - 100} more characters)`);
}

// C0 controls, DEL, C1 controls and the bidi overrides/isolates: what a terminal acts on instead of showing.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;
// The same without the line feed, for text whose line breaks the printer wrote itself.
// eslint-disable-next-line no-control-regex
const CONTROL_BUT_LF = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;
const NAMED: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function escapeControl(c: string): string {
  const code = c.charCodeAt(0);
  return NAMED[c] ?? (code <= 0x7f ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`);
}

/**
 * `s` with every character a terminal would act on instead of show (C0 controls, DEL, C1 controls,
 * the bidi overrides U+202A–U+202E and U+2066–U+2069) written visibly: `\n`, `\r`, `\t`, `\x1b`,
 * `\u009b`, `\u202e`. For text from data (a reason, a handler's error, an id) on a terminal line.
 * With `keepLineBreaks`, `\n` stays as it is (a block of lines the printer joined). Pure.
 */
export function visible(s: string, keepLineBreaks = false): string {
  return s.replace(keepLineBreaks ? CONTROL_BUT_LF : CONTROL, escapeControl);
}

// What JSON.stringify leaves raw that a terminal may act on: C1 controls, the line and paragraph separators, bidi controls.
const JSON_RAW = /[\x80-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** `JSON.stringify(value, null, 2)` with C1, U+2028/2029 and bidi controls as `\uXXXX`: the same JSON value, safe on a terminal. */
export function jsonText(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(JSON_RAW, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
