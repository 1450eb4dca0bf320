/**
 * Orders two strings by UTF-16 code units with plain `<`, the same on every machine and locale.
 * Never `localeCompare`: its order depends on the ICU build and the locale, and the spec needs
 * byte-identical output.
 */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** `Math.round(x * 1e6) / 1e6`: the spec's rounding of scores to 6 decimals. */
export function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}
