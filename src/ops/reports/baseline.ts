import { join } from 'node:path';
import { policyFor, type WorkspaceConfig } from '../../config/load.js';
import type { QueuePolicy } from '../../config/policy.js';
import { readLockStatus } from '../../storage/run-lock.js';
import { writeAtomicSync } from '../../storage/atomic.js';
import { readManifest } from '../../storage/manifest.js';
import type { WorkspacePaths } from '../../storage/paths.js';
import { listRuns } from '../../storage/runs.js';
import type { AlertSettings } from '../../config/alerts.js';
import { RUN_OK_CODES } from '../alerts/rules.js';
import { readOpenAlerts } from '../alerts/state.js';
import type { OpsSettings } from '../settings.js';
import { queueNamesOf, queueView, type QueueView } from '../workspace-view.js';
import { compactTs, metaspnVersion } from './meta.js';

export interface Baseline {
  schema_version: 1;
  kind: 'baseline';
  captured_at: string;
  version: string;
  workspace: string;
  queues: Record<string, (QueueView & { failure_ratio: number | null }) | { error: string }>;
  rates: {
    /** The latest runs the rates are computed over. */
    runs_considered: number;
    window: { from: string | null; to: string | null };
    tasks_completed: number;
    run_seconds: number;
    tasks_per_hour: number | null;
    success_rate: number | null;
    /** Runs whose exit code is an incident (not 0, 10 or 11). */
    incident_rate: number | null;
    by_exit_code: Record<string, number>;
    duration_ms: { mean: number | null; max: number | null };
  };
  thresholds: {
    policy: Record<string, QueuePolicy>;
    guardrails: WorkspaceConfig['guardrails'];
    alerts: Omit<AlertSettings, 'webhookUrl' | 'signingSecret' | 'cooldownMs'> & { webhook: boolean; signed: boolean };
    reports: WorkspaceConfig['reports'];
    ops: { env: string; write_enabled: boolean; allowlist: string; signing: boolean; signature_tolerance_s: number } | null;
  };
  lock: { held: boolean; holder_pid: number | null; since: string | null };
  open_alerts: number;
}

/**
 * A snapshot to compare before and after a change: every queue's stats with its failure ratio
 * since the queue was created, rates over the latest runs (tasks completed per hour of run time,
 * success), and every threshold in effect (queue policies, guardrails, alert and report settings,
 * the ops write settings). Secrets are never written, only whether they are set.
 */
export function captureBaseline(ws: WorkspacePaths, cfg: WorkspaceConfig, o: { alerts: AlertSettings; ops: OpsSettings | null; runs: number; now?: number }): Baseline {
  const now = o.now ?? Date.now();
  const queues: Baseline['queues'] = {};
  const policy: Record<string, QueuePolicy> = {};
  for (const q of queueNamesOf(ws)) {
    policy[q] = policyFor(cfg, q);
    try {
      const v = queueView(ws, q, now);
      const attempts = v.totals.failed + v.completed;
      queues[q] = { ...v, failure_ratio: attempts > 0 ? Number((v.totals.failed / attempts).toFixed(4)) : null };
    } catch (err) {
      queues[q] = { error: (err as Error).message };
    }
  }

  const runs = listRuns(ws).slice(0, o.runs);
  let completed = 0;
  for (const r of runs) for (const st of r.steps) completed += readManifest(st.manifest)?.tasks.completed ?? 0;
  const ms = runs.reduce((a, r) => a + Math.max(0, r.duration_ms), 0);
  const by_exit_code: Record<string, number> = {};
  for (const r of runs) by_exit_code[String(r.exit_code)] = (by_exit_code[String(r.exit_code)] ?? 0) + 1;
  const ratio = (n: number): number | null => (runs.length ? Number((n / runs.length).toFixed(4)) : null);

  const { webhookUrl, signingSecret, cooldownMs: _c, ...alertThresholds } = o.alerts;
  const lock = readLockStatus(ws.locks, 's1');
  return {
    schema_version: 1,
    kind: 'baseline',
    captured_at: new Date(now).toISOString(),
    version: metaspnVersion(),
    workspace: ws.root,
    queues,
    rates: {
      runs_considered: runs.length,
      window: { from: runs.length ? runs[runs.length - 1]!.started_at : null, to: runs.length ? runs[0]!.finished_at : null },
      tasks_completed: completed,
      run_seconds: Number((ms / 1000).toFixed(3)),
      tasks_per_hour: ms > 0 ? Math.round(completed / (ms / 3_600_000)) : null,
      success_rate: ratio(runs.filter((r) => r.status === 'success').length),
      incident_rate: ratio(runs.filter((r) => !RUN_OK_CODES.includes(r.exit_code)).length),
      by_exit_code,
      duration_ms: { mean: runs.length ? Math.round(ms / runs.length) : null, max: runs.length ? Math.max(...runs.map((r) => r.duration_ms)) : null },
    },
    thresholds: {
      policy,
      guardrails: cfg.guardrails,
      alerts: { ...alertThresholds, webhook: webhookUrl !== null, signed: signingSecret !== null },
      reports: cfg.reports,
      ops: o.ops ? { env: o.ops.env, write_enabled: o.ops.writeEnabled, allowlist: o.ops.allowText, signing: o.ops.signingSecret !== null, signature_tolerance_s: o.ops.toleranceSec } : null,
    },
    lock: { held: lock.held, holder_pid: lock.held ? (lock.payload?.pid ?? null) : null, since: lock.held ? (lock.payload?.start_ts_utc ?? null) : null },
    open_alerts: readOpenAlerts(ws).open.length,
  };
}

/** reports/baseline/baseline-<ts>.json, and the same content as baseline_latest.json. */
export function writeBaseline(ws: WorkspacePaths, b: Baseline): { file: string; latest: string } {
  const dir = join(ws.root, 'reports', 'baseline');
  const file = join(dir, `baseline-${compactTs(Date.parse(b.captured_at))}.json`);
  const latest = join(dir, 'baseline_latest.json');
  const text = `${JSON.stringify(b, null, 2)}\n`;
  writeAtomicSync(file, text);
  writeAtomicSync(latest, text);
  return { file, latest };
}
