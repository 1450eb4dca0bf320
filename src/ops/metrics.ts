import { Counter, Gauge, Registry, type Metric } from 'prom-client';
import { loadConfig, type WorkspaceConfig } from '../config/load.js';
import { pipelineNames } from '../pipeline/registry.js';
import type { WorkspacePaths } from '../storage/paths.js';
import type { RunInfo } from '../storage/runs.js';
import type { StateFileProblem } from '../storage/state-file.js';
import { stateFileProblems } from './problems.js';
import { DURATION_BUCKETS_S, durationQueues, readDurations, type DurationFile } from '../storage/task-durations.js';
import { metaspnVersion } from './reports/meta.js';
import { fileSource, type OpsSource, type WorkerPresence } from './source.js';
import type { QueueView } from './workspace-view.js';

/**
 * Prometheus metrics of a workspace, computed at each scrape from the same state the CLI reads (the
 * files, or on PostgreSQL the database's counters, runs and locks; nothing is kept in the server, so
 * a restart loses nothing and cron runs are counted too).
 */
export interface WorkspaceMetrics {
  contentType: string;
  /** The Prometheus text of one scrape; every queue's stats are read once for it. */
  scrape(): Promise<string>;
}

/** What one scrape reads: each part read once, and what could not be read named, never thrown. */
interface Reading {
  views: QueueView[];
  unreadableQueues: string[];
  runs: RunInfo[];
  problems: StateFileProblem[];
  /** 1 while a run holds the pipeline's lock, by pipeline; a lock that cannot be read is left out. */
  lockHeld: Record<string, number>;
  /** Task-duration histograms by queue (a file that does not read back is left out). */
  durations: { queue: string; file: DurationFile }[];
  /** Worker presence (PostgreSQL), or null (files, or not readable at this scrape). */
  workers: WorkerPresence | null;
  /** 1 when the backend answered this scrape's first read (always 1 on files). */
  backendUp: number;
}

const EMPTY: Reading = { views: [], unreadableQueues: [], runs: [], problems: [], lockHeld: {}, durations: [], workers: null, backendUp: 1 };

const PROBLEM_KINDS: StateFileProblem['kind'][] = ['manifest', 'pointer', 'event', 'run_start', 'alert_state'];

async function read(ws: WorkspacePaths, source: OpsSource): Promise<Reading> {
  const views: QueueView[] = [];
  const unreadableQueues: string[] = [];
  let names: string[] = [];
  let backendUp = 1;
  try {
    names = await source.queueNames();
  } catch {
    // The database does not answer: metaspn_backend_up says so, and the queues are left out.
    backendUp = 0;
  }
  const got = await Promise.allSettled(names.map((n) => source.queueView(n)));
  got.forEach((g, i) => {
    if (g.status === 'fulfilled') views.push(g.value);
    else unreadableQueues.push(names[i]!);
  });
  let runs: RunInfo[] = [];
  let problems: StateFileProblem[] = [];
  try {
    const r = await source.runs();
    runs = r.runs;
    problems = stateFileProblems(ws, r.problems);
  } catch (err) {
    problems = [{ path: 'manifests', kind: 'manifest', error: (err as Error).message }];
  }
  const lockHeld: Record<string, number> = {};
  let cfg: WorkspaceConfig | null = null;
  try {
    cfg = loadConfig(ws);
  } catch {
    // A config that does not load: the bundled pipelines' locks are still reported.
  }
  for (const name of pipelineNames(cfg)) {
    try {
      lockHeld[name] = (await source.lockStatus(name)).held ? 1 : 0;
    } catch {
      // Left out: a lock file that cannot be read is reported by doctor and /health/test.
    }
  }
  const durations: Reading['durations'] = [];
  for (const queue of durationQueues(ws)) {
    try {
      const file = readDurations(ws, queue);
      if (file) durations.push({ queue, file });
    } catch {
      // Statistics: a damaged file is rewritten by the next worker run.
    }
  }
  let workers: WorkerPresence | null = null;
  try {
    workers = await source.workers();
  } catch {
    // Left out of this scrape (the queues' metrics say whether the database answers).
  }
  return { views, unreadableQueues, runs, problems, lockHeld, durations, workers, backendUp };
}

/**
 * metaspn_task_duration_seconds{worker, outcome}: how long attempts whose handler ran to an end took
 * (outcome `completed` or `failed`), from the histograms the worker processes keep under
 * ops/task-durations/ (src/storage/task-durations.ts). prom-client's Histogram only observes, so
 * this one is served from the files as they are.
 */
function durationHistogram(reading: () => Reading): Metric {
  const name = 'metaspn_task_duration_seconds';
  return {
    name,
    help: 'Duration of task attempts whose handler ran to an end, by worker and outcome (completed, failed).',
    type: 'histogram',
    aggregator: 'sum',
    labelNames: ['worker', 'outcome'],
    get: async () => {
      const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
      for (const { queue, file } of reading().durations) {
        for (const [outcome, h] of Object.entries(file.outcomes)) {
          if (!h) continue;
          let cumulative = 0;
          DURATION_BUCKETS_S.forEach((le, i) => {
            cumulative += h.counts[i] ?? 0;
            values.push({ metricName: `${name}_bucket`, labels: { worker: queue, outcome, le }, value: cumulative });
          });
          values.push({ metricName: `${name}_bucket`, labels: { worker: queue, outcome, le: '+Inf' }, value: h.count });
          values.push({ metricName: `${name}_sum`, labels: { worker: queue, outcome }, value: h.sum });
          values.push({ metricName: `${name}_count`, labels: { worker: queue, outcome }, value: h.count });
        }
      }
      return { name, help: 'Duration of task attempts whose handler ran to an end, by worker and outcome (completed, failed).', type: 'histogram', aggregator: 'sum', values };
    },
  } as unknown as Metric;
}

/** metaspn_backend_up, metaspn_workers_present and metaspn_queue_lease_owners: the PostgreSQL backend's own metrics. */
function pgMetrics(registry: Registry, reading: () => Reading): void {
  new Gauge({
    name: 'metaspn_backend_up',
    help: '1 when the database answered this scrape (PostgreSQL backend only); 0: the queue metrics are missing from it.',
    registers: [registry],
    collect() {
      this.set(reading().backendUp);
    },
  });
  new Gauge({
    name: 'metaspn_workers_present',
    help: 'Worker processes whose presence session holds its lock in the database (PostgreSQL backend only).',
    registers: [registry],
    collect() {
      this.set(reading().workers?.present ?? 0);
    },
  });
  new Gauge({
    name: 'metaspn_queue_lease_owners',
    help: 'Worker processes present in the database that hold leases of the queue (PostgreSQL backend only).',
    labelNames: ['worker'],
    registers: [registry],
    collect() {
      this.reset();
      const w = reading().workers;
      if (!w) return;
      for (const v of reading().views) this.set({ worker: v.queue }, w.byQueue[v.queue] ?? 0);
    },
  });
}

/**
 * One damaged file never takes the scrape down: a queue that cannot be read is left out of the
 * per-worker metrics and counted in metaspn_queues_unreadable; a damaged run or ops file is
 * counted in metaspn_state_files_unreadable (by kind) and the rest is served.
 */
export function workspaceMetrics(ws: WorkspacePaths, source: OpsSource = fileSource(ws)): WorkspaceMetrics {
  const registry = new Registry();
  // One reading per scrape, shared by the metrics below.
  let scraped: Reading | null = null;
  const reading = (): Reading => scraped ?? EMPTY;
  const perWorker = (Kind: typeof Counter | typeof Gauge, name: string, help: string, pick: (v: QueueView) => number): void => {
    new Kind({
      name,
      help,
      labelNames: ['worker'],
      registers: [registry],
      collect(this: Counter | Gauge) {
        this.reset();
        for (const v of reading().views) {
          if (this instanceof Counter) this.inc({ worker: v.queue }, pick(v));
          else this.set({ worker: v.queue }, pick(v));
        }
      },
    });
  };
  perWorker(Counter, 'metaspn_tasks_completed_total', 'Tasks completed, since the queue was created.', (v) => v.completed);
  perWorker(Counter, 'metaspn_tasks_failed_total', 'Failed attempts (retried or not).', (v) => v.totals.failed);
  perWorker(Counter, 'metaspn_tasks_retried_total', 'Dead letters moved back to ready by queue retry.', (v) => v.totals.retried);
  perWorker(Counter, 'metaspn_tasks_dead_lettered_total', 'Tasks that reached the dead letters.', (v) => v.totals.dead_lettered);
  perWorker(Gauge, 'metaspn_queue_ready', 'Tasks ready to run.', (v) => v.ready);
  perWorker(Gauge, 'metaspn_queue_leased', 'Tasks held by a worker.', (v) => v.leased);
  perWorker(Gauge, 'metaspn_queue_scheduled', 'Tasks waiting for a retry.', (v) => v.scheduled);
  perWorker(Gauge, 'metaspn_queue_dead', 'Tasks in the dead letters.', (v) => v.dead);
  perWorker(Gauge, 'metaspn_queue_cancelled', 'Tasks cancelled before they ran (their run was superseded).', (v) => v.cancelled);
  perWorker(Gauge, 'metaspn_queue_paused', '1 when the queue is paused.', (v) => (v.paused ? 1 : 0));
  perWorker(Gauge, 'metaspn_queue_oldest_ready_age_seconds', 'How long the oldest ready task has waited.', (v) => v.oldest_ready_age_s ?? 0);
  // The database's metrics: its reachability and worker presence (a session per worker process); absent on files.
  if (source.backend === 'postgres') pgMetrics(registry, reading);
  new Gauge({
    name: 'metaspn_queues_unreadable',
    help: 'Queues whose files could not be read at this scrape (left out of the per-worker metrics; metaspn doctor names why).',
    registers: [registry],
    collect() {
      this.set(reading().unreadableQueues.length);
    },
  });
  new Gauge({
    name: 'metaspn_state_files_unreadable',
    help: 'Workspace state files that do not read back, by kind (manifest, pointer, event, run_start, alert_state); metaspn doctor --repair fixes them.',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      this.reset();
      const problems = reading().problems;
      for (const kind of PROBLEM_KINDS) this.set({ kind }, problems.filter((p) => p.kind === kind).length);
    },
  });
  // The latest run of each pipeline, one metric per meaning; and the standard batch-job alert's
  // input: when did the pipeline last succeed (alert on time() - it > a day and a bit).
  const perPipeline = (name: string, help: string, pick: (r: RunInfo) => number | null, among: (r: RunInfo) => boolean = () => true): void => {
    new Gauge({
      name,
      help,
      labelNames: ['pipeline'],
      registers: [registry],
      collect() {
        this.reset();
        const seen = new Set<string>();
        for (const r of reading().runs) {
          if (seen.has(r.pipeline) || !among(r)) continue;
          seen.add(r.pipeline);
          const v = pick(r);
          if (v !== null && Number.isFinite(v)) this.set({ pipeline: r.pipeline }, v);
        }
      },
    });
  };
  perPipeline('metaspn_last_run_exit_code', 'Exit code of the latest run of the pipeline (docs/EXIT-CODES.md).', (r) => r.exit_code);
  perPipeline('metaspn_last_run_success', '1 when the latest run of the pipeline succeeded (exit 0), else 0.', (r) => (r.status === 'success' ? 1 : 0));
  perPipeline('metaspn_last_run_duration_seconds', 'Duration of the latest run of the pipeline.', (r) => r.duration_ms / 1000);
  perPipeline('metaspn_last_run_start_timestamp_seconds', 'Start of the latest run of the pipeline, in seconds since the epoch.', (r) => Date.parse(r.started_at) / 1000);
  perPipeline('metaspn_last_success_timestamp_seconds', 'End of the latest successful run of the pipeline, in seconds since the epoch.', (r) => Date.parse(r.finished_at) / 1000, (r) => r.status === 'success');
  registry.registerMetric(durationHistogram(reading));
  new Gauge({
    name: 'metaspn_build_info',
    help: 'Always 1: the metaspn version and the Node.js version serving the metrics.',
    labelNames: ['version', 'nodejs_version'],
    registers: [registry],
    collect() {
      this.reset();
      this.set({ version: metaspnVersion(), nodejs_version: process.versions.node }, 1);
    },
  });
  new Gauge({
    name: 'metaspn_lock_held',
    help: '1 while a run holds the lock.',
    labelNames: ['lock'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [lock, held] of Object.entries(reading().lockHeld)) this.set({ lock }, held);
    },
  });
  return {
    contentType: registry.contentType,
    async scrape() {
      scraped = await read(ws, source);
      try {
        return await registry.metrics();
      } finally {
        scraped = null;
      }
    },
  };
}
