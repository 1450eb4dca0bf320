/**
 * The PostgreSQL bench (issue 12, "Speed"): our PostgreSQL backend (PgQueue and the worker loop,
 * runWorker) beside graphile-worker, each workload on a fresh database of the same server in the
 * same run, as tasks/s and as a ratio to the same run's commit rate of that server (a loop of
 * single-row durable commits, one connection). `synchronous_commit` stays on: every figure is durable.
 *
 * Per size and run, one fresh database per workload:
 *   enqueue      bulk enqueue, 10,000 tasks a call (graphile-worker: addJobs, 10,000 a call)
 *   drain b100   drain of no-op tasks, concurrency 8, claims of at most 100 (graphile: its defaults)
 *   drain b500   the same with claims of 500, each marking its tasks started (start_ahead 500:
 *                a dead worker charges every task it fetched, as graphile-worker's local queue of
 *                500 does; graphile: that queue, batched completions)
 *   b500, 128    claims of 500 with 128 marked ahead (the other drains' start_ahead): a dead worker
 *                charges at most 128 fetched tasks that never ran; shown beside b500, no target
 *   effects      each task records one row (ctx.effects), committed with its acknowledgement
 *                (graphile: the handler inserts the row itself, its own commit)
 *   fail once    each task fails its first attempt and succeeds its second (minimum backoff;
 *                graphile's retry waits exp(1) s, which no option lowers)
 * Then `queue stats` latency on a queue of `statsSize` tasks after churn, and a worker's RSS while
 * it drains (PostgreSQL) beside the file backend's on the same number of tasks.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { PgQueue } from '../src/backend/pg/pg-queue.js';
import { FileQueue } from '../src/queue/file/file-queue.js';
import { makeOwner } from '../src/queue/owner.js';
import type { StoredRow } from '../src/pipeline/types.js';
import type { WorkerDefinition } from '../src/runtime/worker-api.js';
import { drainOnce, fmtInt, fmtNum, fmtRatio, fmtSize, median, nowMs, perSecond, progress, table, timedEnqueue, withTempWorkspace } from './lib.js';
import { graphileDrain, graphileEnqueue, graphileMigrate, graphileVersion, type GraphileMode } from './peer-graphile.js';
import { policyWith } from './queue.js';
import type { PgRssReport } from './pg-rss-child.js';

const QUEUE = 'bench';
/** How long each commit-rate loop runs, ms. */
const COMMIT_LOOP_MS = 2_000;
const STATS_REPEATS = 20;

/** The server the bench uses: METASPN_BENCH_DATABASE_URL, else the local server's `postgres` database. */
export function benchAdminUrl(): string {
  return process.env.METASPN_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
}

/** The targets of issue 12 on this 2-core machine, tasks/s (durable). */
export const PG_TARGETS = {
  drain_b100_per_s: 15_000,
  drain_b500_per_s: 25_000,
  effects_per_s: 12_000,
  fail_once_per_s: 7_000,
  enqueue_per_s: 60_000,
  stats_ms: 20,
} as const;

export type PgMeasure = 'enqueue' | 'drain_b100' | 'drain_b500' | 'drain_b500_a128' | 'effects' | 'fail_once';
export const PG_MEASURES: readonly PgMeasure[] = ['enqueue', 'drain_b100', 'drain_b500', 'drain_b500_a128', 'effects', 'fail_once'];

export interface PgRun {
  size: number;
  run: number;
  /** Single-row durable commits per second, one connection / eight, measured right before this run's workloads. */
  commit_c1_per_s: number;
  commit_c8_per_s: number;
  ours: Record<PgMeasure, number>;
  graphile: Partial<Record<PgMeasure, number>>;
  loadavg_1m: number;
}

export interface PgBenchResult {
  server: string;
  settings: Record<string, string>;
  graphile: string | null;
  sizes: number[];
  runs: PgRun[];
  stats: { size: number; churn: string; median_ms: number; max_ms: number; samples_ms: number[] } | null;
  rss: { size: number; pg: PgRssReport; file: PgRssReport } | null;
  notes: string[];
}

/** True when the bench's server answers (2 s). */
export async function pgReachable(url = benchAdminUrl()): Promise<boolean> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** Runs `f` on a client of its own (the admin database by default), ended afterwards. */
export async function admin<T>(f: (c: pg.Client) => Promise<T>, url = benchAdminUrl()): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await f(c);
  } finally {
    await c.end();
  }
}

/** A fresh database for `fn`, dropped afterwards. */
async function withDb<T>(label: string, fn: (url: string) => Promise<T>): Promise<T> {
  const name = `metaspn_bench_${label.replace(/\W/g, '_')}_${randomBytes(3).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  const u = new URL(benchAdminUrl());
  u.pathname = `/${name}`;
  try {
    return await fn(u.toString());
  } finally {
    await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  }
}

/** Single-row durable commits per second on `conns` connections (autocommit INSERTs) for COMMIT_LOOP_MS. */
async function commitRate(url: string, conns: number): Promise<number> {
  await admin((c) => c.query('CREATE TABLE IF NOT EXISTS commit_probe (id bigserial PRIMARY KEY, v int NOT NULL)'), url);
  const clients = await Promise.all(
    Array.from({ length: conns }, async () => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      return c;
    }),
  );
  try {
    let n = 0;
    const end = nowMs() + COMMIT_LOOP_MS;
    const t0 = nowMs();
    await Promise.all(
      clients.map(async (c) => {
        while (nowMs() < end) {
          await c.query('INSERT INTO commit_probe (v) VALUES (1)');
          n++;
        }
      }),
    );
    return perSecond(n, nowMs() - t0);
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
}

function queueOf(url: string, startAhead = BENCH_START_AHEAD): PgQueue {
  return new PgQueue({ name: QUEUE, setting: { url, source: 'bench' }, ack_window_ms: policyWith({}).ack_window_ms, start_ahead: startAhead });
}

async function enqueueAll(url: string, size: number): Promise<number> {
  const q = queueOf(url);
  try {
    await q.stats(); // the schema is migrated outside the timed part
    return await timedEnqueue(q, size);
  } finally {
    await q.close();
  }
}

const noop: WorkerDefinition = { name: QUEUE, handle: () => undefined };
const failOnce: WorkerDefinition = {
  name: QUEUE,
  handle: (_task, ctx) => {
    if (ctx.attempt === 1) throw new Error('fails on attempt 1 (benchmark)');
  },
};
const withEffects: WorkerDefinition = {
  name: QUEUE,
  handle: (task, ctx) => {
    const row: StoredRow = { key: task.id, id: `row_${task.id}`, step: 'effects', date: '2026-01-15', identity: 'bench', n: (task.payload as { n: number }).n };
    ctx.effects.rows('bench', 'effects', [row]);
  },
};

/**
 * The look-ahead the bench drains with (the policy's default is 0: exact attempts; docs/RELIABILITY.md):
 * claims of 100 are then marked whole by their claim. Claims of 500 are marked whole with
 * {@link BENCH_START_AHEAD_B500}, and shown with this one beside them.
 */
export const BENCH_START_AHEAD = 128;
/** The look-ahead of the claims-of-500 drain: each claim marks its tasks (every fetched task charged on a crash, as graphile-worker's local queue). */
export const BENCH_START_AHEAD_B500 = 500;

/** How a drain runs: claims of at most `prefetch`, the minimum backoff, the look-ahead of start marks (default BENCH_START_AHEAD). */
interface DrainOptions {
  prefetch: number;
  backoffMs?: number;
  startAhead?: number;
}

/** Drains the queue of `url` with one worker of concurrency 8; returns tasks/s. */
async function drain(url: string, worker: WorkerDefinition, size: number, o: DrainOptions): Promise<number> {
  const policy = policyWith({ concurrency: 8, ...(o.backoffMs ? { backoff_base_ms: o.backoffMs } : {}) });
  const queue = queueOf(url, o.startAhead);
  try {
    await queue.stats();
    const t0 = nowMs();
    const summary = await drainOnce(queue, worker, policy, '/nonexistent-bench-workspace', { prefetch: o.prefetch, nextDue: () => queue.nextDueAt() });
    const ms = nowMs() - t0;
    const s = await queue.stats();
    if (summary.completed !== size || s.completed !== size) throw new Error(`drain: ${summary.completed} completed of ${size} (${JSON.stringify(summary)}; stats ${JSON.stringify(s)})`);
    return perSecond(size, ms);
  } finally {
    await queue.close();
  }
}

async function oursRun(size: number): Promise<Record<PgMeasure, number>> {
  const enqueue = await withDb('enq', async (url) => perSecond(size, await enqueueAll(url, size)));
  const drained = async (label: string, worker: WorkerDefinition, o: DrainOptions): Promise<number> =>
    withDb(label, async (url) => {
      await enqueueAll(url, size);
      await admin((c) => c.query('CHECKPOINT'), url);
      return drain(url, worker, size, o);
    });
  return {
    enqueue,
    drain_b100: await drained('b100', noop, { prefetch: 100 }),
    drain_b500: await drained('b500', noop, { prefetch: 500, startAhead: BENCH_START_AHEAD_B500 }),
    drain_b500_a128: await drained('b500a', noop, { prefetch: 500 }),
    effects: await drained('fx', withEffects, { prefetch: 100 }),
    fail_once: await drained('fail', failOnce, { prefetch: 100, backoffMs: 1 }),
  };
}

async function graphileRun(size: number, defaultMax: number): Promise<Partial<Record<PgMeasure, number>>> {
  const out: Partial<Record<PgMeasure, number>> = {};
  out.enqueue = await withDb('genq', async (url) => {
    await graphileMigrate(url);
    return perSecond(size, await graphileEnqueue(url, size));
  });
  const drained = (label: string, mode: GraphileMode, handler: Parameters<typeof graphileDrain>[3]): Promise<number> =>
    withDb(label, async (url) => {
      await graphileMigrate(url);
      await graphileEnqueue(url, size);
      await admin((c) => c.query('CHECKPOINT'), url);
      return perSecond(size, await graphileDrain(url, mode, size, handler));
    });
  // Its defaults fetch and complete a job per query: only at the smaller sizes (a minute per 100k).
  if (size <= defaultMax) out.drain_b100 = await drained('gdef', 'default', async () => undefined);
  out.drain_b500 = await drained('gbat', 'batched', async () => undefined);
  out.effects = await drained('gfx', 'batched', async (payload, helpers) => {
    await helpers.withPgClient((c) =>
      c
        .query('CREATE TABLE IF NOT EXISTS bench_effects (id text PRIMARY KEY, body text NOT NULL)')
        .then(() => c.query('INSERT INTO bench_effects VALUES ($1, $2)', [String((payload as { n: number }).n), JSON.stringify(payload)])),
    );
  });
  out.fail_once = await drained('gfail', 'batched', async (_payload, helpers) => {
    if (helpers.job.attempts === 1) throw new Error('fails on attempt 1 (benchmark)');
  });
  return out;
}

/** `queue stats` latency on a queue of `size` tasks after churn (a fifth drained, a hundredth failed once). */
async function statsAfterChurn(size: number): Promise<NonNullable<PgBenchResult['stats']>> {
  return withDb('stats', async (url) => {
    await enqueueAll(url, size);
    const churned = Math.round(size / 5);
    // Churn: a fifth of the tasks claimed and completed, then a further hundredth claimed and failed once (retried at once).
    const q = queueOf(url);
    const owner = makeOwner();
    try {
      for (let done = 0; done < churned;) {
        const got = await q.claim({ owner, max: 500, lease_ms: 60_000 });
        await Promise.all(got.map((c) => q.complete(c.task.id, c.lease)));
        done += got.length;
      }
      for (let failed = 0; failed < size / 100;) {
        const got = await q.claim({ owner, max: 500, lease_ms: 60_000 });
        await Promise.all(got.map((c) => q.fail(c.task.id, c.lease, { class: 'Error', message: 'churn', kind: 'transient', at: new Date().toISOString() }, 0)));
        failed += got.length;
      }
      const samples: number[] = [];
      for (let i = 0; i < STATS_REPEATS; i++) {
        const t0 = nowMs();
        await q.stats();
        samples.push(nowMs() - t0);
      }
      return { size, churn: `${fmtInt(churned)} completed, ${fmtInt(size / 100)} failed once, no vacuum in between`, median_ms: median(samples), max_ms: Math.max(...samples), samples_ms: samples };
    } finally {
      await q.close();
    }
  });
}

const rssChild = fileURLToPath(new URL('./pg-rss-child.js', import.meta.url));
const execFileP = promisify(execFile);

async function rssOf(backend: 'pg' | 'file', where: string): Promise<PgRssReport> {
  const { stdout } = await execFileP(process.execPath, [rssChild, backend, where, QUEUE], { maxBuffer: 1 << 20 });
  return JSON.parse(stdout.trim().split('\n').pop() ?? '') as PgRssReport;
}

/** A worker's RSS while it drains `size` tasks, on PostgreSQL and on files. */
async function rssBoth(size: number): Promise<NonNullable<PgBenchResult['rss']>> {
  const pgReport = await withDb('rss', async (url) => {
    await enqueueAll(url, size);
    return rssOf('pg', url);
  });
  const file = await withTempWorkspace('pg-rss-file', async (dir) => {
    const q = new FileQueue({ workspace: dir, name: QUEUE });
    try {
      await timedEnqueue(q, size);
    } finally {
      await q.close();
    }
    return rssOf('file', dir);
  });
  return { size, pg: pgReport, file };
}

export interface PgBenchOptions {
  sizes: number[];
  runs: number;
  statsSize: number;
  /** graphile-worker beside ours (when it is installed). */
  peers: boolean;
}

export async function runPgBench(o: PgBenchOptions): Promise<PgBenchResult> {
  const notes: string[] = [];
  const settings = await admin(async (c) => {
    const r = await c.query<{ name: string; setting: string }>(
      `SELECT name, setting FROM pg_settings WHERE name IN ('server_version', 'synchronous_commit', 'fsync', 'wal_sync_method', 'shared_buffers', 'max_connections')`,
    );
    return Object.fromEntries(r.rows.map((x) => [x.name, x.setting]));
  });
  if (settings.synchronous_commit !== 'on' || settings.fsync !== 'on')
    notes.push(`the server runs with synchronous_commit=${settings.synchronous_commit}, fsync=${settings.fsync}: the figures are not durable ones`);
  const gv = o.peers ? graphileVersion() : null;
  if (o.peers && gv === null) notes.push('graphile-worker is not installed (npm ci installs it, a devDependency): skipped');
  const runs: PgRun[] = [];
  for (let run = 1; run <= o.runs; run++) {
    for (const size of o.sizes) {
      progress(`pg: ${fmtSize(size)} run ${run}/${o.runs}: commit rate`);
      const [c1, c8] = await withDb('commit', async (url) => [await commitRate(url, 1), await commitRate(url, 8)]);
      progress(`pg: ${fmtSize(size)} run ${run}/${o.runs}: ours (commit rate c1 ${fmtInt(c1)}/s, c8 ${fmtInt(c8)}/s)`);
      const ours = await oursRun(size);
      progress(`pg: ${fmtSize(size)} run ${run}/${o.runs}: ours ${JSON.stringify(Object.fromEntries(Object.entries(ours).map(([k, v]) => [k, Math.round(v)])))}`);
      const graphile = gv ? await graphileRun(size, 10_000) : {};
      if (gv) progress(`pg: ${fmtSize(size)} run ${run}/${o.runs}: graphile-worker ${JSON.stringify(Object.fromEntries(Object.entries(graphile).map(([k, v]) => [k, Math.round(v)])))}`);
      runs.push({ size, run, commit_c1_per_s: c1, commit_c8_per_s: c8, ours, graphile, loadavg_1m: (await import('node:os')).loadavg()[0]! });
    }
  }
  if (o.statsSize > 0) progress(`pg: queue stats on ${fmtSize(o.statsSize)} tasks after churn`);
  const stats = o.statsSize > 0 ? await statsAfterChurn(o.statsSize) : null;
  // The RSS part goes with the stats part (`--pg-stats-size 0` skips both), at the smallest size.
  const rssSize = Math.min(...o.sizes);
  if (o.statsSize > 0) progress(`pg: worker RSS draining ${fmtSize(rssSize)} tasks, PostgreSQL and files`);
  const rss = o.statsSize > 0 ? await rssBoth(rssSize) : null;
  return { server: new URL(benchAdminUrl()).host, settings, graphile: gv, sizes: o.sizes, runs, stats, rss, notes };
}

const LABEL: Record<PgMeasure, string> = {
  enqueue: 'bulk enqueue',
  drain_b100: 'drain c8, claims of 100',
  drain_b500: 'drain c8, claims of 500',
  drain_b500_a128: '… of 500, 128 marked ahead (no target)',
  effects: 'drain c8 + a row per task committed with its ack',
  fail_once: 'fail once then succeed, c8',
};
const TARGET: Record<PgMeasure, number | null> = {
  enqueue: PG_TARGETS.enqueue_per_s,
  drain_b100: PG_TARGETS.drain_b100_per_s,
  drain_b500: PG_TARGETS.drain_b500_per_s,
  drain_b500_a128: null,
  effects: PG_TARGETS.effects_per_s,
  fail_once: PG_TARGETS.fail_once_per_s,
};
const GRAPHILE_AS: Record<PgMeasure, string> = {
  enqueue: 'addJobs, 10k a call',
  drain_b100: 'its defaults (a job per query)',
  drain_b500: 'local queue 500, batched completions',
  drain_b500_a128: '—',
  effects: 'batched; the handler inserts its row (own commit)',
  fail_once: 'batched; its retry waits exp(1) s',
};

export function formatPgReport(r: PgBenchResult): string {
  const lines: string[] = [];
  lines.push(
    `PostgreSQL backend vs graphile-worker ${r.graphile ?? '(not run)'} on ${r.server} (PostgreSQL ${r.settings.server_version ?? '?'}, synchronous_commit=${r.settings.synchronous_commit ?? '?'}); medians of ${Math.max(...r.runs.map((x) => x.run))} run(s), a fresh database per workload`,
  );
  for (const size of r.sizes) {
    const mine = r.runs.filter((x) => x.size === size);
    const c1 = median(mine.map((x) => x.commit_c1_per_s));
    const c8 = median(mine.map((x) => x.commit_c8_per_s));
    lines.push('', `${fmtSize(size)} tasks: single-row durable commits ${fmtInt(c1)}/s on one connection, ${fmtInt(c8)}/s on eight (same run); load ${fmtNum(median(mine.map((x) => x.loadavg_1m)))}`);
    const rows = PG_MEASURES.map((m) => {
      const ours = median(mine.map((x) => x.ours[m]));
      const gs = mine.map((x) => x.graphile[m]).filter((v): v is number => v !== undefined);
      const g = gs.length ? median(gs) : null;
      const ratios = mine.filter((x) => x.graphile[m] !== undefined).map((x) => x.ours[m] / x.graphile[m]!);
      return [
        LABEL[m],
        fmtInt(ours),
        fmtRatio(median(mine.map((x) => x.ours[m] / x.commit_c1_per_s))),
        TARGET[m] === null ? '—' : `${fmtInt(TARGET[m])} ${ours >= TARGET[m] ? 'met' : 'missed'}`,
        g === null ? '—' : fmtInt(g),
        ratios.length ? fmtRatio(median(ratios)) : '—',
        GRAPHILE_AS[m],
      ];
    });
    lines.push(table(['workload', 'ours tasks/s', '÷ commit c1', 'target', 'graphile tasks/s', 'ours ÷ graphile', 'graphile as'], rows));
  }
  if (r.stats)
    lines.push(
      '',
      `queue stats on ${fmtInt(r.stats.size)} tasks after churn (${r.stats.churn}): median ${fmtNum(r.stats.median_ms, 2)} ms, max ${fmtNum(r.stats.max_ms, 2)} ms of ${r.stats.samples_ms.length} (target ≤ ${PG_TARGETS.stats_ms} ms: median ${r.stats.median_ms <= PG_TARGETS.stats_ms ? 'met' : 'missed'}, max ${r.stats.max_ms <= PG_TARGETS.stats_ms ? 'met' : 'missed'})`,
    );
  if (r.rss)
    lines.push(
      '',
      `worker RSS draining ${fmtInt(r.rss.size)} tasks, c8: PostgreSQL peak ${fmtNum(r.rss.pg.max_rss_mb)} MB, files peak ${fmtNum(r.rss.file.max_rss_mb)} MB (node alone ${fmtNum(r.rss.pg.rss_before_mb)} MB)`,
    );
  for (const n of r.notes) lines.push(`note: ${n}`);
  return lines.join('\n');
}
