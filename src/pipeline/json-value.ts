/**
 * What a pipeline's code hands the runner (planned payloads, returned rows, digests, params, check
 * results) is stored as JSON, so it must be JSON exactly: `JSON.stringify` would turn NaN and
 * Infinity into null, drop an `undefined` field or a function without a word, make a Date a
 * string and a Map `{}`, and throw on a BigInt. The runner refuses such a value instead, naming
 * where it is.
 */

/** How deep a value may nest (a cycle is reported as too deep, not a stack overflow). */
export const MAX_JSON_DEPTH = 64;

/**
 * The first place where `value` is not plain JSON, as `"<path>: <what>"` (path like
 * `rows[3].mean`), or null when it is: strings, booleans, null, finite numbers, arrays (no holes,
 * no `undefined`), and objects whose prototype is `Object.prototype` or null, with no `undefined`
 * field, nested at most {@link MAX_JSON_DEPTH} levels. Pure.
 */
export function jsonProblem(value: unknown, path = '(root)', depth = 0): string | null {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return null;
    case 'number':
      return Number.isFinite(value) ? null : `${path}: ${value} is not a JSON number`;
    case 'bigint':
      return `${path}: a BigInt (${value}n) is not JSON; pass it as a string`;
    case 'undefined':
      return `${path}: undefined is not JSON; omit the field or use null`;
    case 'function':
      return `${path}: a function is not JSON`;
    case 'symbol':
      return `${path}: a symbol is not JSON`;
  }
  if (value === null) return null;
  if (depth >= MAX_JSON_DEPTH) return `${path}: nested more than ${MAX_JSON_DEPTH} levels deep (or a cycle)`;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      if (!(i in value)) return `${path}[${i}]: an array hole is not JSON`;
      const p = jsonProblem(value[i], `${path}[${i}]`, depth + 1);
      if (p) return p;
    }
    return null;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) {
    const name = (value as { constructor?: { name?: string } }).constructor?.name ?? 'an object with a prototype';
    return `${path}: a ${name} is not plain JSON${name === 'Date' ? '; pass it as an ISO-8601 string' : ''}`;
  }
  for (const k of Object.keys(value as object)) {
    const p = jsonProblem((value as Record<string, unknown>)[k], path === '(root)' ? k : `${path}.${k}`, depth + 1);
    if (p) return p;
  }
  return null;
}
