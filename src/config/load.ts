import { readFileSync } from 'node:fs';
import * as z from '../zod.js';
import { backendConfigSchema, type BackendConfig } from '../backend/pg/setting.js';
import { DataInvalidError } from '../guard/errors.js';
import { bundledPipelines } from '../pipeline/bundled.js';
import { alertsConfigSchema, type AlertsConfig } from './alerts.js';
import { reportsConfigSchema, type ReportsConfig } from './reports.js';
import type { WorkspacePaths } from '../storage/paths.js';
import { issueRule } from './issues.js';
import { parseJsonWithin, utf8Text } from './json-limits.js';
import { checkLimit, envNumber, limitOfConfigPath, LIMITS } from './limits.js';
import { nearest } from './nearest.js';
import { partialPolicySchema, POLICY_KEYS, resolvePolicy, type PartialPolicy, type QueuePolicy } from './policy.js';

/**
 * metaspn.config.json, validated once at the edge. Layers, weakest first:
 * built-in defaults < the worker's own defaults < config `queues.defaults` < config `queues.<name>`
 * < environment (METASPN_QUEUE_<KEY>, e.g. METASPN_QUEUE_BACKOFF_BASE_MS=10) < command-line flags.
 */
const partialPolicy = partialPolicySchema;

/** The keys the core owns; bundled pipelines add theirs (Season 1: season, attention, guardrails). */
const CORE_KEYS = {
  queues: z.record(z.string(), partialPolicy).optional(),
  alerts: z.unknown().optional(),
  reports: z.unknown().optional(),
  /** The PostgreSQL backend: `{"url"?, "schema"?, "pool_max"?}` (src/backend/pg/setting.ts, docs/POSTGRES.md). */
  backend: backendConfigSchema.optional(),
  pipelines: z
    .record(z.string(), z.string().min(1).max(1024))
    .superRefine((v, ctx) => {
      // zod reports a record key that fails its schema as "Invalid key in record": say the rule.
      for (const k of Object.keys(v)) {
        if (!/^[a-z][a-z0-9_-]{0,63}$/.test(k)) ctx.addIssue({ code: 'custom', path: [k], params: { about: 'key' }, message: `pipeline name ${JSON.stringify(k)} must match [a-z][a-z0-9_-]{0,63}` });
        else if (bundledPipelines().some((p) => p.name === k))
          ctx.addIssue({ code: 'custom', path: [k], params: { about: 'key' }, message: `${k} is the bundled pipeline's name (metaspn ${k} …); name yours otherwise` });
      }
    })
    .optional(),
};

function fileSchema() {
  const extra = Object.fromEntries(
    bundledPipelines()
      .flatMap((p) => p.config?.keys ?? [])
      .map((k) => [k, z.unknown().optional()]),
  );
  return z.object({ ...extra, ...CORE_KEYS }).strict();
}

export type { PartialPolicy };

/**
 * The workspace's configuration, defaults filled in. Bundled pipelines add their sections (typed
 * by module augmentation in their own code: Season 1 adds `s1` and `guardrails`).
 */
export interface WorkspaceConfig {
  /** Path of the config file (it may not exist: then every default holds). */
  file: string;
  queues: Record<string, PartialPolicy>;
  env: PartialPolicy;
  /** Alert thresholds (`alerts`), defaults filled in. */
  alerts: AlertsConfig;
  /** Report evidence minimums (`reports`), defaults filled in. */
  reports: ReportsConfig;
  /** The workspace's own pipelines: name to module path, relative to the workspace (`pipelines`). Default {}. */
  pipelines: Record<string, string>;
  /**
   * `backend` of the config file as written (url, schema, pool_max), absent when the file has none.
   * The backend in effect also depends on METASPN_DATABASE_URL and --database-url:
   * resolveBackend (src/backend/pg/setting.ts) decides.
   */
  backend?: BackendConfig;
}

/**
 * Reads, checks and completes metaspn.config.json (and the METASPN_QUEUE_* variables).
 * @throws DataInvalidError (20) naming the file, the key and the rule; the line of a JSON syntax error.
 */
export function loadConfig(ws: WorkspacePaths, env: NodeJS.ProcessEnv = process.env): WorkspaceConfig {
  const file = ws.config;
  const raw = readConfigFile(file);
  const schema = fileSchema();
  // No file is the defaults; a file that says `null` is a config that is not an object (20), as `[]` or `0` is.
  const given = raw === undefined ? {} : raw;
  const parsed = schema.safeParse(given);
  if (!parsed.success) throw configError(file, issueRule(parsed.error.issues[0]!, schema, given));
  const data = parsed.data as Record<string, unknown>;
  const sections: Record<string, unknown> = {};
  for (const p of bundledPipelines()) {
    if (!p.config) continue;
    const mine = Object.fromEntries(p.config.keys.map((k) => [k, data[k]]));
    Object.assign(sections, p.config.resolve(raw === undefined ? undefined : mine, file, data));
  }
  const alerts = configSection(file, data, 'alerts', alertsConfigSchema);
  const reports = configSection(file, data, 'reports', reportsConfigSchema);
  return {
    ...sections,
    file,
    queues: (data.queues as Record<string, PartialPolicy> | undefined) ?? {},
    env: policyFromEnv(env),
    alerts,
    reports,
    pipelines: (data.pipelines as Record<string, string> | undefined) ?? {},
    ...(data.backend !== undefined ? { backend: data.backend as BackendConfig } : {}),
  } as WorkspaceConfig;
}

/** A config error: the file, the rule, and where the ranges are documented (exit 20). */
export function configError(file: string, rule: string): DataInvalidError {
  return new DataInvalidError(file, null, rule.replace(/[\r\n]+/g, ' '), { hint: `fix ${file}, or delete the key to use its default (docs/LIMITS.md lists every range)` });
}

/**
 * One section of the config checked against LIMITS (first: its message names the range), then
 * against its schema; defaults filled in.
 * @throws DataInvalidError naming the file, the key path and the rule.
 */
export function configSection<T>(file: string, data: Record<string, unknown>, name: string, schema: z.ZodType<T>): T {
  const value = data[name] ?? {};
  const out = outOfRange(value, [name]);
  if (out) throw configError(file, out);
  const r = schema.safeParse(value);
  if (!r.success) throw configError(file, issueRule(r.error.issues[0]!, schema, value, [name]));
  return r.data;
}

/**
 * The parsed config file, or undefined when there is none. Held to the limits of every reader of
 * outside data: its size, nesting depth, and numbers JSON cannot carry exactly.
 * @throws DataInvalidError naming the file (and the line of a JSON syntax error).
 */
function readConfigFile(file: string): unknown {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'EISDIR') throw new DataInvalidError(file, null, 'is a directory, not a file');
    throw new DataInvalidError(file, null, `cannot be read (${code ?? (err as Error).message})`, { hint: 'fix the mode of the config file', cause: err });
  }
  if (bytes.length > LIMITS.config_bytes.max) {
    throw new DataInvalidError(file, null, `is ${bytes.length} bytes, more than ${LIMITS.config_bytes.max} (limit config_bytes)`);
  }
  const text = utf8Text(bytes, file).replace(/^\uFEFF/, '');
  const r = parseJsonWithin(text, { maxChars: LIMITS.config_bytes.max, what: 'the config file', limit: 'config_bytes' });
  if (r.ok) return r.value;
  if (r.syntax !== undefined) {
    throw new DataInvalidError(file, jsonErrorLine(text, r.syntax), `not valid JSON: ${r.syntax}`, { hint: 'fix the JSON syntax of the config file' });
  }
  throw new DataInvalidError(file, null, r.rule, { hint: 'see docs/LIMITS.md' });
}

/** The first number under `value` whose config path has a row in LIMITS and is out of its range. */
function outOfRange(value: unknown, path: string[]): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  for (const [k, v] of Object.entries(value)) {
    const here = [...path, k];
    if (typeof v === 'number') {
      const key = limitOfConfigPath(here.join('.'));
      const rule = key === undefined ? null : checkLimit(key, v);
      if (rule) return `${here.join('.')}: ${rule}, got ${v}`;
    } else {
      const deeper = outOfRange(v, here);
      if (deeper) return deeper;
    }
  }
  return null;
}

function policyFromEnv(env: NodeJS.ProcessEnv): PartialPolicy {
  const out: Record<string, number> = {};
  const names = POLICY_KEYS.map((k) => `METASPN_QUEUE_${k.toUpperCase()}`);
  for (const name of Object.keys(env)) {
    if (!name.startsWith('METASPN_QUEUE_') || names.includes(name)) continue;
    const near = nearest(name, names);
    throw new DataInvalidError(`environment ${name}`, null, `unknown variable${near ? ` (did you mean ${near}?)` : ''}; the queue variables are METASPN_QUEUE_<KEY> for the keys of docs/LIMITS.md`);
  }
  for (const key of POLICY_KEYS) {
    const name = `METASPN_QUEUE_${key.toUpperCase()}`;
    const v = env[name];
    if (v === undefined || v === '') continue;
    const n = envNumber(v);
    const rule = checkLimit(key, n);
    if (rule) throw new DataInvalidError(`environment ${name}`, null, `${rule}, got "${v.slice(0, 40)}"`);
    out[key] = n;
  }
  return partialPolicy.parse(out);
}

/** The effective policy of one queue, every layer applied. */
export function policyFor(cfg: WorkspaceConfig, queue: string, workerDefaults: PartialPolicy = {}, flags: PartialPolicy = {}): QueuePolicy {
  return resolvePolicy(workerDefaults, cfg.queues.defaults ?? {}, cfg.queues[queue] ?? {}, cfg.env, flags);
}

/** The line of a JSON.parse error, from the position V8 reports. */
function jsonErrorLine(text: string, message: string): number | null {
  const m = /position (\d+)/.exec(message);
  if (!m) return null;
  return text.slice(0, Number(m[1])).split('\n').length;
}
