import type { RunInfo } from '../../storage/runs.js';
import type { QueueView } from '../workspace-view.js';
import type { AlertsConfig, RuleName } from '../../config/alerts.js';

export type Severity = 'warning' | 'critical';

/** An alert a rule raised at this check. Identical alerts share a fingerprint (rule and subject). */
export interface AlertCandidate {
  fingerprint: string;
  rule: RuleName;
  /** What it is about: a worker (queue) or a pipeline. */
  subject: string;
  severity: Severity;
  message: string;
  details: Record<string, unknown>;
}

/** One reading of a queue's cumulative counters, for the trailing failure ratio. */
export interface Sample {
  at: number;
  completed: number;
  failed: number;
}

/** What the rules remember of a worker between checks. */
export interface WorkerMemory {
  dead_lettered: number;
  dead: number;
  samples: Sample[];
}

/** The workspace as one check sees it. */
export interface Observation {
  now: number;
  queues: QueueView[];
  /** The latest run of each pipeline. */
  latestRuns: RunInfo[];
  /** The latest `queue_paused_guardrail` ledger entry of each worker. */
  guardrailPauses: Map<string, { seq: number; at: string; reason: string }>;
}

/** Exit codes of a run that are no incident (docs/EXIT-CODES.md): done, nothing to do, try later. */
export const RUN_OK_CODES: readonly number[] = [0, 10, 11];

/**
 * The rules, pure: the alerts open at `obs.now` given what the previous check remembered, and what
 * to remember for the next one.
 * - dead_letters_grew: a worker's dead letters grew since the last check (on the first check: it has
 *   any). It stays open while that worker has dead letters, and closes once none are left (retried or discarded).
 * - run_failed: a pipeline's latest run ended with an exit code other than 0, 10 or 11 (60: halted).
 * - worker_halted: the worker's stop condition paused its queue (`queue_paused_guardrail`) and the
 *   queue is still paused.
 * - oldest_ready_age: the oldest ready task of a worker has waited longer than the threshold.
 * - failure_ratio: failed attempts / (failed attempts + completions) over the trailing window, from
 *   the queue totals read at each check, is above the threshold (with at least the minimum attempts).
 */
export function evaluate(
  obs: Observation,
  prev: { workers: Record<string, WorkerMemory>; open: ReadonlySet<string> },
  t: AlertsConfig,
): { alerts: AlertCandidate[]; workers: Record<string, WorkerMemory> } {
  const alerts: AlertCandidate[] = [];
  const workers: Record<string, WorkerMemory> = {};
  const on = (r: RuleName): boolean => !t.disabled.includes(r);
  const add = (rule: RuleName, subject: string, severity: Severity, message: string, details: Record<string, unknown>, key = subject): void => {
    if (on(rule)) alerts.push({ fingerprint: `${rule}:${key}`, rule, subject, severity, message, details });
  };
  const windowMs = t.failure_window_minutes * 60_000;

  for (const v of obs.queues) {
    const mem = prev.workers[v.queue];
    const grew = mem ? Math.max(0, v.totals.dead_lettered - mem.dead_lettered) : v.dead;
    if (v.dead > 0 && (grew > 0 || prev.open.has(`dead_letters_grew:${v.queue}`))) {
      const msg = grew > 0 ? `${v.queue}: ${grew} new dead letter(s) since the last check, ${v.dead} waiting` : `${v.queue}: ${v.dead} dead letter(s) waiting for a retry`;
      add('dead_letters_grew', v.queue, 'warning', msg, { dead: v.dead, new_since_last_check: grew, dead_lettered_total: v.totals.dead_lettered });
    }

    const maxS = t.oldest_ready_max_minutes * 60;
    if (v.oldest_ready_age_s !== null && v.oldest_ready_age_s > maxS) {
      add('oldest_ready_age', v.queue, 'warning', `${v.queue}: the oldest ready task has waited ${span(v.oldest_ready_age_s * 1000)} (threshold ${t.oldest_ready_max_minutes} min)${v.paused ? '; the queue is paused' : ''}`, {
        oldest_ready_age_s: Math.round(v.oldest_ready_age_s),
        threshold_s: maxS,
        ready: v.ready,
        paused: v.paused,
      });
    }

    const now: Sample = { at: obs.now, completed: v.completed, failed: v.totals.failed };
    const past = (mem?.samples ?? []).filter((s) => s.at < obs.now && s.completed <= now.completed && s.failed <= now.failed);
    // The window's start: the newest reading at or before now - window, else the oldest there is.
    const base = [...past].reverse().find((s) => s.at <= obs.now - windowMs) ?? past[0];
    if (base) {
      const failed = now.failed - base.failed;
      const attempts = failed + (now.completed - base.completed);
      const ratio = attempts > 0 ? failed / attempts : 0;
      if (attempts >= t.failure_min_attempts && ratio > t.failure_ratio_max) {
        add('failure_ratio', v.queue, 'critical', `${v.queue}: ${failed} of ${attempts} attempts failed in the last ${span(obs.now - base.at)} (ratio ${ratio.toFixed(2)} > ${t.failure_ratio_max})`, {
          failed,
          attempts,
          ratio: Number(ratio.toFixed(4)),
          threshold: t.failure_ratio_max,
          window_s: Math.round((obs.now - base.at) / 1000),
        });
      }
    }
    // Keep the readings inside the window and the newest one before it (the next base).
    const keep = past.filter((s) => s.at > obs.now - 2 * windowMs);
    const before = [...past].reverse().find((s) => s.at <= obs.now - windowMs);
    const samples = [...(before && !keep.includes(before) ? [before] : []), ...keep, now].slice(-500);
    workers[v.queue] = { dead_lettered: v.totals.dead_lettered, dead: v.dead, samples };

    const pause = obs.guardrailPauses.get(v.queue);
    if (pause && v.paused) {
      add('worker_halted', v.queue, 'critical', `${v.queue}: the stop condition paused the queue at ${pause.at}: ${pause.reason}`, { paused_at: pause.at, reason: pause.reason, ledger_seq: pause.seq }, `${v.queue}:${pause.seq}`);
    }
  }

  for (const r of obs.latestRuns) {
    if (RUN_OK_CODES.includes(r.exit_code)) continue;
    const what = r.exit_code === 60 ? 'was halted by a guardrail' : 'failed';
    add('run_failed', r.pipeline, 'critical', `${r.pipeline} run ${r.run_id} (date ${r.date}) ${what}: exit ${r.exit_code}${r.failure ? ` (${r.failure})` : ''}`, {
      run_id: r.run_id,
      date: r.date,
      exit_code: r.exit_code,
      status: r.status,
      failure: r.failure,
      started_at: r.started_at,
      duration_ms: r.duration_ms,
    }, `${r.pipeline}:${r.run_id}`);
  }
  return { alerts, workers };
}

function span(ms: number): string {
  return ms < 120_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 60_000)} min`;
}

/** The latest run of each pipeline, from a list sorted newest first (listRuns). */
export function latestPerPipeline(runs: readonly RunInfo[]): RunInfo[] {
  const seen = new Map<string, RunInfo>();
  for (const r of runs) if (!seen.has(r.pipeline)) seen.set(r.pipeline, r);
  return [...seen.values()];
}
