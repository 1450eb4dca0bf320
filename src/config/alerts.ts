import * as z from '../zod.js';
import { checkLimit, envNumber, type LimitKey } from './limits.js';
import { MetaspnError, UsageError } from '../guard/errors.js';

/** `json`: metaspn's event (with a one-line `text` too); the others: what each chat tool accepts. */
export const WEBHOOK_FORMATS = ['json', 'slack', 'teams', 'discord'] as const;
export type WebhookFormat = (typeof WEBHOOK_FORMATS)[number];

export const RULE_NAMES = ['dead_letters_grew', 'run_failed', 'worker_halted', 'oldest_ready_age', 'failure_ratio'] as const;
export type RuleName = (typeof RULE_NAMES)[number];

/**
 * The `alerts` section of metaspn.config.json. Defaults follow the operators' runbook (seed 004):
 * failed-event ratio above 0.10 over 10 minutes, and a queue that waits longer than 30 minutes.
 */
export const alertsConfigSchema = z
  .object({
    /** A ready task older than this opens `oldest_ready_age`. Default 30. */
    oldest_ready_max_minutes: z.number().gt(0).default(30),
    /** Failed attempts / (failed attempts + completions) over the trailing window above this opens `failure_ratio`. Default 0.10. */
    failure_ratio_max: z.number().gt(0).max(1).default(0.1),
    /** The trailing window of `failure_ratio`, in minutes. Default 10. */
    failure_window_minutes: z.number().gt(0).default(10),
    /** Fewer attempts than this in the window never open `failure_ratio` (no alert on 1 failure of 2). Default 20. */
    failure_min_attempts: z.number().int().min(1).default(20),
    /** An open alert is sent again after this many minutes (METASPN_ALERT_COOLDOWN_MINUTES wins). Default 60. */
    cooldown_minutes: z.number().min(0).default(60),
    /** Rules that never open an alert. */
    disabled: z.array(z.enum(RULE_NAMES)).default([]),
    /** The body the webhook gets: metaspn's JSON event, or a Slack, Teams or Discord message (METASPN_ALERT_WEBHOOK_FORMAT wins). Default json. */
    webhook_format: z.enum(WEBHOOK_FORMATS).default('json'),
  })
  .strict();

export type AlertsConfig = z.output<typeof alertsConfigSchema>;

export const ALERTS_DEFAULTS: AlertsConfig = alertsConfigSchema.parse({});

/** What a check runs with: the config's thresholds and the environment's delivery settings. */
export interface AlertSettings extends AlertsConfig {
  cooldownMs: number;
  /** METASPN_ALERT_WEBHOOK_URL, or null: alerts are kept and shown but not sent. */
  webhookUrl: string | null;
  /** METASPN_SIGNING_SECRET: signs each delivery (Standard Webhooks headers, and metaspn's own). */
  signingSecret: string | null;
  /** METASPN_ALERT_TIMEOUT_MS: one delivery gives up after this. Default 5000. */
  timeoutMs: number;
}

/** The `alerts` config with the environment's overrides (METASPN_ALERT_COOLDOWN_MINUTES, METASPN_ALERT_WEBHOOK_FORMAT) applied, and the delivery settings. */
export function alertSettings(cfg: AlertsConfig, env: NodeJS.ProcessEnv = process.env): AlertSettings {
  const url = env.METASPN_ALERT_WEBHOOK_URL?.trim() || null;
  if (url !== null) {
    let ok = false;
    try {
      ok = ['http:', 'https:'].includes(new URL(url).protocol);
    } catch {
      ok = false;
    }
    if (!ok) throw new UsageError(`METASPN_ALERT_WEBHOOK_URL must be an http(s) URL, got "${url}"`);
  }
  let cooldown = cfg.cooldown_minutes;
  const rawCooldown = env.METASPN_ALERT_COOLDOWN_MINUTES;
  if (rawCooldown !== undefined && rawCooldown !== '') {
    cooldown = envNumber(rawCooldown);
    envInRange('METASPN_ALERT_COOLDOWN_MINUTES', 'alerts.cooldown_minutes', cooldown, rawCooldown);
  }
  let webhookFormat: WebhookFormat = cfg.webhook_format;
  const rawFormat = env.METASPN_ALERT_WEBHOOK_FORMAT?.trim();
  if (rawFormat) {
    if (!(WEBHOOK_FORMATS as readonly string[]).includes(rawFormat)) throw new UsageError(`METASPN_ALERT_WEBHOOK_FORMAT must be one of ${WEBHOOK_FORMATS.join(', ')}, got "${rawFormat.slice(0, 40)}"`);
    webhookFormat = rawFormat as WebhookFormat;
  }
  const timeoutMs = env.METASPN_ALERT_TIMEOUT_MS ? envNumber(env.METASPN_ALERT_TIMEOUT_MS) : 5000;
  envInRange('METASPN_ALERT_TIMEOUT_MS', 'alert_timeout_ms', timeoutMs, env.METASPN_ALERT_TIMEOUT_MS);
  return { ...cfg, webhook_format: webhookFormat, cooldown_minutes: cooldown, cooldownMs: cooldown * 60_000, webhookUrl: url, signingSecret: env.METASPN_SIGNING_SECRET || null, timeoutMs };
}

/** An environment variable outside its range (src/config/limits.ts) is refused like every METASPN_* variable: exit 20. */
export function envInRange(name: string, key: LimitKey, value: number, raw: string | undefined): void {
  const bad = checkLimit(key, value);
  if (bad) throw new MetaspnError('DATA_INVALID', `environment ${name}: ${bad}, got "${raw ?? ''}"`);
}
