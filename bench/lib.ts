/**
 * Small helpers shared by the benchmarks (bench/queue.ts now, bench/s1.ts later): argument parsing,
 * temp workspaces, timing, medians, the disk baseline and table printing.
 *
 * The machine is shared and noisy, so every benchmark reports medians of N runs and ratios against
 * a disk baseline measured in the same run, in the same temp dir.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, fdatasyncSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { crc32 } from 'node:zlib';
import { pino } from 'pino';
import type { QueuePolicy } from '../src/config/policy.js';
import { makeOwner } from '../src/queue/owner.js';
import type { NewTask, Queue } from '../src/queue/types.js';
import { runWorker, type RunnerDeps, type RunSummary } from '../src/runtime/runner.js';
import { workspacePaths } from '../src/storage/paths.js';

export interface BenchArgs {
  runs: number;
  sizes: number[];
  quick: boolean;
  /** `--full`: the large sizes too (queue 1M with every peer, the example pipeline at 100k players). */
  full: boolean;
  /** A discarded pass at a small size first, so the JIT and the page cache are warm. */
  warmup: boolean;
  /** Benchmarks to run (`queue`, later `s1`); empty means all. */
  only: string[];
  /** Where the JSON results go. */
  outDir: string;
  /** Season 1 sizes (signals); its own, as its targets are at 1M signals. */
  s1Sizes: number[];
  /** Run the peers (SQLite, BullMQ) beside our queue. */
  peers: boolean;
  /** Peers run at queue sizes up to this many tasks (BullMQ at 1M takes the better part of an hour). */
  peerMax: number;
  /** BullMQ with appendfsync always at sizes up to this (its fail-once runs at a few hundred tasks/s). */
  bullAlwaysMax: number;
  /** PostgreSQL backend task counts (`--pg-sizes`; default 10k,100k, with --full 1M too). */
  pgSizes: number[];
  /** Tasks in the queue whose `queue stats` latency is measured after churn (`--pg-stats-size`; default 1M, --quick 100k). */
  pgStatsSize: number;
}

const DEFAULT_SIZES = [20_000, 100_000];
const FULL_SIZES = [20_000, 100_000, 1_000_000];
const QUICK_SIZES = [20_000];
const S1_SIZES = [100_000, 1_000_000];
const S1_QUICK_SIZES = [10_000, 100_000];
const PEER_MAX = 100_000;
const BULL_ALWAYS_MAX = 20_000;
const PG_SIZES = [10_000, 100_000];
const PG_FULL_SIZES = [10_000, 100_000, 1_000_000];
const PG_QUICK_SIZES = [10_000];

const USAGE = `usage: npm run bench -- [--runs N] [--sizes 20k,100k] [--full] [--quick] [--only queue,s1,pipeline,isolation] [--out DIR]
  --runs N        runs per measurement; medians are reported (default 3)
  --sizes LIST    queue task counts, comma separated; k and M suffixes allowed (default 20k,100k)
  --full          queue sizes 20k,100k,1M and the peers at all of them (about an hour; BullMQ at 1M is most of it);
                  the example pipeline at 100,000 players too (about 5 minutes)
  --peer-max N    run the peers (SQLite, BullMQ) at queue sizes up to N (default 100k; our queue runs at every size)
  --bull-always-max N  BullMQ with appendfsync always only up to N tasks (default 20k: its fail-once runs at a few hundred/s)
  --no-peers      our queue alone
  --s1-sizes LIST Season 1 signal counts (default 100k,1M)
  --quick         queue 20k, Season 1 10k,100k, 1 run (explicit flags still win)
  --no-warmup     skip the discarded warm-up pass
  --pg-sizes LIST PostgreSQL backend task counts (default 10k,100k; --full adds 1M), beside graphile-worker; run when
                  127.0.0.1:5432 or METASPN_BENCH_DATABASE_URL answers
  --pg-stats-size N  tasks in the queue whose \`queue stats\` latency is measured after churn (default 1M; --quick 100k;
                  0: skip it and the worker RSS part)
  --only NAMES    comma-separated benchmarks to run (queue, s1, pipeline, isolation, pg)
  --out DIR       results directory (default bench-results)`;

/** Parses `10000`, `10k`, `1M`, `1_000_000`. */
export function parseCount(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([kKmM]?)$/.exec(s.trim().replace(/_/g, ''));
  if (!m) throw new Error(`not a count: "${s}"`);
  const mult = m[2] === '' ? 1 : m[2]!.toLowerCase() === 'k' ? 1_000 : 1_000_000;
  const n = Math.round(Number(m[1]) * mult);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`not a positive count: "${s}"`);
  return n;
}

export function parseArgs(argv: readonly string[]): BenchArgs {
  let runs: number | null = null;
  let sizes: number[] | null = null;
  let quick = false;
  let warmup = true;
  let only: string[] = [];
  let outDir = 'bench-results';
  let full = false;
  let s1Sizes: number[] | null = null;
  let peers = true;
  let peerMax: number | null = null;
  let bullAlwaysMax: number | null = null;
  let pgSizes: number[] | null = null;
  let pgStatsSize: number | null = null;
  const list = (v: string): number[] =>
    v
      .split(',')
      .filter((x) => x.trim() !== '')
      .map(parseCount);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value\n${USAGE}`);
      return v;
    };
    switch (flag) {
      case '--runs':
        runs = parseCount(value());
        break;
      case '--sizes':
        sizes = value()
          .split(',')
          .filter((s) => s.trim() !== '')
          .map(parseCount);
        break;
      case '--quick':
        quick = true;
        break;
      case '--full':
        full = true;
        break;
      case '--s1-sizes':
        s1Sizes = list(value());
        break;
      case '--no-peers':
        peers = false;
        break;
      case '--peer-max':
        peerMax = parseCount(value());
        break;
      case '--bull-always-max':
        bullAlwaysMax = parseCount(value());
        break;
      case '--pg-sizes':
        pgSizes = list(value());
        break;
      case '--pg-stats-size':
        pgStatsSize = ((v) => (v.trim() === '0' ? 0 : parseCount(v)))(value());
        break;
      case '--no-warmup':
        warmup = false;
        break;
      case '--only':
        only = value()
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        break;
      case '--out':
        outDir = value();
        break;
      case '-h':
      case '--help':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument "${a}"\n${USAGE}`);
    }
  }
  return {
    runs: runs ?? (quick ? 1 : 3),
    sizes: sizes ?? (quick ? QUICK_SIZES : full ? FULL_SIZES : DEFAULT_SIZES),
    quick,
    full,
    warmup,
    only,
    outDir,
    s1Sizes: s1Sizes ?? (quick ? S1_QUICK_SIZES : S1_SIZES),
    peers,
    peerMax: peerMax ?? (full ? Number.POSITIVE_INFINITY : PEER_MAX),
    bullAlwaysMax: bullAlwaysMax ?? (full ? Number.POSITIVE_INFINITY : BULL_ALWAYS_MAX),
    pgSizes: pgSizes ?? (quick ? PG_QUICK_SIZES : full ? PG_FULL_SIZES : PG_SIZES),
    pgStatsSize: pgStatsSize ?? (quick ? 100_000 : 1_000_000),
  };
}

// ---- statistics ----

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function minOf(xs: readonly number[]): number {
  return xs.length ? Math.min(...xs) : Number.NaN;
}

export function maxOf(xs: readonly number[]): number {
  return xs.length ? Math.max(...xs) : Number.NaN;
}

/** Samples of one quantity over N runs, with their median. */
export interface Samples {
  median: number;
  min: number;
  max: number;
  samples: number[];
}

export function summarize(xs: readonly number[]): Samples {
  return { median: median(xs), min: minOf(xs), max: maxOf(xs), samples: [...xs] };
}

// ---- timing ----

/** Tasks per enqueue call in every queue bench (ours on files and on PostgreSQL). */
export const ENQUEUE_BATCH = 10_000;

/** No-op tasks `t<from>` … `t<to - 1>`, payload `{n}`: what every queue bench enqueues. */
export function noopTasks(from: number, to: number): NewTask[] {
  const out: NewTask[] = [];
  for (let i = from; i < to; i++) out.push({ id: `t${i}`, payload: { n: i } });
  return out;
}

/**
 * Enqueues `size` no-op tasks on an open queue, ENQUEUE_BATCH per call; returns the ms of the calls.
 * @throws Error when an id was already present (a bench queue starts empty).
 */
export async function timedEnqueue(q: Pick<Queue, 'enqueue'>, size: number): Promise<number> {
  const t0 = nowMs();
  for (let i = 0; i < size; i += ENQUEUE_BATCH) {
    const r = await q.enqueue(noopTasks(i, Math.min(size, i + ENQUEUE_BATCH)));
    if (r.existing.length) throw new Error(`enqueue: ${r.existing.length} ids unexpectedly present`);
  }
  return nowMs() - t0;
}

export function nowMs(): number {
  return performance.now();
}

/** Runs `fn` and returns its result with the elapsed milliseconds. */
export async function timed<T>(fn: () => Promise<T> | T): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - t0 };
}

export function perSecond(count: number, ms: number): number {
  return ms > 0 ? (count * 1000) / ms : Number.POSITIVE_INFINITY;
}

/**
 * One worker loop over `queue` until it is drained (`once`), as every bench runs it: this process
 * as the owner, a silent logger, the real clock and sleep. `workspace` is what handlers see (a
 * database bench passes a folder that does not exist); `extra` adds or overrides deps (`nextDue`,
 * `prefetch`, `host`, `init`, `owner`).
 */
export function drainOnce(queue: RunnerDeps['queue'], worker: RunnerDeps['worker'], policy: QueuePolicy, workspace: string, extra: Partial<RunnerDeps> = {}): Promise<RunSummary> {
  return runWorker({
    queue,
    worker,
    owner: makeOwner(),
    policy,
    once: true,
    init: { logger: pino({ level: 'silent' }), workspace: workspacePaths(workspace), env: {} },
    stop: new AbortController().signal,
    now: Date.now,
    sleep,
    random: Math.random,
    ...extra,
  });
}

/** A real sleep that ends early (resolving, not rejecting) when `signal` aborts: what runWorker expects. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

let gcFn: (() => void) | null | undefined;

/** A handle on V8's gc without --expose-gc on the command line (the flag set at run time, gc fetched from a fresh context). */
function getGc(): (() => void) | null {
  if (gcFn !== undefined) return gcFn;
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return (gcFn = exposed);
  try {
    setFlagsFromString('--expose-gc');
    gcFn = runInNewContext('gc') as () => void;
  } catch {
    gcFn = null;
  }
  return gcFn;
}

/** Collects garbage and gives the event loop a turn, so one measurement does not pay for the last one's garbage. */
export async function settle(): Promise<void> {
  getGc()?.();
  await new Promise((r) => setImmediate(r));
}

/**
 * Writes back the dirty pages of earlier steps (`sync`), so their writeback does not land inside
 * the next measurement: a 1M-task setup leaves ~250 MB dirty, which otherwise halves the disk
 * baseline or the drain measured right after it.
 */
export function flushDirty(): void {
  try {
    execFileSync('sync', [], { stdio: 'ignore' });
  } catch {
    // No sync(1): measurements are only noisier.
  }
}

/** Which code was measured: HEAD and a digest of the uncommitted changes (the tree is shared and moves). */
export function gitState(cwd = process.cwd()): { head: string | null; dirty_files: string[]; diff_sha1: string | null } {
  const git = (args: string[]): string | null => {
    try {
      return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 << 20 });
    } catch {
      return null;
    }
  };
  const head = git(['rev-parse', 'HEAD'])?.trim() ?? null;
  const status = git(['status', '--porcelain', '--', 'src', 'workers', 'bench']);
  const diff = git(['diff', 'HEAD', '--', 'src']);
  return {
    head,
    dirty_files: status
      ? status
          .split('\n')
          .filter(Boolean)
          .map((l) => l.slice(3))
      : [],
    diff_sha1: diff === null ? null : createHash('sha1').update(diff).digest('hex'),
  };
}

// ---- temp workspaces ----

/** A fresh temp workspace under os.tmpdir(), removed after `fn` whatever happens. */
export async function withTempWorkspace<T>(label: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), `metaspn-bench-${label}-`));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- disk baseline ----

export interface DiskBaseline {
  /** 200-byte lines appended one write each, fdatasync every 100 lines. */
  sync100_lines_per_s: number;
  /** 200-byte lines, append + fdatasync every line. */
  sync1_lines_per_s: number;
  /** 200-byte lines appended, no fsync (page cache only), for context. */
  nosync_lines_per_s: number;
}

export const LINE_BYTES = 200;

function line200(i: number): string {
  const head = `{"i":${i},"pad":"`;
  const tail = '"}\n';
  return head + 'x'.repeat(LINE_BYTES - head.length - tail.length) + tail;
}

function appendLines(path: string, lines: number, syncEvery: number): number {
  const fd = openSync(path, 'a');
  try {
    const t0 = performance.now();
    for (let i = 0; i < lines; i++) {
      writeSync(fd, line200(i));
      if (syncEvery > 0 && (i + 1) % syncEvery === 0) fdatasyncSync(fd);
    }
    if (syncEvery > 0 && lines % syncEvery !== 0) fdatasyncSync(fd);
    return perSecond(lines, performance.now() - t0);
  } finally {
    closeSync(fd);
  }
}

/**
 * What the disk allows, measured in `dir` (the temp workspace of the measurement it is compared
 * with). Each test appends to a fresh file, which is removed after.
 */
export function measureDisk(dir: string, opts: { sync100Lines?: number; sync1Lines?: number; nosyncLines?: number } = {}): DiskBaseline {
  const d = join(dir, 'disk-baseline');
  mkdirSync(d, { recursive: true });
  const run = (name: string, lines: number, every: number): number => {
    const p = join(d, name);
    writeFileSync(p, '');
    try {
      return appendLines(p, lines, every);
    } finally {
      rmSync(p, { force: true });
    }
  };
  try {
    const sync100 = run('sync100.log', opts.sync100Lines ?? 100_000, 100);
    const sync1 = run('sync1.log', opts.sync1Lines ?? 1_500, 1);
    const nosync = run('nosync.log', opts.nosyncLines ?? 200_000, 0);
    return { sync100_lines_per_s: sync100, sync1_lines_per_s: sync1, nosync_lines_per_s: nosync };
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
}

// ---- CPU probe ----

/**
 * A fixed CPU-bound job close to what the queue does per record (JSON.stringify, crc32, JSON.parse
 * of a 200-byte record), in lines/s. The disk ratio cannot see a busy CPU; this and the load average
 * can: on a shared 2-core machine a neighbour's build halves both.
 */
export function measureCpu(lines = 100_000): number {
  const t0 = performance.now();
  let sink = 0;
  for (let i = 0; i < lines; i++) {
    const body = JSON.stringify({ t: 'enq', n: i, at: 1_700_000_000_000 + i, task: { id: `t${i}`, payload: { n: i }, attempt_count: 0, errors: [] } });
    sink ^= crc32(body);
    sink ^= (JSON.parse(body) as { n: number }).n;
  }
  const ms = performance.now() - t0;
  if (sink === 0.5) console.log(sink); // keep the loop from being optimized away
  return perSecond(lines, ms);
}

export interface Baseline extends DiskBaseline {
  /** measureCpu() in the same process just before. */
  cpu_lines_per_s: number;
  /** 1-minute load average when measured (2 cores: above 2 means others are running). */
  loadavg_1m: number;
}

/** Disk, CPU and machine load, measured in `dir` just before a measurement. */
export function measureBaseline(dir: string): Baseline {
  const disk = measureDisk(dir);
  return { ...disk, cpu_lines_per_s: measureCpu(), loadavg_1m: loadavg()[0] ?? 0 };
}

// ---- formatting ----

export function fmtInt(n: number): string {
  if (!Number.isFinite(n)) return n > 0 ? '∞' : '—';
  return Math.round(n).toLocaleString('en-US');
}

export function fmtNum(n: number, digits = 1): string {
  if (!Number.isFinite(n)) return '—';
  return n.toFixed(digits);
}

export function fmtSize(n: number): string {
  if (n === Number.POSITIVE_INFINITY) return 'any size';
  if (n >= 1_000_000 && n % 1_000_000 === 0) return `${n / 1_000_000}M`;
  if (n >= 1_000 && n % 1_000 === 0) return `${n / 1_000}k`;
  return String(n);
}

export function fmtRatio(r: number): string {
  if (!Number.isFinite(r)) return '—';
  return r >= 10 ? `${r.toFixed(1)}×` : `${r.toFixed(3)}×`;
}

/** A plain-text table: first column left-aligned, the others right-aligned. */
export function table(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [fmt(headers), rule, ...rows.map(fmt)].join('\n');
}

export function timestamp(d = new Date()): string {
  return d.toISOString().replace(/[:.]/g, '-');
}

/** Progress lines go to stderr so stdout holds only the tables. */
export function progress(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

/** A profile's script URL, short: from dist/ or node_modules/ on (profile summaries). */
export function shortUrl(url: string): string {
  const i = url.indexOf('/dist/');
  if (i >= 0) return url.slice(i + 1);
  const n = url.indexOf('/node_modules/');
  if (n >= 0) return url.slice(n + 1);
  return url.replace(/^file:\/\//, '');
}
