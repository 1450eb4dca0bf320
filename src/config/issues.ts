import type * as z from '../zod.js';
import { nearest } from './nearest.js';

/**
 * One zod issue of a config file as the rule an operator reads: `queues.project_rewards:
 * unknown key "max_attempt" (did you mean "max_attempts"?)`, `queues.defaults.poll_ms: must be a
 * whole number from 1 to 86400000 ms (1 day), got 3000000000`.
 */

interface Def {
  type?: string;
  shape?: Record<string, unknown>;
  innerType?: unknown;
  valueType?: unknown;
  in?: unknown;
}

function defOf(schema: unknown): Def {
  return ((schema as { _zod?: { def?: Def } } | undefined)?._zod?.def ?? {}) as Def;
}

/** The schema under `path` (through optional, default, prefault, pipes, records), or null. */
function schemaAt(schema: unknown, path: readonly PropertyKey[]): unknown {
  let s = schema;
  let i = 0;
  for (let guard = 0; guard < 64 && s !== undefined; guard++) {
    const d = defOf(s);
    if (d.innerType !== undefined && d.type !== 'object' && d.type !== 'record') s = d.innerType;
    else if (d.type === 'pipe') s = d.in;
    else if (i === path.length) return s;
    else if (d.type === 'object') s = d.shape?.[String(path[i++])];
    else if (d.type === 'record') {
      s = d.valueType;
      i++;
    } else return null;
  }
  return null;
}

/** The keys an object schema at `path` knows. */
export function knownKeysAt(schema: unknown, path: readonly PropertyKey[]): string[] {
  const s = schemaAt(schema, path);
  const d = defOf(s);
  return d.type === 'object' && d.shape ? Object.keys(d.shape) : [];
}

/** `a.b.c`, or `(root)`. */
export function describePath(path: readonly PropertyKey[]): string {
  return path.length === 0 ? '(root)' : path.map((k) => (k === '' ? '""' : String(k))).join('.');
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let v = raw;
  for (const k of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<PropertyKey, unknown>)[k as string];
  }
  return v;
}

function shown(v: unknown): string {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/**
 * The rule of a zod issue, its path prefixed with `prefix` (for sections parsed on their own).
 * `schema` is the schema that was parsed (for the keys an unknown key could have meant) and `raw`
 * the value it parsed (for the value shown).
 */
export function issueRule(issue: z.core.$ZodIssue, schema: unknown, raw: unknown, prefix: readonly PropertyKey[] = []): string {
  const path = [...prefix, ...issue.path];
  const where = describePath(path);
  if (issue.code === 'unrecognized_keys') {
    const known = knownKeysAt(schema, issue.path);
    const key = issue.keys[0] ?? '';
    const near = nearest(key, known);
    const list = known.length ? `; known keys here: ${known.join(', ')}` : '';
    return `${path.length ? `${where}: ` : ''}unknown key "${key.slice(0, 60)}"${near ? ` (did you mean "${near}"?)` : ''}${list}`;
  }
  // An issue about a record's key (params.about 'key') is not about the value found there.
  if (issue.code === 'custom' && (issue.params as { about?: string } | undefined)?.about === 'key') return `${where}: ${issue.message}`;
  const got = valueAt(raw, issue.path);
  return `${where}: ${issue.message}${got === undefined ? '' : `, got ${shown(got)}`}`;
}
