/**
 * A small driver for profiling one queue scenario, with a breakdown of where a FileQueue round
 * spends its time (wall clock around the round's steps, by wrapping methods at run time: nothing
 * in src/ is changed). Run it under `node --cpu-prof` for a CPU profile.
 *
 *   node dist/bench/profile-queue.js --mode drain --size 20000
 *   node --cpu-prof --cpu-prof-dir=bench-results/prof dist/bench/profile-queue.js --mode fail --size 20000
 *
 * Modes: enqueue, drain, fail, stats (replay), load (fresh FileQueue replay).
 * Options: --size N, --concurrency C, --ack-window MS, --backoff-base MS, --batch N (enqueue),
 *          --warm N (first enqueue, drain and fail once N tasks in other workspaces, as the bench's
 *          warm-up and earlier runs do before what it times: V8's state after a drain),
 *          --no-instrument (plain run: the wrappers add latency to every round, which lowers throughput),
 *          --light (count rounds, time compactions and reloads only),
 *          --compact-min BYTES (FileQueue compact_min_bytes; 1000M effectively turns compaction off),
 *          --repeat N (before the measured run, N - 1 runs of a drain and a fail once, each on a fresh queue,
 *          as the bench's runs do; the profiles and the breakdown are of the last),
 *          --cpuprof FILE (a .cpuprofile of the measured part only, through node:inspector),
 *          --heapprof FILE (a sampling heap profile of the measured part, objects collected meanwhile
 *          included: what was allocated, not what is left; `node dist/bench/heapprofile-summary.js FILE`).
 */
import fs, { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import type { QueuePolicy } from '../src/config/policy.js';
import { FileQueue } from '../src/queue/file/file-queue.js';
import { QueueLogFile } from '../src/queue/file/log-file.js';
import { RoundEngine } from '../src/queue/file/rounds.js';
import { readStats, StatsWriter } from '../src/queue/file/stats-file.js';
import type { NewTask } from '../src/queue/types.js';
import type { RunSummary } from '../src/runtime/runner.js';
import type { WorkerDefinition } from '../src/runtime/worker-api.js';
import { queueDir, workspacePaths } from '../src/storage/paths.js';
import { policyWith } from './queue.js';
import { drainOnce, fmtInt, fmtNum, nowMs, parseCount, perSecond, table, withTempWorkspace } from './lib.js';

interface Opts {
  mode: 'enqueue' | 'drain' | 'fail' | 'stats' | 'load';
  size: number;
  concurrency: number;
  ackWindow: number | undefined;
  backoffBase: number;
  batch: number;
  /** Tasks to enqueue, drain and fail once first, in other workspaces (0: none). */
  warm: number;
  instrument: boolean;
  /** Only count rounds and time compactions (the full wrappers slow every round and change how acks batch). */
  light: boolean;
  /** FileQueue compact_min_bytes (default: the FileQueue default); a huge value turns compaction off. */
  compactMin: number | undefined;
  /** Write a CPU profile of the measured part only (not the setup) to this file. */
  cpuprof: string | null;
  /** Write a sampling heap profile (allocations, collected ones included) of the measured part to this file. */
  heapprof: string | null;
  /** Drain (or fail once) this many times in the process, each on a fresh queue of `size` tasks (as the bench's runs do); the profiles are of the last. */
  repeat: number;
}

function parse(argv: string[]): Opts {
  const o: Opts = {
    mode: 'drain',
    size: 20_000,
    concurrency: 8,
    ackWindow: undefined,
    backoffBase: 1,
    batch: 10_000,
    warm: 0,
    instrument: true,
    light: false,
    compactMin: undefined,
    cpuprof: null,
    heapprof: null,
    repeat: 1,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${a} needs a value`);
      return x;
    };
    if (a === '--mode') o.mode = v() as Opts['mode'];
    else if (a === '--size') o.size = parseCount(v());
    else if (a === '--concurrency') o.concurrency = parseCount(v());
    else if (a === '--ack-window') o.ackWindow = Number(v());
    else if (a === '--backoff-base') o.backoffBase = Number(v());
    else if (a === '--batch') o.batch = parseCount(v());
    else if (a === '--warm') o.warm = parseCount(v());
    else if (a === '--no-instrument') o.instrument = false;
    else if (a === '--light') o.light = true;
    else if (a === '--compact-min') o.compactMin = parseCount(v());
    else if (a === '--cpuprof') o.cpuprof = v();
    else if (a === '--heapprof') o.heapprof = v();
    else if (a === '--repeat') o.repeat = parseCount(v());
    else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

// ---- instrumentation ----

interface Bucket {
  calls: number;
  ms: number;
}
const buckets = new Map<string, Bucket>();
const opsPerRound: number[] = [];
const kindsPerRound = new Map<string, number>();

function add(name: string, ms: number): void {
  const b = buckets.get(name) ?? { calls: 0, ms: 0 };
  b.calls++;
  b.ms += ms;
  buckets.set(name, b);
}

type AnyFn = (...args: unknown[]) => unknown;

function wrapMethod(proto: object, name: string, label: string): void {
  const p = proto as Record<string, AnyFn>;
  const orig = p[name];
  if (typeof orig !== 'function') throw new Error(`no method ${name}`);
  p[name] = function (this: unknown, ...args: unknown[]): unknown {
    const t0 = nowMs();
    const out = orig.apply(this, args);
    if (out instanceof Promise) return out.finally(() => add(label, nowMs() - t0));
    add(label, nowMs() - t0);
    return out;
  };
}

function instrument(light: boolean): void {
  const fq = RoundEngine.prototype as unknown as Record<string, AnyFn>;
  const lf = QueueLogFile.prototype as unknown as Record<string, AnyFn>;
  const origRun = fq.runRound!;
  fq.runRound = function (this: unknown, ...args: unknown[]): unknown {
    const ops = args[0] as Array<{ kind: string }>;
    opsPerRound.push(ops.length);
    const kinds = [...new Set(ops.map((o) => o.kind))].sort().join('+');
    kindsPerRound.set(kinds, (kindsPerRound.get(kinds) ?? 0) + 1);
    return origRun.apply(this, args);
  };
  wrapMethod(lf, 'compact', 'QueueLogFile.compact (compaction)');
  wrapMethod(lf, 'reload', 'QueueLogFile.reload (full replay)');
  if (light) return;
  // Synchronous fs calls the queue makes, wrapped in node:fs and re-exported to ESM importers.
  const f = fs as unknown as Record<string, AnyFn>;
  for (const name of ['fdatasyncSync', 'fstatSync', 'readdirSync', 'writeSync', 'readSync', 'existsSync', 'mkdirSync', 'openSync', 'statSync']) {
    const orig = f[name]!;
    f[name] = function (this: unknown, ...args: unknown[]): unknown {
      const t0 = nowMs();
      try {
        return orig.apply(this, args);
      } finally {
        add(`fs.${name}`, nowMs() - t0);
      }
    };
  }
  syncBuiltinESMExports();
  wrapMethod(fq, 'runRound', 'RoundEngine.runRound (whole round)');
  wrapMethod(fq, 'roundLocked', 'RoundEngine.roundLocked (under lock)');
  wrapMethod(lf, 'catchUp', 'QueueLogFile.catchUp');
  wrapMethod(StatsWriter.prototype, 'snapshot', 'StatsWriter.snapshot');
}

/** The queue's cross-process mutex is a private field: found by shape, so this survives refactors. */
function instrumentMutex(queue: FileQueue): void {
  for (const v of Object.values(queue as unknown as Record<string, unknown>)) {
    const m = v as { acquire?: unknown; releaseLock?: unknown } | null;
    if (m && typeof m === 'object' && typeof m.acquire === 'function' && typeof m.releaseLock === 'function') {
      wrapMethod(m, 'acquire', 'mutex.acquire (kernel lock)');
      wrapMethod(m, 'releaseLock', 'mutex.releaseLock (kernel lock)');
      return;
    }
  }
  console.warn('profile: no mutex field found on FileQueue');
}

function report(totalMs: number, tasks: number): void {
  const rows = [...buckets.entries()]
    .sort((a, b) => b[1].ms - a[1].ms)
    .map(([k, b]) => [k, fmtInt(b.calls), fmtNum(b.ms, 1), fmtNum((b.ms * 1000) / b.calls, 1), fmtNum((b.ms * 1000) / tasks, 2), `${fmtNum((100 * b.ms) / totalMs, 1)}%`]);
  console.log(table(['where', 'calls', 'total ms', 'µs/call', 'µs/task', '% of wall'], rows));
  if (opsPerRound.length) {
    const s = [...opsPerRound].sort((a, b) => a - b);
    const sum = s.reduce((x, y) => x + y, 0);
    console.log(
      `\nrounds ${fmtInt(s.length)}: ops/round mean ${fmtNum(sum / s.length, 2)}, median ${s[s.length >> 1]}, p90 ${s[Math.floor(s.length * 0.9)]}, max ${s[s.length - 1]}; rounds/s ${fmtInt(perSecond(s.length, totalMs))}`,
    );
    const kinds = [...kindsPerRound.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8);
    console.log(`round kinds: ${kinds.map(([k, n]) => `${k}=${fmtInt(n)}`).join(', ')}`);
  }
}

// ---- CPU profile of the measured part ----

let session: Session | null = null;

async function startProfile(o: Opts): Promise<void> {
  if (!o.cpuprof && !o.heapprof) return;
  session = new Session();
  session.connect();
  if (o.cpuprof) {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 200 });
    await session.post('Profiler.start');
  }
  if (o.heapprof) {
    await session.post('HeapProfiler.enable');
    await session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  }
}

async function stopProfile(o: Opts): Promise<void> {
  if (!session) return;
  if (o.cpuprof) {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(o.cpuprof, JSON.stringify(profile));
    console.log(`cpu profile: ${o.cpuprof}`);
  }
  if (o.heapprof) {
    const { profile } = await session.post('HeapProfiler.stopSampling');
    writeFileSync(o.heapprof, JSON.stringify(profile));
    console.log(`heap profile: ${o.heapprof}`);
  }
  session.disconnect();
  session = null;
}

// ---- scenarios ----

const QUEUE = 'bench';

function tasks(from: number, to: number): NewTask[] {
  const out: NewTask[] = [];
  for (let i = from; i < to; i++) out.push({ id: `t${i}`, payload: { n: i } });
  return out;
}

/** CPU time (user + system) of this process since `c0`, in ms. */
function cpuMs(c0: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(c0);
  return (d.user + d.system) / 1000;
}
/** The threads there were when this module loaded: the main one and V8's (compilers, GC helpers); libuv's pool, where fdatasync runs, starts at the first file operation. */
const firstThreads = new Set(listThreads());

function listThreads(): string[] {
  try {
    return fs.readdirSync('/proc/self/task');
  } catch {
    return [];
  }
}

/**
 * CPU ms of this process's threads, by kind: `main` (JavaScript, and the GC's own part), `v8` (V8's
 * worker threads: optimizing compilers, concurrent marking and sweeping), `pool` (libuv's pool:
 * fdatasync and the other file calls), from /proc/self/task/<tid>/stat (10 ms ticks); empty where
 * /proc is not there.
 */
function threadCpu(): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of listThreads()) {
    try {
      const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const kind = tid === String(process.pid) ? 'main' : firstThreads.has(tid) ? 'v8' : 'pool';
      out.set(kind, (out.get(kind) ?? 0) + (Number(f[11]) + Number(f[12])) * 10);
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/** The CPU ms by thread spent since `before` (a {@link threadCpu} reading), as `name ms` pairs. */
function threadCpuSince(before: Map<string, number>): string {
  const parts: string[] = [];
  for (const [k, v] of threadCpu()) {
    const d = v - (before.get(k) ?? 0);
    if (d > 0) parts.push(`${k} ${d}`);
  }
  return parts.join(', ');
}

/** CPU time of the last measured enqueue, ms. */
let lastCpu = 0;

async function enqueue(ws: string, size: number, batch: number, policy: QueuePolicy, inst = false): Promise<number> {
  const q = new FileQueue({ workspace: ws, name: QUEUE, max_attempts: policy.max_attempts, ack_window_ms: policy.ack_window_ms });
  if (inst) instrumentMutex(q);

  const t0 = nowMs();
  const c0 = process.cpuUsage();
  for (let i = 0; i < size; i += batch) await q.enqueue(tasks(i, Math.min(size, i + batch)));
  const ms = nowMs() - t0;
  lastCpu = cpuMs(c0);
  await q.close();
  return ms;
}

const failOnce: WorkerDefinition = {
  name: QUEUE,
  handle: (_t, ctx) => {
    if (ctx.attempt === 1) throw new Error('fails on attempt 1');
  },
};

/** Enqueues, drains and fails once `size` tasks in workspaces of their own, as the bench's warm-up does. */
async function warmUp(size: number, policy: QueuePolicy): Promise<void> {
  for (const worker of [{ name: QUEUE, handle: () => undefined } as WorkerDefinition, failOnce]) {
    await withTempWorkspace('profile-warm', async (ws) => {
      await enqueue(ws, size, 10_000, policy);
      const queue = new FileQueue({ workspace: ws, name: QUEUE, max_attempts: policy.max_attempts, ack_window_ms: policy.ack_window_ms });
      try {
        await drainOnce(queue, worker, policy, ws, worker === failOnce ? { nextDue: async () => (await queue.stats()).next_due_at } : {});
      } finally {
        await queue.close();
      }
    });
  }
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const policy = policyWith({
    concurrency: o.concurrency,
    backoff_base_ms: o.backoffBase,
    ...(o.ackWindow !== undefined ? { ack_window_ms: o.ackWindow } : {}),
  });
  await withTempWorkspace('profile', async (ws) => {
    if (o.warm > 0) await warmUp(o.warm, policy);
    if (o.mode === 'drain' || o.mode === 'fail') await earlierRuns(o, policy);
    if (o.mode === 'enqueue') {
      if (o.instrument) instrument(o.light);
      await startProfile(o);
      const ms = await enqueue(ws, o.size, o.batch, policy, o.instrument && !o.light);
      await stopProfile(o);
      console.log(
        `enqueue ${fmtInt(o.size)} in batches of ${fmtInt(o.batch)}: ${fmtNum(ms, 0)} ms, ${fmtInt(perSecond(o.size, ms))} tasks/s, cpu ${fmtNum(lastCpu, 0)} ms (${fmtNum((lastCpu * 1000) / o.size, 1)} µs/task)`,
      );
      if (o.instrument) report(ms, o.size);
      return;
    }
    await enqueue(ws, o.size, 10_000, policy);
    if (o.mode === 'stats') {
      const dir = queueDir(workspacePaths(ws), QUEUE);
      fs.rmSync(join(dir, 'stats.json'), { force: true });
      if (o.instrument) instrument(o.light);
      await startProfile(o);
      const t0 = nowMs();
      const s = readStats(dir, QUEUE, Date.now());
      const ms = nowMs() - t0;
      await stopProfile(o);
      console.log(`readStats replay of ${fmtInt(o.size)} tasks: ${fmtNum(ms, 0)} ms (${s.source}, ready ${s.ready})`);
      if (o.instrument) report(ms, o.size);
      return;
    }
    if (o.instrument) instrument(o.light);
    const queue = new FileQueue({
      workspace: ws,
      name: QUEUE,
      max_attempts: policy.max_attempts,
      ack_window_ms: policy.ack_window_ms,
      ...(o.compactMin !== undefined ? { compact_min_bytes: o.compactMin } : {}),
    });
    if (o.instrument && !o.light) instrumentMutex(queue);
    if (o.mode === 'load') await startProfile(o);
    const t0 = nowMs();
    await queue.stats();
    const loadMs = nowMs() - t0;
    if (o.mode === 'load') await stopProfile(o);
    if (o.mode === 'load') {
      console.log(`load (fresh FileQueue, full replay) of ${fmtInt(o.size)} tasks: ${fmtNum(loadMs, 0)} ms`);
      if (o.instrument) report(loadMs, o.size);
      await queue.close();
      return;
    }
    buckets.clear();
    opsPerRound.length = 0;
    kindsPerRound.clear();
    const sum = await timedDrain(queue, ws, o, policy, loadMs, true);
    if (o.instrument) report(lastDrainMs, sum.completed);
  });
}

/** Wall ms of the last {@link timedDrain}. */
let lastDrainMs = 0;

/** Drains (or fails once) `queue` with runWorker, timed, and prints a line of it; with `profiled`, under the profiles asked for. */
async function timedDrain(queue: FileQueue, ws: string, o: Opts, policy: QueuePolicy, loadMs: number, profiled: boolean): Promise<RunSummary> {
  const worker: WorkerDefinition = o.mode === 'fail' ? failOnce : { name: QUEUE, handle: () => undefined };
  if (profiled) await startProfile(o);
  const threads = threadCpu();
  const t1 = nowMs();
  const c1 = process.cpuUsage();
  const sum = await drainOnce(queue, worker, policy, ws, o.mode === 'fail' ? { nextDue: async () => (await queue.stats()).next_due_at } : {});
  const ms = (lastDrainMs = nowMs() - t1);
  const cpu = cpuMs(c1);
  const byThread = threadCpuSince(threads);
  if (profiled) await stopProfile(o);
  await queue.close();
  console.log(
    `${o.mode} ${fmtInt(o.size)} tasks, concurrency ${o.concurrency}, ack window ${policy.ack_window_ms} ms: ${fmtNum(ms, 0)} ms, ${fmtInt(perSecond(sum.completed, ms))} tasks/s, cpu ${fmtNum(cpu, 0)} ms (${fmtNum((cpu * 1000) / sum.completed, 1)} µs/task; by thread, ms: ${byThread}) (load ${fmtNum(loadMs, 0)} ms) ${JSON.stringify(sum)}`,
  );
  return sum;
}

/**
 * The bench's earlier runs: `repeat - 1` times a drain and a fail once of `size` tasks, each on a
 * fresh queue and printed, in the bench's order (its part B, then C), before the measured one.
 */
async function earlierRuns(o: Opts, policy: QueuePolicy): Promise<void> {
  for (let r = 1; r < o.repeat; r++) {
    for (const mode of ['drain', 'fail'] as const) {
      await withTempWorkspace('profile-run', async (ws) => {
        await enqueue(ws, o.size, 10_000, policy);
        const queue = new FileQueue({ workspace: ws, name: QUEUE, max_attempts: policy.max_attempts, ack_window_ms: policy.ack_window_ms });
        const t0 = nowMs();
        await queue.stats();
        await timedDrain(queue, ws, { ...o, mode }, policy, nowMs() - t0, false);
      });
    }
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
