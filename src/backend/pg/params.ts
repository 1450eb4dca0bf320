/**
 * Array parameters of the acknowledgement statements as PostgreSQL array literals, built in one
 * pass with one `join` (what the statement's `$n::text[]` cast reads, as from the driver's own
 * serialisation). The driver builds an array parameter by concatenating its elements one by one,
 * each copied through two replacements and quoted: for the ids, fences and owners of every
 * completion and start mark that was a sixth of the worker's allocations in a drain
 * (docs/PERFORMANCE.md, 2026-12-01).
 */

/** An element that must be escaped inside a quoted array element. */
const SPECIAL = /["\\]/;
const SPECIALS = /["\\]/g;

/**
 * `{"a","b",…}` of `f` applied to each item (every element quoted, `"` and `\` escaped; `{}` when
 * there are none). No element may be null.
 */
export function textArray<T>(items: readonly T[], f: (x: T) => string): string {
  if (items.length === 0) return '{}';
  const parts = new Array<string>(items.length);
  for (let i = 0; i < items.length; i++) {
    const s = f(items[i]!);
    parts[i] = SPECIAL.test(s) ? s.replace(SPECIALS, '\\$&') : s;
  }
  return `{"${parts.join('","')}"}`;
}

/** `{1,2,…}` of `f` applied to each item (numbers as `String` writes them, booleans as true/false). */
export function plainArray<T>(items: readonly T[], f: (x: T) => number | boolean): string {
  if (items.length === 0) return '{}';
  const parts = new Array<number | boolean>(items.length);
  for (let i = 0; i < items.length; i++) parts[i] = f(items[i]!);
  return `{${parts.join(',')}}`;
}
