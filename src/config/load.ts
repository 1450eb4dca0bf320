import { existsSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import { resolveS1Config, type S1Config } from '../../workers/s1/config.js';
import { guardrailsSchema, type Guardrails } from '../../workers/s1/guardrails.js';
import { DataInvalidError } from '../guard/errors.js';
import { alertsConfigSchema, type AlertsConfig } from '../ops/alerts/config.js';
import { reportsConfigSchema, type ReportsConfig } from '../ops/reports/config.js';
import type { WorkspacePaths } from '../storage/paths.js';
import { partialPolicySchema, POLICY_KEYS, resolvePolicy, type PartialPolicy, type QueuePolicy } from './policy.js';

/**
 * metaspn.config.json, validated once at the edge. Layers, weakest first:
 * built-in defaults < the worker's own defaults < config `queues.defaults` < config `queues.<name>`
 * < environment (METASPN_QUEUE_<KEY>, e.g. METASPN_QUEUE_BACKOFF_BASE_MS=10) < command-line flags.
 */
const partialPolicy = partialPolicySchema;

const fileSchema = z
  .object({
    season: z.unknown().optional(),
    attention: z.unknown().optional(),
    guardrails: z.unknown().optional(),
    queues: z.record(z.string(), partialPolicy).optional(),
    alerts: z.unknown().optional(),
    reports: z.unknown().optional(),
  })
  .strict();

export type { PartialPolicy };

export interface WorkspaceConfig {
  /** Path of the config file (it may not exist: then every default holds). */
  file: string;
  s1: S1Config;
  guardrails: Guardrails;
  queues: Record<string, PartialPolicy>;
  env: PartialPolicy;
  /** Alert thresholds (`alerts`), defaults filled in. */
  alerts: AlertsConfig;
  /** Report evidence minimums (`reports`), defaults filled in. */
  reports: ReportsConfig;
}

export function loadConfig(ws: WorkspacePaths, env: NodeJS.ProcessEnv = process.env): WorkspaceConfig {
  const file = ws.config;
  let raw: unknown = undefined;
  if (existsSync(file)) {
    const text = readFileSync(file, 'utf8');
    try {
      raw = JSON.parse(text.replace(/^\uFEFF/, ''));
    } catch (err) {
      throw new DataInvalidError(file, jsonErrorLine(text, err), `not valid JSON: ${(err as Error).message}`, {
        hint: 'fix the JSON syntax of the config file',
      });
    }
  }
  const parsed = fileSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = issue.path.length ? issue.path.join('.') : '(root)';
    const known = issue.code === 'unrecognized_keys' ? ` (known keys: season, attention, guardrails, queues, alerts, reports; queue keys: ${POLICY_KEYS.join(', ')})` : '';
    throw new DataInvalidError(file, null, `${where}: ${issue.message}${known}`);
  }
  const s1 = resolveS1Config(raw === undefined ? undefined : { season: parsed.data.season, attention: parsed.data.attention }, file);
  const g = guardrailsSchema.safeParse(parsed.data.guardrails ?? {});
  if (!g.success) {
    const issue = g.error.issues[0]!;
    const where = ['guardrails', ...issue.path.map(String)].join('.');
    const known = issue.code === 'unrecognized_keys' && issue.path.length === 0 ? ' (guardrails: total_score_ratio, subjects_scored_drop, pool_conserved)' : '';
    throw new DataInvalidError(file, null, `${where}: ${issue.message}${known}`);
  }
  const section = <T>(name: 'alerts' | 'reports', schema: z.ZodType<T>): T => {
    const r = schema.safeParse(parsed.data[name] ?? {});
    if (r.success) return r.data;
    const issue = r.error.issues[0]!;
    throw new DataInvalidError(file, null, `${[name, ...issue.path.map(String)].join('.')}: ${issue.message}`);
  };
  const alerts = section('alerts', alertsConfigSchema);
  const reports = section('reports', reportsConfigSchema);
  return { file, s1, guardrails: g.data, queues: parsed.data.queues ?? {}, env: policyFromEnv(env), alerts, reports };
}

function policyFromEnv(env: NodeJS.ProcessEnv): PartialPolicy {
  const out: Record<string, number> = {};
  for (const key of POLICY_KEYS) {
    const name = `METASPN_QUEUE_${key.toUpperCase()}`;
    const v = env[name];
    if (v === undefined || v === '') continue;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new DataInvalidError(`environment ${name}`, null, `must be a number, got "${v}"`);
    out[key] = n;
  }
  const checked = partialPolicy.safeParse(out);
  if (!checked.success) {
    const issue = checked.error.issues[0]!;
    throw new DataInvalidError(`environment METASPN_QUEUE_${String(issue.path[0]).toUpperCase()}`, null, issue.message);
  }
  return checked.data;
}

/** The effective policy of one queue, every layer applied. */
export function policyFor(cfg: WorkspaceConfig, queue: string, workerDefaults: PartialPolicy = {}, flags: PartialPolicy = {}): QueuePolicy {
  return resolvePolicy(workerDefaults, cfg.queues.defaults ?? {}, cfg.queues[queue] ?? {}, cfg.env, flags);
}

/** The line of a JSON.parse error, from the position V8 reports. */
function jsonErrorLine(text: string, err: unknown): number | null {
  const m = /position (\d+)/.exec((err as Error).message);
  if (!m) return null;
  return text.slice(0, Number(m[1])).split('\n').length;
}
