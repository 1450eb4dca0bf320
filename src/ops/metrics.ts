import { Counter, Gauge, Registry } from 'prom-client';
import { readLockStatus } from '../guard/run-lock.js';
import type { WorkspacePaths } from '../storage/paths.js';
import { listRuns } from '../storage/runs.js';
import { queueNamesOf, queueView } from './workspace-view.js';

/**
 * Prometheus metrics of a workspace, computed at each scrape from the same files the CLI reads
 * (nothing is kept in the server, so a restart loses nothing and cron runs are counted too).
 */
export function metricsRegistry(ws: WorkspacePaths): Registry {
  const registry = new Registry();
  const views = () => queueNamesOf(ws).map((n) => queueView(ws, n));
  const counter = (name: string, help: string, pick: (v: ReturnType<typeof queueView>) => number): void => {
    new Counter({
      name,
      help,
      labelNames: ['worker'],
      registers: [registry],
      collect() {
        this.reset();
        for (const v of views()) this.inc({ worker: v.queue }, pick(v));
      },
    });
  };
  counter('metaspn_tasks_completed_total', 'Tasks completed, since the queue was created.', (v) => v.completed);
  counter('metaspn_tasks_failed_total', 'Failed attempts (retried or not).', (v) => v.totals.failed);
  counter('metaspn_tasks_retried_total', 'Dead letters moved back to ready by queue retry.', (v) => v.totals.retried);
  counter('metaspn_tasks_dead_lettered_total', 'Tasks that reached the dead letters.', (v) => v.totals.dead_lettered);
  const gauge = (name: string, help: string, pick: (v: ReturnType<typeof queueView>) => number): void => {
    new Gauge({
      name,
      help,
      labelNames: ['worker'],
      registers: [registry],
      collect() {
        this.reset();
        for (const v of views()) this.set({ worker: v.queue }, pick(v));
      },
    });
  };
  gauge('metaspn_queue_ready', 'Tasks ready to run.', (v) => v.ready);
  gauge('metaspn_queue_leased', 'Tasks held by a worker.', (v) => v.leased);
  gauge('metaspn_queue_scheduled', 'Tasks waiting for a retry.', (v) => v.scheduled);
  gauge('metaspn_queue_dead', 'Tasks in the dead letters.', (v) => v.dead);
  gauge('metaspn_queue_paused', '1 when the queue is paused.', (v) => (v.paused ? 1 : 0));
  gauge('metaspn_queue_oldest_ready_age_seconds', 'How long the oldest ready task has waited.', (v) => v.oldest_ready_age_s ?? 0);
  new Gauge({
    name: 'metaspn_last_run_info',
    help: 'The latest run of each pipeline: exit code, duration in seconds, success (1/0), start time.',
    labelNames: ['pipeline', 'field'],
    registers: [registry],
    collect() {
      this.reset();
      const seen = new Set<string>();
      for (const r of listRuns(ws)) {
        if (seen.has(r.pipeline)) continue;
        seen.add(r.pipeline);
        this.set({ pipeline: r.pipeline, field: 'exit_code' }, r.exit_code);
        this.set({ pipeline: r.pipeline, field: 'duration_seconds' }, r.duration_ms / 1000);
        this.set({ pipeline: r.pipeline, field: 'success' }, r.status === 'success' ? 1 : 0);
        this.set({ pipeline: r.pipeline, field: 'started_timestamp_seconds' }, Date.parse(r.started_at) / 1000);
      }
    },
  });
  new Gauge({
    name: 'metaspn_lock_held',
    help: '1 while a run holds the lock.',
    labelNames: ['lock'],
    registers: [registry],
    collect() {
      this.reset();
      this.set({ lock: 's1' }, readLockStatus(ws.locks, 's1').held ? 1 : 0);
    },
  });
  return registry;
}
