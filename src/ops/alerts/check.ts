import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join, relative } from 'node:path';
import type { Logger } from 'pino';
import { readLedger } from '../../storage/ledger.js';
import { Mutex } from '../../storage/mutex.js';
import type { WorkspacePaths } from '../../storage/paths.js';
import { quarantineFile, StateFileError } from '../../storage/state-file.js';
import { compactTs, metaspnVersion } from '../reports/meta.js';
import { fileSource, type OpsSource } from '../source.js';
import type { QueueView } from '../workspace-view.js';
import type { AlertSettings } from '../../config/alerts.js';
import { deliver } from './delivery.js';
import { alertBody } from './format.js';
import { evaluate, latestPerPipeline, type AlertCandidate, type Observation } from './rules.js';
import { appendAlertLog, emptyState, readAlertState, sortAlerts, toOpenAlert, writeAlertState, type AlertLogLine, type AlertRecord, type AlertState, type OpenAlert } from './state.js';

export interface CheckResult {
  checked_at: string;
  open: OpenAlert[];
  /** Fingerprints that closed at this check. */
  resolved: string[];
  sent: { fingerprint: string; event_id: string }[];
  /** Deliveries that failed: kept pending and retried at the next check. */
  failed: { fingerprint: string; event_id: string; attempts: number; error: string }[];
  /** Open alerts not sent at this check because one was sent within the cooldown. */
  cooling: string[];
  webhook: 'configured' | 'not_configured';
  /** Queues that could not be read (skipped by the rules at this check). */
  unreadable: { queue: string; error: string }[];
  /** The state file did not read back: it was moved to quarantine/ and this check started afresh. */
  state_reset: { path: string; error: string; moved_to: string } | null;
}

/**
 * The workspace as the rules see it: queue views, the latest run of each pipeline (from `source`:
 * the files, or the database), guardrail pauses (the workspace's ledger, where workers record them).
 * @throws the backend's error when it cannot list its queues (a database that does not answer: 11).
 */
export async function observe(ws: WorkspacePaths, now: number, source: OpsSource = fileSource(ws)): Promise<{ obs: Observation; unreadable: CheckResult['unreadable'] }> {
  const queues: QueueView[] = [];
  const unreadable: CheckResult['unreadable'] = [];
  for (const name of await source.queueNames()) {
    try {
      queues.push(await source.queueView(name, now));
    } catch (err) {
      unreadable.push({ queue: name, error: (err as Error).message });
    }
  }
  const guardrailPauses: Observation['guardrailPauses'] = new Map();
  for (const e of readLedger(ws).entries) {
    if (e.kind !== 'queue_paused_guardrail') continue;
    const worker = String(e.detail.worker ?? '');
    if (worker) guardrailPauses.set(worker, { seq: e.seq, at: e.at, reason: String(e.detail.reason ?? '') });
  }
  return { obs: { now, queues, latestRuns: latestPerPipeline((await source.runs()).runs), guardrailPauses }, unreadable };
}

/**
 * A new delivery's event id: `alert-<UTC second>-<12 hex of the fingerprint>-<8 random hex>`. The
 * random part makes two deliveries of one alert within a second (a cooldown of 0) distinct events,
 * which receivers that drop repeated event ids (Standard Webhooks) would otherwise merge. A
 * delivery retried after a failure keeps its id (it is kept in the pending state).
 */
export function eventIdFor(fingerprint: string, nowMs: number): string {
  return `alert-${compactTs(nowMs)}-${createHash('sha256').update(fingerprint).digest('hex').slice(0, 12)}-${randomBytes(4).toString('hex')}`;
}

export interface CheckOptions {
  now?: number;
  /** Where the queues and runs are read: default the workspace's files ({@link fileSource}); `pgSource` for a database. */
  source?: OpsSource;
  log?: Logger;
  version?: string;
}

/**
 * One alert check: evaluate the rules, update the state (ops/alerts-state.json, atomically), send
 * what is due and log what changed. An open alert is sent when it was never sent or its last
 * delivery is older than the cooldown; a failed delivery stays pending (same event id and body) and
 * is sent again at the next check, so no alert is lost to a webhook outage. One check at a time per
 * workspace (a mutex at ops/alerts.mutex), so cron and `serve` can both check.
 */
export async function checkAlerts(ws: WorkspacePaths, settings: AlertSettings, o: CheckOptions = {}): Promise<CheckResult> {
  const mutex = new Mutex(join(ws.root, 'ops', 'alerts.mutex'), 'the alert check');
  await mutex.acquire(60_000);
  try {
    return await checkLocked(ws, settings, o);
  } finally {
    mutex.close();
  }
}

async function checkLocked(ws: WorkspacePaths, settings: AlertSettings, o: CheckOptions): Promise<CheckResult> {
  const now = o.now ?? Date.now();
  const at = new Date(now).toISOString();
  let state: AlertState;
  let stateReset: CheckResult['state_reset'] = null;
  try {
    state = readAlertState(ws);
  } catch (err) {
    if (!(err instanceof StateFileError)) throw err;
    // The state only remembers (cooldowns, pending deliveries): alerting goes on without it, and
    // the damaged file is kept in quarantine/ for a look. Open alerts are sent again.
    const movedTo = quarantineFile(ws, err.path);
    stateReset = { path: relative(ws.root, err.path), error: err.message.slice(err.path.length + 2), moved_to: relative(ws.root, movedTo) };
    o.log?.warn({ event: 'alert_state_reset', ...stateReset }, `alert state ${stateReset.path} did not read back (${stateReset.error}); moved to ${stateReset.moved_to}, starting afresh`);
    state = emptyState();
  }
  const { obs, unreadable } = await observe(ws, now, o.source);
  const wasOpen = new Set(Object.values(state.alerts).filter((a) => a.open).map((a) => a.fingerprint));
  const { alerts, workers } = evaluate(obs, { workers: state.workers, open: wasOpen }, settings);
  // A queue that could not be read keeps its memory for the next check.
  for (const u of unreadable) if (state.workers[u.queue]) workers[u.queue] = state.workers[u.queue]!;
  const log: AlertLogLine[] = [];
  const line = (event: AlertLogLine['event'], r: AlertRecord, extra: Partial<AlertLogLine> = {}): void => {
    log.push({ at, event, fingerprint: r.fingerprint, rule: r.rule, subject: r.subject, severity: r.severity, ...extra });
  };

  const seen = new Set<string>();
  for (const c of alerts) {
    seen.add(c.fingerprint);
    const r = state.alerts[c.fingerprint];
    if (r && r.open) {
      Object.assign(r, { severity: c.severity, message: c.message, details: c.details, last_seen: at });
    } else {
      const fresh = openRecord(c, at, r);
      state.alerts[c.fingerprint] = fresh;
      line('opened', fresh, { message: c.message });
    }
  }
  const resolved: string[] = [];
  for (const r of Object.values(state.alerts)) {
    if (r.open && !seen.has(r.fingerprint) && !unreadable.some((u) => u.queue === r.subject)) {
      r.open = false;
      r.resolved_at = at;
      resolved.push(r.fingerprint);
      line('resolved', r);
    }
  }

  const result: CheckResult = { checked_at: at, open: [], resolved, sent: [], failed: [], cooling: [], webhook: settings.webhookUrl ? 'configured' : 'not_configured', unreadable, state_reset: stateReset };
  if (settings.webhookUrl) {
    for (const r of sortAlerts(Object.values(state.alerts))) {
      if (r.open && !r.pending) {
        const due = r.last_sent_at === null || now - Date.parse(r.last_sent_at) >= settings.cooldownMs;
        if (!due) {
          result.cooling.push(r.fingerprint);
          continue;
        }
        const event_id = eventIdFor(r.fingerprint, now);
        const body = alertBody(settings.webhook_format, {
          event_id,
          type: 'metaspn.alert',
          created_at: at,
          workspace: ws.root,
          host: hostname(),
          alert: { fingerprint: r.fingerprint, rule: r.rule, subject: r.subject, severity: r.severity, status: 'open', message: r.message, since: r.since, details: r.details },
        });
        r.pending = { event_id, body, first_attempt_at: at, attempts: 0, last_error: null };
      }
      const p = r.pending;
      if (!p) continue;
      const error = await deliver({ url: settings.webhookUrl, signingSecret: settings.signingSecret, timeoutMs: settings.timeoutMs, userAgent: `metaspn/${o.version ?? metaspnVersion()}` }, p.event_id, p.body, Date.now());
      p.attempts += 1;
      if (error === null) {
        r.last_sent_at = new Date().toISOString();
        r.last_event_id = p.event_id;
        r.pending = null;
        result.sent.push({ fingerprint: r.fingerprint, event_id: p.event_id });
        line('sent', r, { event_id: p.event_id });
        o.log?.info({ event: 'alert_sent', fingerprint: r.fingerprint, event_id: p.event_id, attempts: p.attempts }, `alert sent: ${r.message}`);
      } else {
        p.last_error = error;
        result.failed.push({ fingerprint: r.fingerprint, event_id: p.event_id, attempts: p.attempts, error });
        line('delivery_failed', r, { event_id: p.event_id, error });
        o.log?.warn({ event: 'alert_delivery_failed', fingerprint: r.fingerprint, event_id: p.event_id, attempts: p.attempts, error }, `alert not delivered (retried at the next check): ${error}`);
      }
    }
  }

  // Closed alerts are forgotten once their cooldown has passed and nothing is pending.
  for (const [fp, r] of Object.entries(state.alerts)) {
    const quiet = r.last_sent_at === null || now - Date.parse(r.last_sent_at) >= settings.cooldownMs;
    if (!r.open && !r.pending && quiet) delete state.alerts[fp];
  }
  state.workers = workers;
  state.checked_at = at;
  writeAlertState(ws, state);
  appendAlertLog(ws, log);
  result.open = sortAlerts(Object.values(state.alerts).filter((a) => a.open).map(toOpenAlert));
  o.log?.info({ event: 'alerts_checked', open: result.open.length, resolved: resolved.length, sent: result.sent.length, failed: result.failed.length }, 'alerts checked');
  return result;
}

/** A newly opened alert; the last delivery of an identical one (same fingerprint) still counts for the cooldown. */
function openRecord(c: AlertCandidate, at: string, prev: AlertRecord | undefined): AlertRecord {
  return {
    fingerprint: c.fingerprint,
    rule: c.rule,
    subject: c.subject,
    severity: c.severity,
    message: c.message,
    details: c.details,
    open: true,
    since: at,
    last_seen: at,
    resolved_at: null,
    last_sent_at: prev?.last_sent_at ?? null,
    last_event_id: prev?.last_event_id ?? null,
    pending: prev?.pending ?? null,
  };
}
