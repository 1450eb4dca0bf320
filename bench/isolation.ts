/**
 * What each handler isolation costs (`worker run --isolation none|thread|process`): the time per
 * no-op task once the isolates are warm, its overhead over `none`, the start-up of one isolate
 * (spawn, module load, init: paid once per slot) and the memory of one. The queue is a list in
 * memory that hands tasks out in order, so the figures are the runner's and the host's alone: a
 * real queue adds its own per-task cost (bench/queue.ts) to every mode alike.
 *
 * A second workload writes one row per task through an artifact store opened in `init`, 8 tasks
 * at once, as the Season 1 and chaos workers do: in process the 8 share one store and its group
 * commit; isolated, each slot opens its own and their fsyncs no longer batch.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { resolvePolicy } from '../src/config/policy.js';
import type { ClaimedTask, Queue, TaskRecord } from '../src/queue/types.js';
import { inProcessHost, type HandlerHost, type Isolation } from '../src/runtime/isolation/host.js';
import { isolatedHost } from '../src/runtime/isolation/pool.js';
import { runWorker } from '../src/runtime/runner.js';
import type { WorkerDefinition } from '../src/runtime/worker-api.js';
import { workspacePaths } from '../src/storage/paths.js';
import { pathToFileURL } from 'node:url';
import { fmtNum, median, progress, settle, sleep, table, withTempWorkspace } from './lib.js';

const MODES: readonly Isolation[] = ['none', 'thread', 'process'];
const CONCURRENCIES = [1, 4];

export interface IsolationRun {
  isolation: Isolation;
  concurrency: number;
  run: number;
  tasks: number;
  /** Wall time per task once every slot is warm. */
  per_task_us: number;
  /** The first task of a fresh host: spawn, load and init of one isolate, then the task. */
  first_task_ms: number;
  /** Resident memory one warm slot adds (threads: this process's growth, approximate; processes: the children's RSS). */
  rss_per_slot_mb: number | null;
}

export interface StoreRun {
  isolation: Isolation;
  run: number;
  tasks: number;
  concurrency: number;
  per_task_us: number;
}

export interface IsolationBenchResult {
  tasks: number;
  runs: IsolationRun[];
  store: StoreRun[];
}

const STORE_CONCURRENCY = 8;

/** A worker that writes one row per task through a store opened in init (ctx.env.file names it). */
function storeWriterModule(): string {
  const store = pathToFileURL(join(import.meta.dirname, '..', 'src', 'storage', 'store', 'artifact-store.js')).href;
  return `import { ArtifactStore } from ${JSON.stringify(store)};
export class StoreWriter {
  name = 'store_writer';
  init(ctx) { this.store = new ArtifactStore(ctx.env.file); }
  async handle(task) { await this.store.put([{ id: task.id, date: '2026-01-01', p: 'bench', text: JSON.stringify({ id: task.id }) }]); }
  async close() { await this.store?.close(); }
}
`;
}

async function measureStore(mode: Isolation, tasks: number, run: number, dir: string): Promise<StoreRun> {
  const file = join(dir, 'store-writer.mjs');
  const init = { logger: pino({ level: 'silent' }), workspace: workspacePaths(dir), env: { file: join(dir, 'store', `${mode}-${run}.jsonl`) } };
  const mod = (await import(pathToFileURL(file).href)) as { StoreWriter: new () => WorkerDefinition };
  const worker = new mod.StoreWriter();
  if (mode === 'none') await worker.init?.(init);
  const host = hostFor(mode, `${file}:StoreWriter`, worker, init);
  try {
    // Slots started first: what is timed is the writing.
    await drain(host, worker, STORE_CONCURRENCY, STORE_CONCURRENCY, init, 'warm');
    const ms = await drain(host, worker, STORE_CONCURRENCY, tasks, init);
    return { isolation: mode, run, tasks, concurrency: STORE_CONCURRENCY, per_task_us: (ms * 1000) / tasks };
  } finally {
    await host.close();
    if (mode === 'none') await worker.close?.();
  }
}

const NOOP = `export const Noop = { name: 'noop', handle() {} };\n`;

function hostFor(mode: Isolation, spec: string, worker: WorkerDefinition, init: Parameters<typeof isolatedHost>[0]['init']): HandlerHost {
  return mode === 'none' ? inProcessHost(worker) : isolatedHost({ isolation: mode, spec, init });
}

/** The resident memory of this process's children, in MiB (Linux `ps`); null where it cannot be read. */
function childrenRssMb(): number | null {
  try {
    const out = execFileSync('ps', ['-o', 'rss=', '--ppid', String(process.pid)], { encoding: 'utf8' });
    return out.split('\n').reduce((a, l) => a + (Number(l.trim()) || 0), 0) / 1024;
  } catch {
    return null;
  }
}

/** `n` tasks handed out in order, every acknowledgement accepted: a queue that costs next to nothing. */
function listQueue(n: number, prefix = 't'): Pick<Queue, 'claim' | 'start' | 'complete' | 'fail' | 'deadLetter' | 'release' | 'renewLease'> {
  let next = 0;
  const at = new Date(0).toISOString();
  const task = (i: number): TaskRecord => ({ id: `${prefix}${i}`, queue: 'noop', payload: { i }, attempt_count: 0, max_attempts: 1, created_at: at, updated_at: at, errors: [], retries: [] });
  return {
    claim: async ({ max, lease_ms }) => {
      const out: ClaimedTask[] = [];
      for (; out.length < max && next < n; next++) out.push({ task: task(next), lease: { owner: 'bench', fence: 1, expires_at: Date.now() + lease_ms } });
      return out;
    },
    start: async () => true,
    complete: async () => true,
    fail: async () => 'dead',
    deadLetter: async () => true,
    release: async () => true,
    renewLease: async () => true,
  };
}

async function drain(host: HandlerHost, worker: WorkerDefinition, concurrency: number, n: number, init: Parameters<typeof isolatedHost>[0]['init'], prefix = 't'): Promise<number> {
  const queue = listQueue(n, prefix);
  const t0 = performance.now();
  const sum = await runWorker({
    queue,
    worker,
    host,
    owner: { id: 'bench', pid: process.pid, host: 'bench' },
    policy: resolvePolicy({ concurrency, stop_failure_ratio: 0 }),
    once: true,
    init,
    stop: new AbortController().signal,
    now: Date.now,
    sleep,
    random: Math.random,
  });
  const ms = performance.now() - t0;
  if (sum.completed !== n) throw new Error(`isolation bench: ${sum.completed} of ${n} tasks completed`);
  return ms;
}

async function measure(mode: Isolation, concurrency: number, tasks: number, run: number, dir: string): Promise<IsolationRun> {
  const file = join(dir, 'noop.mjs');
  const worker: WorkerDefinition = { name: 'noop', handle: () => undefined };
  const init = { logger: pino({ level: 'silent' }), workspace: workspacePaths(dir), env: {} };
  await settle();
  const rss0 = process.memoryUsage().rss;
  const children0 = childrenRssMb();
  const host = hostFor(mode, `${file}:Noop`, worker, init);
  try {
    const first_task_ms = await drain(host, worker, 1, 1, init);
    // Every slot started and warm (JIT included) before the timed batch.
    await drain(host, worker, concurrency, Math.max(200, tasks / 10), init);
    await settle();
    const rssThreads = (process.memoryUsage().rss - rss0) / 2 ** 20 / concurrency;
    const children = childrenRssMb();
    const rss_per_slot_mb = mode === 'thread' ? rssThreads : mode === 'process' ? (children === null || children0 === null ? null : (children - children0) / concurrency) : null;
    const ms = await drain(host, worker, concurrency, tasks, init);
    return { isolation: mode, concurrency, run, tasks, per_task_us: (ms * 1000) / tasks, first_task_ms, rss_per_slot_mb };
  } finally {
    await host.close();
  }
}

export async function runIsolationBench(o: { runs: number; tasks: number; storeTasks: number }): Promise<IsolationBenchResult> {
  const runs: IsolationRun[] = [];
  const store: StoreRun[] = [];
  await withTempWorkspace('isolation', async (dir) => {
    writeFileSync(join(dir, 'noop.mjs'), NOOP);
    writeFileSync(join(dir, 'store-writer.mjs'), storeWriterModule());
    for (let r = 1; r <= o.runs; r++) {
      // Modes interleaved within a run, so a noisy moment hits all of them alike.
      for (const c of CONCURRENCIES) {
        for (const mode of MODES) {
          progress(`isolation ${mode}, concurrency ${c}, run ${r}/${o.runs}: ${o.tasks} no-op tasks`);
          runs.push(await measure(mode, c, o.tasks, r, dir));
        }
      }
      for (const mode of MODES) {
        progress(`isolation ${mode}, store writer, concurrency ${STORE_CONCURRENCY}, run ${r}/${o.runs}: ${o.storeTasks} tasks`);
        store.push(await measureStore(mode, o.storeTasks, r, dir));
      }
    }
  });
  return { tasks: o.tasks, runs, store };
}

export function formatIsolationReport(res: IsolationBenchResult): string {
  const rows: string[][] = [];
  for (const c of CONCURRENCIES) {
    const base = median(res.runs.filter((r) => r.isolation === 'none' && r.concurrency === c).map((r) => r.per_task_us));
    for (const mode of MODES) {
      const rs = res.runs.filter((r) => r.isolation === mode && r.concurrency === c);
      const per = median(rs.map((r) => r.per_task_us));
      const rss = rs.map((r) => r.rss_per_slot_mb).filter((v): v is number => v !== null);
      rows.push([mode, String(c), fmtNum(per, 1), mode === 'none' ? '-' : `+${fmtNum(per - base, 1)}`, fmtNum(median(rs.map((r) => r.first_task_ms)), 1), rss.length ? fmtNum(median(rss), 1) : '-']);
    }
  }
  return [
    `Handler isolation: ${res.tasks} no-op tasks per run on a queue that costs next to nothing, medians of ${Math.max(...res.runs.map((r) => r.run))} run(s)`,
    table(['isolation', 'concurrency', 'us/task', 'overhead us/task', 'first task ms', 'MB per slot'], rows),
    'overhead: over `none` at the same concurrency; first task: a fresh isolate is spawned, loads the module and runs init (once per slot).',
    '',
    `A worker writing one row per task through a store opened in init, ${STORE_CONCURRENCY} at once (${res.store[0]?.tasks ?? 0} tasks a run):`,
    table(
      ['isolation', 'us/task', 'vs none'],
      MODES.map((mode) => {
        const per = median(res.store.filter((r) => r.isolation === mode).map((r) => r.per_task_us));
        const base = median(res.store.filter((r) => r.isolation === 'none').map((r) => r.per_task_us));
        return [mode, fmtNum(per, 0), mode === 'none' ? '-' : `x${fmtNum(per / base, 1)}`];
      }),
    ),
    'in process the slots share one store and its group commit; isolated, each slot has its own and their fsyncs do not batch.',
  ].join('\n');
}
