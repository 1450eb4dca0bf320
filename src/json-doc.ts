/** The JSON documents metaspn prints (`--json`, the error document, the JSON API): one shape rule, one place. */

/**
 * The version of every JSON document metaspn prints (each `--json`, the error document, the JSON
 * API): `"schema_version": 1`, its first key. A field removed or changed in meaning bumps it; a
 * field added does not (readers ignore keys they do not know).
 */
export const SCHEMA_VERSION = 1;

/** Keys whose number is an instant (epoch ms inside metaspn): `now`, `at` and every `…_at`. */
const TIME_KEY = /^(?:now|at|[a-z0-9_]+_at)$/;
/** Subtrees that are the user's own data (a task's payload), printed as they are. */
const VERBATIM_KEYS = new Set(['payload']);

/**
 * A copy of `value` with every instant as an ISO-8601 UTC string (`toISOString()`): a finite
 * number under a time key ({@link TIME_KEY}). Durations stay numbers with their unit in the name
 * (`duration_ms`, `oldest_ready_age_s`). Conversion happens here, at the output edge only: the
 * queue, its files and its stats keep epoch ms.
 */
export function isoTimes(value: unknown, key = ''): unknown {
  if (typeof value === 'number') return TIME_KEY.test(key) && Number.isFinite(value) ? new Date(value).toISOString() : value;
  if (value === null || typeof value !== 'object' || VERBATIM_KEYS.has(key)) return value;
  if (Array.isArray(value)) return value.map((v) => isoTimes(v, key));
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = isoTimes(v, k);
  return out;
}

/** A JSON document as metaspn prints it: `schema_version` first, instants as ISO-8601 ({@link isoTimes}). */
export function jsonDoc<T extends object>(doc: JsonObject<T>): Record<string, unknown> {
  if (Array.isArray(doc)) throw new TypeError('a JSON document is an object: put the list under a name');
  return { schema_version: SCHEMA_VERSION, ...(isoTimes(doc) as Record<string, unknown>) };
}

/** Any object but a list (a list goes under a name). */
export type JsonObject<T extends object> = T extends readonly unknown[] ? never : T;
