import { join } from 'node:path';
import { UsageError } from '../../guard/errors.js';
import { DeadLetterFiles } from '../../queue/file/deadletter-files.js';
import { writeAtomicSync } from '../../storage/atomic.js';
import { readLedger } from '../../storage/ledger.js';
import { readManifest } from '../../storage/manifest.js';
import { deadletterDir, type WorkspacePaths } from '../../storage/paths.js';
import { listRuns } from '../../storage/runs.js';
import { readAlertLog, readOpenAlerts } from '../alerts/state.js';
import { queueNamesOf, queueView } from '../workspace-view.js';
import { metaspnVersion } from './meta.js';

const DAY = 86_400_000;

export interface WeeklyRun {
  run_id: string;
  pipeline: string;
  date: string;
  started_at: string;
  duration_ms: number;
  status: string;
  exit_code: number;
  failure: string | null;
  tasks_completed: number;
}

export interface WeeklyReport {
  schema_version: 1;
  kind: 'weekly';
  status: 'ok' | 'insufficient_evidence';
  anchor_date: string;
  /** The 7 days ending on the anchor date (UTC): from inclusive, to exclusive. */
  window: { from: string; to: string };
  generated_at: string;
  version: string;
  workspace: string;
  evidence: { observed: { runs: number; tasks: number }; required: { runs: number; tasks: number } };
  runs: {
    total: number;
    by_status: Record<string, number>;
    by_exit_code: Record<string, number>;
    success_rate: number | null;
    duration_ms: { p50: number | null; p95: number | null; max: number | null };
    list: WeeklyRun[];
  };
  throughput: { tasks_completed: number; run_hours: number; tasks_per_run_hour: number | null; by_day: Record<string, number>; by_step: Record<string, number> };
  dead_letters: { in_runs: number; new_by_worker: Record<string, number>; waiting_now: Record<string, number> };
  retries: { task_retries_in_runs: number; deadletter_retries: number; deadletter_tasks_retried: number };
  guardrail_pauses: { at: string; worker: string; reason: string }[];
  alerts: { opened: number; sent: number; delivery_failed: number; opened_by_rule: Record<string, number>; open_now: number };
}

export function checkDate(d: string, flag: string): string {
  const t = Date.parse(`${d}T00:00:00Z`);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(d) || !Number.isFinite(t) || new Date(t).toISOString().slice(0, 10) !== d) {
    throw new UsageError(`${flag} must be a date YYYY-MM-DD, got "${d}"`);
  }
  return d;
}

function quantile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

const inc = (o: Record<string, number>, k: string, n = 1): void => {
  o[k] = (o[k] ?? 0) + n;
};

/**
 * The week ending on `anchor` (7 UTC days, the anchor included), from the files the CLI writes:
 * run manifests (runs, exit codes, tasks completed and retried), dead-letter files, the ledger
 * (dead-letter retries, guardrail pauses) and the alert log. Runs count by their start time.
 */
export function weeklyReport(ws: WorkspacePaths, o: { anchor: string; minRuns: number; minTasks: number; now?: number }): WeeklyReport {
  const now = o.now ?? Date.now();
  const toMs = Date.parse(`${o.anchor}T00:00:00Z`) + DAY;
  const fromMs = toMs - 7 * DAY;
  const inWeek = (iso: string | null | undefined): boolean => {
    const t = iso ? Date.parse(iso) : NaN;
    return t >= fromMs && t < toMs;
  };

  const by_day: Record<string, number> = {};
  const by_step: Record<string, number> = {};
  let deadInRuns = 0;
  let retriesInRuns = 0;
  const list: WeeklyRun[] = [];
  for (const r of listRuns(ws).filter((x) => inWeek(x.started_at))) {
    let completed = 0;
    for (const st of r.steps) {
      const m = readManifest(st.manifest);
      if (!m) continue;
      completed += m.tasks.completed;
      deadInRuns += m.tasks.dead;
      retriesInRuns += m.tasks.retried;
      inc(by_step, st.step, m.tasks.completed);
    }
    inc(by_day, r.started_at.slice(0, 10), completed);
    list.push({ run_id: r.run_id, pipeline: r.pipeline, date: r.date, started_at: r.started_at, duration_ms: r.duration_ms, status: r.status, exit_code: r.exit_code, failure: r.failure, tasks_completed: completed });
  }
  list.sort((a, b) => (a.started_at < b.started_at ? -1 : a.started_at > b.started_at ? 1 : 0));
  const by_status: Record<string, number> = {};
  const by_exit_code: Record<string, number> = {};
  for (const r of list) {
    inc(by_status, r.status);
    inc(by_exit_code, String(r.exit_code));
  }
  const durations = list.map((r) => r.duration_ms).sort((a, b) => a - b);
  const tasks = list.reduce((a, r) => a + r.tasks_completed, 0);
  const runHours = durations.reduce((a, d) => a + d, 0) / 3_600_000;

  const new_by_worker: Record<string, number> = {};
  const waiting_now: Record<string, number> = {};
  for (const q of queueNamesOf(ws)) {
    const fresh = new DeadLetterFiles(deadletterDir(ws, q)).list().filter((d) => inWeek(d.dead_at)).length;
    if (fresh) new_by_worker[q] = fresh;
    try {
      const dead = queueView(ws, q, now).dead;
      if (dead) waiting_now[q] = dead;
    } catch {
      // an unreadable queue: `metaspn doctor` reports it; the report goes on without it
    }
  }

  let dlRetries = 0;
  let dlTasks = 0;
  const guardrail_pauses: WeeklyReport['guardrail_pauses'] = [];
  for (const e of readLedger(ws).entries) {
    if (!inWeek(e.at)) continue;
    if (e.kind === 'deadletter_retry') {
      dlRetries++;
      dlTasks += Array.isArray(e.detail.ids) ? e.detail.ids.length : 0;
    } else if (e.kind === 'queue_paused_guardrail') {
      guardrail_pauses.push({ at: e.at, worker: String(e.detail.worker ?? ''), reason: String(e.detail.reason ?? '') });
    }
  }

  const opened_by_rule: Record<string, number> = {};
  let opened = 0;
  let sent = 0;
  let failed = 0;
  for (const l of readAlertLog(ws)) {
    if (!inWeek(l.at)) continue;
    if (l.event === 'opened') {
      opened++;
      inc(opened_by_rule, l.rule);
    } else if (l.event === 'sent') sent++;
    else if (l.event === 'delivery_failed') failed++;
  }

  const enough = list.length >= o.minRuns && tasks >= o.minTasks;
  return {
    schema_version: 1,
    kind: 'weekly',
    status: enough ? 'ok' : 'insufficient_evidence',
    anchor_date: o.anchor,
    window: { from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString() },
    generated_at: new Date(now).toISOString(),
    version: metaspnVersion(),
    workspace: ws.root,
    evidence: { observed: { runs: list.length, tasks }, required: { runs: o.minRuns, tasks: o.minTasks } },
    runs: {
      total: list.length,
      by_status,
      by_exit_code,
      success_rate: list.length ? Number(((by_status.success ?? 0) / list.length).toFixed(4)) : null,
      duration_ms: { p50: quantile(durations, 0.5), p95: quantile(durations, 0.95), max: durations.length ? durations[durations.length - 1]! : null },
      list,
    },
    throughput: { tasks_completed: tasks, run_hours: Number(runHours.toFixed(4)), tasks_per_run_hour: runHours > 0 ? Math.round(tasks / runHours) : null, by_day, by_step },
    dead_letters: { in_runs: deadInRuns, new_by_worker, waiting_now },
    retries: { task_retries_in_runs: retriesInRuns, deadletter_retries: dlRetries, deadletter_tasks_retried: dlTasks },
    guardrail_pauses,
    alerts: { opened, sent, delivery_failed: failed, opened_by_rule, open_now: readOpenAlerts(ws).open.length },
  };
}

const secs = (ms: number | null): string => (ms === null ? 'n/a' : `${(ms / 1000).toFixed(1)}s`);
const kv = (o: Record<string, number>): string =>
  Object.keys(o).length
    ? Object.entries(o)
        .map(([k, v]) => `${k}: ${v}`)
        .join(', ')
    : 'none';
const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** The report as publish-ready Markdown. */
export function weeklyMarkdown(r: WeeklyReport): string {
  const from = r.window.from.slice(0, 10);
  const L: string[] = [];
  L.push(`# metaspn weekly report: week ending ${r.anchor_date}`, '');
  L.push(`Window ${from} to ${r.anchor_date} (UTC, 7 days). Generated ${r.generated_at} by metaspn ${r.version}. Status: **${r.status}**.`, '');
  if (r.status === 'insufficient_evidence') {
    L.push(`Not enough evidence for a report: ${r.evidence.observed.runs} run(s) of ${r.evidence.required.runs} required, ${r.evidence.observed.tasks} task(s) completed of ${r.evidence.required.tasks} required.`, '');
  }
  L.push('## Runs', '');
  L.push('| measure | value |', '|---|---|');
  L.push(`| runs | ${r.runs.total} |`);
  L.push(`| by status | ${kv(r.runs.by_status)} |`);
  L.push(`| by exit code | ${kv(r.runs.by_exit_code)} |`);
  L.push(`| success rate | ${r.runs.success_rate === null ? 'n/a' : `${(r.runs.success_rate * 100).toFixed(1)}%`} |`);
  L.push(`| duration p50 / p95 / max | ${secs(r.runs.duration_ms.p50)} / ${secs(r.runs.duration_ms.p95)} / ${secs(r.runs.duration_ms.max)} |`, '');
  if (r.runs.list.length) {
    L.push('| run | pipeline | date | started | duration | status | exit | tasks |', '|---|---|---|---|---|---|---|---|');
    for (const x of r.runs.list) L.push(`| ${x.run_id} | ${x.pipeline} | ${x.date} | ${x.started_at} | ${secs(x.duration_ms)} | ${x.status}${x.failure ? `: ${cell(x.failure)}` : ''} | ${x.exit_code} | ${x.tasks_completed} |`);
    L.push('');
  }
  L.push('## Throughput', '');
  L.push(`${r.throughput.tasks_completed} task(s) completed in ${secs(r.throughput.run_hours * 3_600_000)} of run time${r.throughput.tasks_per_run_hour === null ? '' : ` (${r.throughput.tasks_per_run_hour} per hour of run time)`}.`, '');
  L.push(`- by day: ${kv(r.throughput.by_day)}`, `- by step: ${kv(r.throughput.by_step)}`, '');
  L.push('## Dead letters and retries', '');
  L.push(`- dead-lettered during the week's runs: ${r.dead_letters.in_runs}`);
  L.push(`- dead letters from this week still waiting, by worker: ${kv(r.dead_letters.new_by_worker)}`);
  L.push(`- waiting now, by worker: ${kv(r.dead_letters.waiting_now)}`);
  L.push(`- task retries during runs: ${r.retries.task_retries_in_runs}`);
  L.push(`- dead-letter retries by operators: ${r.retries.deadletter_retries} (${r.retries.deadletter_tasks_retried} task(s))`);
  L.push(`- guardrail pauses: ${r.guardrail_pauses.length ? r.guardrail_pauses.map((g) => `${g.worker} at ${g.at} (${cell(g.reason)})`).join('; ') : 'none'}`, '');
  L.push('## Alerts', '');
  L.push(`- opened: ${r.alerts.opened} (${kv(r.alerts.opened_by_rule)})`, `- sent: ${r.alerts.sent}, not delivered: ${r.alerts.delivery_failed}`, `- open now: ${r.alerts.open_now}`, '');
  return `${L.join('\n')}`;
}

/** reports/weekly/weekly-<anchor>.json and .md (replaced when the same week is reported again). */
export function writeWeekly(ws: WorkspacePaths, r: WeeklyReport): { json: string; markdown: string } {
  const dir = join(ws.root, 'reports', 'weekly');
  const json = join(dir, `weekly-${r.anchor_date}.json`);
  const markdown = join(dir, `weekly-${r.anchor_date}.md`);
  writeAtomicSync(json, `${JSON.stringify(r, null, 2)}\n`);
  writeAtomicSync(markdown, weeklyMarkdown(r));
  return { json, markdown };
}
