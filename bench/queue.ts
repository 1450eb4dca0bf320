/**
 * The queue benchmark: the file backend (FileQueue) and the worker loop (runWorker) against the
 * targets of docs/PERFORMANCE.md, at several queue sizes, as ratios to the disk measured in the
 * same run and the same temp dir.
 *
 * Per size and run, three fresh temp workspaces, each starting with its own disk baseline:
 *   A: bulk enqueue (timed); then, on the queue it leaves (N ready tasks), `queue stats`
 *      (snapshot fast path and full replay) and the worker RSS (child process)
 *   B: enqueue (setup), drain of no-op tasks with concurrency 8
 *   C: enqueue (setup), fail once then succeed, concurrency 8, minimum backoff
 * Dirty pages are written back (`sync`) before each disk baseline and each timed part, so one step's
 * writeback does not land in the next. A warm-up pass at a small size runs first and is discarded.
 */
import { execFile } from 'node:child_process';
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as policyModule from '../src/config/policy.js';
import type { QueuePolicy } from '../src/config/policy.js';
import { FileQueue } from '../src/queue/file/file-queue.js';
import { listGens, logPath } from '../src/queue/file/log-io.js';
import { readStats } from '../src/queue/file/stats-file.js';
import { type RunSummary } from '../src/runtime/runner.js';
import type { WorkerDefinition } from '../src/runtime/worker-api.js';
import { queueDir, workspacePaths } from '../src/storage/paths.js';
import {
  ENQUEUE_BATCH,
  fmtInt,
  fmtNum,
  fmtRatio,
  fmtSize,
  flushDirty,
  measureBaseline,
  median,
  nowMs,
  perSecond,
  progress,
  drainOnce,
  settle,
  summarize,
  timedEnqueue,
  table,
  withTempWorkspace,
  type Baseline,
  type Samples,
} from './lib.js';
import type { RssReport } from './rss-child.js';
import { openSqliteQueue, sqliteCounts, sqliteDrain, sqliteEnqueue, sqliteVersion, SQLITE_ACK_WINDOW_MS } from './peer-sqlite.js';
import { bullDrain, bullEnqueue, bullmqVersion, redisServerVersion, startRedis, type Fsync } from './peer-bullmq.js';

const QUEUE = 'bench';
const STATS_REPEATS = 5;
const WARMUP_SIZE = 5_000;
/** Retries as soon as allowed: backoff_base_ms 1 (a 1 ms scheduled retry, through the due heap). */
const MIN_BACKOFF_MS = 1;

/** The targets (docs/PERFORMANCE.md and the benchmark brief). */
export const TARGETS = {
  enqueue_per_s: 150_000,
  enqueue_required_per_s: 100_000,
  drain_per_s: 30_000,
  fail_once_per_s: 9_000,
  stats_ms: 100,
  rss_mb: 150,
  /** The disk the targets were set on: append + fdatasync every 100 lines, lines/s (docs/PERFORMANCE.md). */
  reference_disk_lines_per_s: 177_000,
} as const;

export interface QueueBenchOptions {
  sizes: number[];
  runs: number;
  warmup: boolean;
  /** Measure the peers (SQLite; BullMQ when redis-server is on the PATH) in the same runs. */
  peers?: boolean;
  /** Peers only at sizes up to this. */
  peerMax?: number;
  /** BullMQ with appendfsync always only at sizes up to this. */
  bullAlwaysMax?: number;
}

export const PEERS = ['sqlite', 'bullmq-everysec', 'bullmq-always'] as const;
export type PeerName = (typeof PEERS)[number];

/** One peer's figures in one run at one size (tasks/s), beside ours. */
export interface PeerRun {
  enqueue_per_s: number;
  drain_per_s: number;
  fail_once_per_s: number;
  /** Wall time of the peer's part of the run, setup included. */
  wall_ms: number;
}

/** Our figure ÷ the peer's, per run (medians taken over runs). */
export const PEER_TARGETS: Array<{ measure: 'enqueue' | 'drain' | 'fail_once'; peer: PeerName; min: number }> = [
  { measure: 'enqueue', peer: 'sqlite', min: 1.2 },
  { measure: 'drain', peer: 'bullmq-everysec', min: 6 },
  { measure: 'drain', peer: 'sqlite', min: 15 },
  { measure: 'fail_once', peer: 'bullmq-everysec', min: 4 },
];
/** Cost per task, largest size ÷ smallest: flat within this. */
export const FLAT_WITHIN = 1.3;

export interface Throughput {
  /** Elapsed ms of the timed part. */
  ms: number;
  tasks: number;
  tasks_per_s: number;
  us_per_task: number;
  /**
   * CPU time of this process (user + system, `process.cpuUsage`) over the timed part, per task, in
   * µs: what the machine's load disturbs least (wall time waits for a CPU share on a shared host).
   */
  cpu_us_per_task: number;
  /** The disk baseline of this measurement's temp dir. */
  disk: Baseline;
  /** tasks_per_s ÷ disk.sync100_lines_per_s. */
  ratio: number;
}

export interface DrainMeasure extends Throughput {
  /** Opening the queue in a fresh FileQueue: replay of the whole log (not in `ms`). */
  load_ms: number;
  summary: RunSummary;
  /** What stats() said after the run. */
  final: { ready: number; scheduled: number; leased: number; completed: number; dead: number };
}

export interface QueueRun {
  size: number;
  run: number;
  enqueue: Throughput & { log_bytes: number };
  stats: {
    snapshot_ms: number;
    snapshot_samples_ms: number[];
    snapshot_source: string;
    replay_ms: number;
    replay_source: string;
  };
  rss: RssReport;
  drain: DrainMeasure;
  fail_once: DrainMeasure;
  /** Wall time of the whole run at this size, setup included (peers not included). */
  wall_ms: number;
  /** The peers measured right after ours, in the same run. */
  peers: Partial<Record<PeerName, PeerRun>>;
}

export interface SizeSummary {
  size: number;
  disk_sync100_lines_per_s: Samples;
  disk_sync1_lines_per_s: Samples;
  disk_nosync_lines_per_s: Samples;
  cpu_lines_per_s: Samples;
  loadavg_1m: Samples;
  enqueue_per_s: Samples;
  enqueue_ratio: Samples;
  drain_per_s: Samples;
  drain_ratio: Samples;
  drain_load_ms: Samples;
  fail_once_per_s: Samples;
  fail_once_ratio: Samples;
  fail_once_load_ms: Samples;
  /** CPU µs per task of the timed part ({@link Throughput.cpu_us_per_task}). */
  enqueue_cpu_us: Samples;
  drain_cpu_us: Samples;
  fail_once_cpu_us: Samples;
  stats_snapshot_ms: Samples;
  stats_replay_ms: Samples;
  rss_mb: Samples;
  rss_before_mb: Samples;
  max_rss_mb: Samples;
  rss_load_ms: Samples;
  log_mib: Samples;
  wall_s: Samples;
}

export interface QueueBenchResult {
  options: QueueBenchOptions;
  /** Versions of the peers, and why one was skipped. */
  peer_info: { sqlite: string | null; bullmq: string | null; redis: string | null; notes: string[] };
  targets: typeof TARGETS;
  policy: { drain: QueuePolicy; fail_once: QueuePolicy; enqueue_batch: number };
  runs: QueueRun[];
  summary: SizeSummary[];
}

// ---- pieces ----

/**
 * The defaults plus `layer`, validated: resolvePolicy where the config module has it (the schema
 * itself no longer fills defaults), else queuePolicySchema.parse, which did.
 */
export function policyWith(layer: Partial<QueuePolicy>): QueuePolicy {
  const mod = policyModule as unknown as {
    resolvePolicy?: (...layers: Partial<QueuePolicy>[]) => QueuePolicy;
    POLICY_DEFAULTS?: QueuePolicy;
    queuePolicySchema: { parse(v: unknown): QueuePolicy };
  };
  if (typeof mod.resolvePolicy === 'function') return mod.resolvePolicy(layer);
  return mod.queuePolicySchema.parse({ ...(mod.POLICY_DEFAULTS ?? {}), ...layer });
}

const drainPolicy = (): QueuePolicy => policyWith({ concurrency: 8 });
const failPolicy = (): QueuePolicy => policyWith({ concurrency: 8, backoff_base_ms: MIN_BACKOFF_MS });

function openQueue(workspace: string, policy: QueuePolicy): FileQueue {
  return new FileQueue({ workspace, name: QUEUE, max_attempts: policy.max_attempts, ack_window_ms: policy.ack_window_ms });
}

/**
 * Enqueues `size` no-op tasks, ENQUEUE_BATCH per call; returns the elapsed ms of the calls. Timed
 * from an open, empty queue (its log created by a first round), as the SQLite peer is timed from
 * an open database with its schema.
 */
async function enqueueAll(workspace: string, size: number): Promise<{ ms: number; cpu_us: number }> {
  const q = openQueue(workspace, drainPolicy());
  try {
    await q.stats();
    const cpu0 = process.cpuUsage();
    const ms = await timedEnqueue(q, size);
    return { ms, cpu_us: cpuSince(cpu0) };
  } finally {
    await q.close();
  }
}

/** User + system CPU µs of this process since `from`. */
function cpuSince(from: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(from);
  return d.user + d.system;
}

function throughput(tasks: number, ms: number, cpu_us: number, disk: Baseline): Throughput {
  const tasks_per_s = perSecond(tasks, ms);
  return { ms, tasks, tasks_per_s, us_per_task: (ms * 1000) / tasks, cpu_us_per_task: cpu_us / tasks, disk, ratio: tasks_per_s / disk.sync100_lines_per_s };
}

function qdir(workspace: string): string {
  return queueDir(workspacePaths(workspace), QUEUE);
}

/** The current log generation's size: what a worker replays. */
function logBytes(workspace: string): number {
  const dir = qdir(workspace);
  const gens = listGens(dir);
  const gen = gens[gens.length - 1];
  return gen === undefined ? 0 : statSync(logPath(dir, gen)).size;
}

const childScript = fileURLToPath(new URL('./rss-child.js', import.meta.url));
const execFileP = promisify(execFile);

async function measureRss(workspace: string): Promise<RssReport> {
  const { stdout } = await execFileP(process.execPath, [childScript, workspace, QUEUE], { maxBuffer: 1 << 20 });
  const line = stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as RssReport;
}

const noop: WorkerDefinition = { name: QUEUE, handle: () => undefined };

const failOnce: WorkerDefinition = {
  name: QUEUE,
  handle: (_task, ctx) => {
    if (ctx.attempt === 1) throw new Error('fails on attempt 1 (benchmark)');
  },
};

/** A fresh FileQueue (as a worker process opens it) drained with runWorker, once. */
async function drain(workspace: string, worker: WorkerDefinition, policy: QueuePolicy, withNextDue: boolean, disk: Baseline): Promise<DrainMeasure> {
  const queue = openQueue(workspace, policy);
  try {
    const t0 = nowMs();
    const before = await queue.stats(); // the first round replays the whole log
    const load_ms = nowMs() - t0;
    const t1 = nowMs();
    const cpu0 = process.cpuUsage();
    const summary = await drainOnce(queue, worker, policy, workspace, withNextDue ? { nextDue: async () => (await queue.stats()).next_due_at } : {});
    const ms = nowMs() - t1;
    const cpu_us = cpuSince(cpu0);
    const s = await queue.stats();
    const final = { ready: s.ready, scheduled: s.scheduled, leased: s.leased, completed: s.completed, dead: s.dead };
    if (s.completed !== before.ready || summary.completed !== before.ready) {
      throw new Error(`drain: ${before.ready} ready before, ${s.completed} completed after (${JSON.stringify(final)}, ${JSON.stringify(summary)})`);
    }
    return { ...throughput(summary.completed, ms, cpu_us, disk), load_ms, summary, final };
  } finally {
    await queue.close();
  }
}

// ---- peers ----

/** The SQLite peer: enqueue (timed) then drain on the same database; fail-once on a second one. */
async function sqlitePeer(size: number): Promise<PeerRun> {
  const started = nowMs();
  const drainMs = await withTempWorkspace(`sqlite-${fmtSize(size)}-a`, async (dir) => {
    flushDirty();
    await settle();
    let db = openSqliteQueue(dir);
    const enqMs = sqliteEnqueue(db, 0, size, ENQUEUE_BATCH);
    db.close();
    flushDirty();
    await settle();
    db = openSqliteQueue(dir); // as a worker process opens it
    try {
      const d = await sqliteDrain(db, () => undefined, drainPolicy().concurrency, MIN_BACKOFF_MS);
      const c = sqliteCounts(db);
      if (d.completed !== size || c.done !== size) throw new Error(`sqlite drain: ${d.completed} completed, ${JSON.stringify(c)}`);
      return { enqMs, ms: d.ms };
    } finally {
      db.close();
    }
  });
  const failMs = await withTempWorkspace(`sqlite-${fmtSize(size)}-c`, async (dir) => {
    const db = openSqliteQueue(dir);
    try {
      sqliteEnqueue(db, 0, size, ENQUEUE_BATCH);
      flushDirty();
      await settle();
      const d = await sqliteDrain(
        db,
        (_p, attempt) => {
          if (attempt === 1) throw new Error('fails on attempt 1 (benchmark)');
        },
        failPolicy().concurrency,
        MIN_BACKOFF_MS,
      );
      if (d.completed !== size || d.failed !== size) throw new Error(`sqlite fail-once: ${d.completed} completed, ${d.failed} failed`);
      return d.ms;
    } finally {
      db.close();
    }
  });
  return { enqueue_per_s: perSecond(size, drainMs.enqMs), drain_per_s: perSecond(size, drainMs.ms), fail_once_per_s: perSecond(size, failMs), wall_ms: nowMs() - started };
}

/** BullMQ on a fresh redis-server per part: enqueue (timed) then drain; fail-once on a second server. */
async function bullPeer(size: number, fsync: Fsync): Promise<PeerRun> {
  const started = nowMs();
  const conc = drainPolicy().concurrency;
  const withRedis = async <T>(fn: (conn: Awaited<ReturnType<typeof startRedis>>['connection']) => Promise<T>): Promise<T> => {
    flushDirty();
    const r = await startRedis(fsync);
    try {
      return await fn(r.connection);
    } finally {
      await r.stop();
    }
  };
  const a = await withRedis(async (conn) => {
    await settle();
    const enqMs = await bullEnqueue(conn, 0, size, ENQUEUE_BATCH, false);
    await settle();
    const d = await bullDrain(conn, size, conc, false);
    return { enqMs, ms: d.ms };
  });
  const failMs = await withRedis(async (conn) => {
    await bullEnqueue(conn, 0, size, ENQUEUE_BATCH, true);
    await settle();
    const d = await bullDrain(conn, size, conc, true);
    if (d.failed !== size) throw new Error(`bullmq fail-once: ${d.failed} failures seen, expected ${size}`);
    return d.ms;
  });
  return { enqueue_per_s: perSecond(size, a.enqMs), drain_per_s: perSecond(size, a.ms), fail_once_per_s: perSecond(size, failMs), wall_ms: nowMs() - started };
}

interface PeerPlan {
  sqlite: boolean;
  bullmq: boolean;
  max: number;
  alwaysMax: number;
}

async function runPeers(size: number, plan: PeerPlan, say: (msg: string) => void): Promise<Partial<Record<PeerName, PeerRun>>> {
  const out: Partial<Record<PeerName, PeerRun>> = {};
  if (size > plan.max) return out;
  const line = (name: string, p: PeerRun): void =>
    say(`${name}: enqueue ${fmtInt(p.enqueue_per_s)}/s, drain c8 ${fmtInt(p.drain_per_s)}/s, fail-once c8 ${fmtInt(p.fail_once_per_s)}/s (${fmtNum(p.wall_ms / 1000, 1)} s)`);
  if (plan.sqlite) line('sqlite', (out.sqlite = await sqlitePeer(size)));
  if (plan.bullmq) {
    line('bullmq everysec', (out['bullmq-everysec'] = await bullPeer(size, 'everysec')));
    if (size <= plan.alwaysMax) line('bullmq always', (out['bullmq-always'] = await bullPeer(size, 'always')));
  }
  return out;
}

// ---- one run at one size ----

function diskLine(d: Baseline): string {
  return `disk ${fmtInt(d.sync100_lines_per_s)} lines/s (fdatasync/100), ${fmtInt(d.sync1_lines_per_s)}/s (fdatasync each); cpu probe ${fmtInt(d.cpu_lines_per_s)}/s; load ${fmtNum(d.loadavg_1m, 2)}`;
}

async function runOnce(size: number, run: number, runs: number, plan: PeerPlan, quiet = false): Promise<QueueRun> {
  const started = nowMs();
  const tag = `${fmtSize(size)} run ${run}/${runs}`;
  const say = (msg: string): void => {
    if (!quiet) progress(`${tag}: ${msg}`);
  };

  // A: enqueue, then stats and RSS on the queue it leaves
  const a = await withTempWorkspace(`q${fmtSize(size)}-a`, async (ws) => {
    flushDirty();
    const disk = measureBaseline(ws);
    // As the peers' timed enqueues start: the baseline's 60 MB of writes and removed files written
    // back first (on this machine their writeback and discards landed in the enqueue's fdatasyncs).
    flushDirty();
    await settle();
    const enq = await enqueueAll(ws, size);
    const enqueue = { ...throughput(size, enq.ms, enq.cpu_us, disk), log_bytes: logBytes(ws) };
    say(
      `enqueue ${fmtInt(enqueue.tasks_per_s)} tasks/s in ${fmtNum(enq.ms / 1000, 2)} s (cpu ${fmtNum(enqueue.cpu_us_per_task, 1)} µs/task), log ${fmtNum(enqueue.log_bytes / 2 ** 20)} MiB; ${diskLine(disk)}`,
    );

    const dir = qdir(ws);
    const snapSamples: number[] = [];
    let snapSource = '';
    for (let i = 0; i < STATS_REPEATS; i++) {
      const t0 = nowMs();
      const s = readStats(dir, QUEUE, Date.now());
      snapSamples.push(nowMs() - t0);
      snapSource = s.source;
      if (s.ready !== size) throw new Error(`stats: ready ${s.ready}, expected ${size}`);
    }
    // The fallback: without a current snapshot, readStats replays the whole log read-only.
    rmSync(join(dir, 'stats.json'), { force: true });
    await settle();
    const t0 = nowMs();
    const replayed = readStats(dir, QUEUE, Date.now());
    const replayMs = nowMs() - t0;
    if (replayed.ready !== size) throw new Error(`stats replay: ready ${replayed.ready}, expected ${size}`);
    say(`stats snapshot ${fmtNum(median(snapSamples), 2)} ms (${snapSource}), replay ${fmtNum(replayMs, 0)} ms (${replayed.source})`);

    const rss = await measureRss(ws);
    if (rss.claimed !== 1 || rss.ready_after !== size) throw new Error(`rss child: ${JSON.stringify(rss)}`);
    say(`worker RSS ${fmtNum(rss.rss_mb)} MB (node alone ${fmtNum(rss.rss_before_mb)} MB, peak ${fmtNum(rss.max_rss_mb)} MB), first claim ${fmtNum(rss.load_ms, 0)} ms`);
    return {
      enqueue,
      stats: { snapshot_ms: median(snapSamples), snapshot_samples_ms: snapSamples, snapshot_source: snapSource, replay_ms: replayMs, replay_source: replayed.source },
      rss,
    };
  });

  // B: drain of no-op tasks
  const drained = await withTempWorkspace(`q${fmtSize(size)}-b`, async (ws) => {
    flushDirty();
    const disk = measureBaseline(ws);
    await enqueueAll(ws, size);
    flushDirty();
    await settle();
    const d = await drain(ws, noop, drainPolicy(), false, disk);
    say(`drain c8 ${fmtInt(d.tasks_per_s)} tasks/s in ${fmtNum(d.ms / 1000, 2)} s (cpu ${fmtNum(d.cpu_us_per_task, 1)} µs/task, load ${fmtNum(d.load_ms, 0)} ms); ${diskLine(disk)}`);
    return d;
  });

  // C: fail once then succeed, minimum backoff
  const failed = await withTempWorkspace(`q${fmtSize(size)}-c`, async (ws) => {
    flushDirty();
    const disk = measureBaseline(ws);
    await enqueueAll(ws, size);
    flushDirty();
    await settle();
    const d = await drain(ws, failOnce, failPolicy(), true, disk);
    if (d.summary.retry_scheduled !== size) throw new Error(`fail once: ${d.summary.retry_scheduled} retries scheduled, expected ${size}`);
    say(`fail-once c8 ${fmtInt(d.tasks_per_s)} tasks/s in ${fmtNum(d.ms / 1000, 2)} s (cpu ${fmtNum(d.cpu_us_per_task, 1)} µs/task, load ${fmtNum(d.load_ms, 0)} ms); ${diskLine(disk)}`);
    return d;
  });

  const wall_ms = nowMs() - started;
  const peers = await runPeers(size, plan, say);
  return { size, run, ...a, drain: drained, fail_once: failed, wall_ms, peers };
}

function summarizeSize(size: number, runs: QueueRun[]): SizeSummary {
  const rs = runs.filter((r) => r.size === size);
  const s = (f: (r: QueueRun) => number): Samples => summarize(rs.map(f));
  const disks = rs.flatMap((r) => [r.enqueue.disk, r.drain.disk, r.fail_once.disk]);
  const d = (f: (x: Baseline) => number): Samples => summarize(disks.map(f));
  return {
    size,
    disk_sync100_lines_per_s: d((x) => x.sync100_lines_per_s),
    disk_sync1_lines_per_s: d((x) => x.sync1_lines_per_s),
    disk_nosync_lines_per_s: d((x) => x.nosync_lines_per_s),
    cpu_lines_per_s: d((x) => x.cpu_lines_per_s),
    loadavg_1m: d((x) => x.loadavg_1m),
    enqueue_per_s: s((r) => r.enqueue.tasks_per_s),
    enqueue_ratio: s((r) => r.enqueue.ratio),
    drain_per_s: s((r) => r.drain.tasks_per_s),
    drain_ratio: s((r) => r.drain.ratio),
    drain_load_ms: s((r) => r.drain.load_ms),
    fail_once_per_s: s((r) => r.fail_once.tasks_per_s),
    fail_once_ratio: s((r) => r.fail_once.ratio),
    fail_once_load_ms: s((r) => r.fail_once.load_ms),
    enqueue_cpu_us: s((r) => r.enqueue.cpu_us_per_task),
    drain_cpu_us: s((r) => r.drain.cpu_us_per_task),
    fail_once_cpu_us: s((r) => r.fail_once.cpu_us_per_task),
    stats_snapshot_ms: s((r) => r.stats.snapshot_ms),
    stats_replay_ms: s((r) => r.stats.replay_ms),
    rss_mb: s((r) => r.rss.rss_mb),
    rss_before_mb: s((r) => r.rss.rss_before_mb),
    max_rss_mb: s((r) => r.rss.max_rss_mb),
    rss_load_ms: s((r) => r.rss.load_ms),
    log_mib: s((r) => r.enqueue.log_bytes / 2 ** 20),
    wall_s: s((r) => r.wall_ms / 1000),
  };
}

export async function runQueueBench(opts: QueueBenchOptions): Promise<QueueBenchResult> {
  const notes: string[] = [];
  const redis = opts.peers === false ? null : redisServerVersion();
  const info = { sqlite: opts.peers === false ? null : sqliteVersion(), bullmq: redis ? bullmqVersion() : null, redis, notes };
  if (opts.peers === false) notes.push('peers not run (--no-peers)');
  else if (!redis) notes.push('BullMQ skipped: no redis-server on the PATH');
  const plan: PeerPlan = {
    sqlite: opts.peers !== false,
    bullmq: opts.peers !== false && redis !== null,
    max: opts.peerMax ?? Number.POSITIVE_INFINITY,
    alwaysMax: opts.bullAlwaysMax ?? Number.POSITIVE_INFINITY,
  };
  const skipped = opts.sizes.filter((n) => n > plan.max);
  if (opts.peers !== false && skipped.length) notes.push(`peers not run at ${skipped.map(fmtSize).join(', ')} (--peer-max ${fmtSize(plan.max)}; --full or --peer-max 1M runs them)`);
  const noAlways = opts.sizes.filter((n) => n <= plan.max && n > plan.alwaysMax);
  if (plan.bullmq && noAlways.length) notes.push(`BullMQ appendfsync always not run at ${noAlways.map(fmtSize).join(', ')} (--bull-always-max ${fmtSize(plan.alwaysMax)}; --full runs it)`);
  if (opts.warmup) {
    const t0 = nowMs();
    await runOnce(WARMUP_SIZE, 1, 1, plan.sqlite || plan.bullmq ? { ...plan, max: WARMUP_SIZE } : plan, true);
    progress(`warm-up (${fmtSize(WARMUP_SIZE)} tasks, all scenarios, discarded) in ${fmtNum((nowMs() - t0) / 1000, 1)} s`);
  }
  const runs: QueueRun[] = [];
  for (const size of opts.sizes) {
    for (let run = 1; run <= opts.runs; run++) {
      const r = await runOnce(size, run, opts.runs, plan);
      runs.push(r);
      const peerMs = Object.values(r.peers).reduce((a, p) => a + p.wall_ms, 0);
      progress(`${fmtSize(size)} run ${run}/${opts.runs}: done in ${fmtNum(r.wall_ms / 1000, 1)} s${peerMs ? `, peers ${fmtNum(peerMs / 1000, 1)} s` : ''}`);
    }
  }
  return {
    options: opts,
    peer_info: info,
    targets: TARGETS,
    policy: { drain: drainPolicy(), fail_once: failPolicy(), enqueue_batch: ENQUEUE_BATCH },
    runs,
    summary: opts.sizes.map((size) => summarizeSize(size, runs)),
  };
}

// ---- report ----

function verdict(ok: boolean): string {
  return ok ? 'met' : 'MISSED';
}

function spread(s: Samples, f: (n: number) => string): string {
  return s.samples.length > 1 ? `${f(s.min)}–${f(s.max)}` : '';
}

export function formatQueueReport(r: QueueBenchResult): string {
  const out: string[] = [];
  const runs = r.options.runs;
  const sizes = r.summary.map((s) => s.size);
  const largest = Math.max(...sizes);
  const smallest = Math.min(...sizes);
  const ref = TARGETS.reference_disk_lines_per_s;

  out.push(`QUEUE BENCHMARK — medians of ${runs} run${runs === 1 ? '' : 's'} (range min–max), every measurement in a fresh temp workspace.`);
  out.push('ratio = tasks/s ÷ disk lines/s (200-byte lines, fdatasync every 100) measured in the same temp dir just before.');
  out.push(`Target ratios = absolute target ÷ ${fmtInt(ref)} lines/s (the disk of docs/PERFORMANCE.md). Status: absolute / ratio.`);
  out.push(
    `drain: runWorker once, concurrency ${r.policy.drain.concurrency}, no-op worker; fail-once: same, throws on attempt 1, backoff_base_ms ${r.policy.fail_once.backoff_base_ms}; enqueue: ${fmtInt(r.policy.enqueue_batch)} tasks per call.`,
  );
  out.push('');
  out.push('1. Disk baseline (lines/s; median of the baselines of all measurements at that size)');
  out.push('   cpu probe: JSON encode+crc32+parse of a 200-byte record, /s — the queue is CPU-bound, so a low probe or a load average');
  out.push('   above 2 (2 cores) means neighbours took CPU and the tasks/s below are low for that reason, not the disk.');
  out.push(
    table(
      ['size block', 'fdatasync/100 lines', 'range', 'fdatasync each line', 'range', 'no fsync', 'cpu probe', 'range', 'load avg'],
      r.summary.map((s) => [
        fmtSize(s.size),
        fmtInt(s.disk_sync100_lines_per_s.median),
        spread(s.disk_sync100_lines_per_s, fmtInt),
        fmtInt(s.disk_sync1_lines_per_s.median),
        spread(s.disk_sync1_lines_per_s, fmtInt),
        fmtInt(s.disk_nosync_lines_per_s.median),
        fmtInt(s.cpu_lines_per_s.median),
        spread(s.cpu_lines_per_s, fmtInt),
        spread(s.loadavg_1m, (n) => fmtNum(n, 1)) || fmtNum(s.loadavg_1m.median, 1),
      ]),
    ),
  );
  out.push('');

  out.push('2-4, 7. Throughput and cost per task');
  const rows: string[][] = [];
  const thr = (name: string, rate: (s: SizeSummary) => Samples, ratio: (s: SizeSummary) => Samples, target: number, load?: (s: SizeSummary) => Samples): void => {
    for (const s of r.summary) {
      const m = rate(s);
      const q = ratio(s);
      const tRatio = target / ref;
      rows.push([
        name,
        fmtSize(s.size),
        fmtInt(m.median),
        spread(m, fmtInt),
        fmtRatio(q.median),
        fmtNum(1e6 / m.median, 2),
        load ? fmtInt(load(s).median) : '',
        `≥${fmtInt(target)} (${fmtRatio(tRatio)})`,
        `${verdict(m.median >= target)} / ${verdict(q.median >= tRatio)}`,
      ]);
    }
  };
  thr(
    'bulk enqueue',
    (s) => s.enqueue_per_s,
    (s) => s.enqueue_ratio,
    TARGETS.enqueue_per_s,
  );
  thr(
    'drain no-op, c8',
    (s) => s.drain_per_s,
    (s) => s.drain_ratio,
    TARGETS.drain_per_s,
    (s) => s.drain_load_ms,
  );
  thr(
    'fail once then ok, c8',
    (s) => s.fail_once_per_s,
    (s) => s.fail_once_ratio,
    TARGETS.fail_once_per_s,
    (s) => s.fail_once_load_ms,
  );
  out.push(table(['measure', 'size', 'tasks/s', 'range', 'ratio', 'µs/task', 'load ms', 'target /s (ratio)', 'status'], rows));
  out.push(`  bulk enqueue: also required ≥${fmtInt(TARGETS.enqueue_required_per_s)}/s.`);
  out.push('  load ms: the first round of a fresh FileQueue (full log replay) before runWorker starts; not in tasks/s.');
  out.push('');

  out.push('5. queue stats: readStats(dir, name, now) on N ready tasks (ms)');
  out.push(
    table(
      ['size', 'log MiB', 'snapshot (fast path)', 'range', 'replay (no stats.json)', 'range', 'replay µs/task', 'status (≤100 ms)'],
      r.summary.map((s) => [
        fmtSize(s.size),
        fmtNum(s.log_mib.median),
        fmtNum(s.stats_snapshot_ms.median, 2),
        spread(s.stats_snapshot_ms, (n) => fmtNum(n, 2)),
        fmtNum(s.stats_replay_ms.median, 0),
        spread(s.stats_replay_ms, (n) => fmtNum(n, 0)),
        fmtNum((s.stats_replay_ms.median * 1000) / s.size, 2),
        `snapshot ${verdict(s.stats_snapshot_ms.median <= TARGETS.stats_ms)}, replay ${verdict(s.stats_replay_ms.median <= TARGETS.stats_ms)}`,
      ]),
    ),
  );
  out.push('');

  out.push('6. Worker RSS: child process opens the FileQueue and claims 1 task (full load) (MB)');
  out.push(
    table(
      ['size', 'RSS', 'range', 'node alone', 'peak RSS', 'queue bytes/task', 'first claim ms', 'status (≤150 MB)'],
      r.summary.map((s) => [
        fmtSize(s.size),
        fmtNum(s.rss_mb.median),
        spread(s.rss_mb, (n) => fmtNum(n)),
        fmtNum(s.rss_before_mb.median),
        fmtNum(s.max_rss_mb.median),
        fmtInt(((s.rss_mb.median - s.rss_before_mb.median) * 2 ** 20) / s.size),
        fmtInt(s.rss_load_ms.median),
        `${verdict(s.rss_mb.median <= TARGETS.rss_mb)} (peak ${verdict(s.max_rss_mb.median <= TARGETS.rss_mb)})`,
      ]),
    ),
  );
  out.push('');

  out.push('Time per part (median s of one run; the setup enqueues of B and C not shown)');
  out.push(
    table(
      ['size', 'enqueue', 'stats replay', 'RSS child', 'drain load+run', 'fail-once load+run', 'whole run (setup incl.)'],
      r.summary.map((s) => {
        const rs = r.runs.filter((x) => x.size === s.size);
        const m = (f: (x: QueueRun) => number): string => fmtNum(median(rs.map(f)) / 1000, 2);
        return [
          fmtSize(s.size),
          m((x) => x.enqueue.ms),
          m((x) => x.stats.replay_ms),
          m((x) => x.rss.load_ms),
          m((x) => x.drain.load_ms + x.drain.ms),
          m((x) => x.fail_once.load_ms + x.fail_once.ms),
          fmtNum(s.wall_s.median, 1),
        ];
      }),
    ),
  );
  out.push('');

  out.push(...formatPeers(r));

  if (r.summary.length > 1) {
    const lo = r.summary.find((s) => s.size === smallest)!;
    const hi = r.summary.find((s) => s.size === largest)!;
    const row = (name: string, f: (s: SizeSummary) => number, digits = 2): string[] => [name, ...r.summary.map((s) => fmtNum(f(s), digits)), `${fmtNum(f(hi) / f(lo), 2)}×`];
    out.push(`7. Cost per task by size (µs/task of wall time and of this process's CPU; growth = ${fmtSize(largest)} ÷ ${fmtSize(smallest)}, 1.00× = flat)`);
    out.push(
      table(
        ['measure', ...r.summary.map((s) => fmtSize(s.size)), 'growth'],
        [
          row('bulk enqueue', (s) => 1e6 / s.enqueue_per_s.median),
          row('drain no-op, c8', (s) => 1e6 / s.drain_per_s.median),
          row('fail once then ok, c8', (s) => 1e6 / s.fail_once_per_s.median),
          row('bulk enqueue, CPU', (s) => s.enqueue_cpu_us.median),
          row('drain no-op, c8, CPU', (s) => s.drain_cpu_us.median),
          row('fail once then ok, c8, CPU', (s) => s.fail_once_cpu_us.median),
          row('load (replay) in worker', (s) => (s.drain_load_ms.median * 1000) / s.size),
          row('stats replay', (s) => (s.stats_replay_ms.median * 1000) / s.size),
        ],
      ),
    );
    const g = (f: (s: SizeSummary) => number): number => f(hi) / f(lo);
    const flat = [g((s) => 1 / s.enqueue_per_s.median), g((s) => 1 / s.drain_per_s.median), g((s) => 1 / s.fail_once_per_s.median)];
    const flatCpu = [g((s) => s.enqueue_cpu_us.median), g((s) => s.drain_cpu_us.median), g((s) => s.fail_once_cpu_us.median)];
    out.push(`  target: flat within ${FLAT_WITHIN}× (bulk enqueue, drain, fail-once): wall ${verdict(flat.every((x) => x <= FLAT_WITHIN))}, CPU ${verdict(flatCpu.every((x) => x <= FLAT_WITHIN))}`);
    out.push('  (wall time follows the load of the minute each size ran in; the CPU a task costs is what the load disturbs least)');
  }
  return out.join('\n');
}

const PEER_LABEL: Record<PeerName, string> = { sqlite: 'SQLite', 'bullmq-everysec': 'BullMQ everysec', 'bullmq-always': 'BullMQ always' };
const MEASURES = [
  { key: 'enqueue', name: 'bulk enqueue', ours: (r: QueueRun) => r.enqueue.tasks_per_s, peer: (p: PeerRun) => p.enqueue_per_s },
  { key: 'drain', name: 'drain no-op, c8', ours: (r: QueueRun) => r.drain.tasks_per_s, peer: (p: PeerRun) => p.drain_per_s },
  { key: 'fail_once', name: 'fail once then ok, c8', ours: (r: QueueRun) => r.fail_once.tasks_per_s, peer: (p: PeerRun) => p.fail_once_per_s },
] as const;

/** Median over the runs of our figure ÷ the peer's in that run (null when the peer was not run). */
export function peerRatio(r: QueueBenchResult, size: number, measure: 'enqueue' | 'drain' | 'fail_once', peer: PeerName): Samples | null {
  const m = MEASURES.find((x) => x.key === measure)!;
  const xs = r.runs.filter((x) => x.size === size && x.peers[peer]).map((x) => m.ours(x) / m.peer(x.peers[peer]!));
  return xs.length ? summarize(xs) : null;
}

function formatPeers(r: QueueBenchResult): string[] {
  const out: string[] = [];
  const info = r.peer_info;
  const sizes = r.summary.map((s) => s.size).filter((n) => r.runs.some((x) => x.size === n && Object.keys(x.peers).length > 0));
  out.push("8. Against peers measured in the same run (tasks/s, medians; ratio = ours ÷ the peer's in the same run, median over runs)");
  out.push(
    `   SQLite ${info.sqlite ?? '—'} (better-sqlite3, WAL, synchronous FULL; a transaction per ${fmtInt(ENQUEUE_BATCH)}-task batch; claim with UPDATE … RETURNING, completes and retries in the claim's transaction, ack window ${SQLITE_ACK_WINDOW_MS} ms);`,
  );
  out.push(
    `   BullMQ ${info.bullmq ?? '—'} on redis-server ${info.redis ?? '—'} started by the bench, AOF on (appendfsync everysec: up to 1 s of acks lost on power loss; always: durable), RDB off; retry without backoff.`,
  );
  for (const n of info.notes) out.push(`   note: ${n}`);
  if (sizes.length === 0) return [...out, ''];
  const rows: string[][] = [];
  for (const m of MEASURES) {
    for (const size of sizes) {
      const rs = r.runs.filter((x) => x.size === size);
      const sum = r.summary.find((s) => s.size === size)!;
      const cells = [m.name, fmtSize(size), fmtInt(median(rs.map(m.ours)))];
      for (const peer of PEERS) {
        const ps = rs.filter((x) => x.peers[peer]).map((x) => m.peer(x.peers[peer]!));
        const ratio = peerRatio(r, size, m.key, peer);
        cells.push(ps.length ? fmtInt(median(ps)) : '—', ratio ? `${fmtNum(ratio.median, 2)}×` : '—');
      }
      cells.push(fmtInt(sum.disk_sync100_lines_per_s.median));
      const targets = PEER_TARGETS.filter((t) => t.measure === m.key).map((t) => {
        const q = peerRatio(r, size, m.key, t.peer);
        return `${PEER_LABEL[t.peer]} ≥${t.min}×: ${q ? verdict(q.median >= t.min) : 'not run'}`;
      });
      cells.push(targets.join('; '));
      rows.push(cells);
    }
  }
  out.push(table(['measure', 'size', 'metaspn', 'SQLite', '÷', 'BullMQ everysec', '÷', 'BullMQ always', '÷', 'disk lines/s', 'targets'], rows));
  out.push('   disk lines/s: 200-byte lines appended, fdatasync every 100, in the same runs (the ratios of section 2-4 are to this).');
  out.push('');
  return out;
}
