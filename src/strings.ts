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
