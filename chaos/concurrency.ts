// Concurrency suite (promises 1, 2, 3): four `worker run` processes, one enqueuer and one
// `queue retry` loop on one queue, workers SIGKILLed and restarted at random, the enqueuer
// sometimes killed mid-batch and its batch sent again. Every task must complete, every artifact
// exist exactly once; duplicate executions (at-least-once) are counted and reported.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../test/integration/cli.js';
import { alive, chaosWorkspace, doctor, finish, kill, problems, Rng, run, runIn, sleep, start, type DoctorFinding, type Proc, type Stats } from './lib.js';

export const CHAOS_WORKER = `${join(ROOT, 'chaos', 'fixtures', 'workers.mjs')}:ExactlyOnce`;
const QUEUE = 'chaos';

export interface ConcurrencyOptions {
  tasks: number;
  seed: number;
  /** Worker processes. Default 4. */
  workers?: number;
  /** Tasks per `queue enqueue --file` call. Default 1000. */
  batch?: number;
  /** Every n-th task is poison until retried (a contract error the retry loop must revive). Default 97. */
  poisonEvery?: number;
  /** A worker is killed every [killMin, killMax] ms. Default 200..1200. */
  killMinMs?: number;
  killMaxMs?: number;
  /** Give up (and fail) after this long. */
  timeoutMs: number;
}

export interface ConcurrencyFigures {
  seed: number;
  tasks: number;
  workers: number;
  poison: number;
  worker_kills: number;
  enqueue_kills: number;
  enqueue_calls: number;
  retry_calls: number;
  retried_from_dead_letters: number;
  /** Every `start` line of executions.log. */
  executions: number;
  /** Executions beyond one per task, and of those the ones a poison task's dead-letter round explains. */
  extra_executions: number;
  extra_executions_by_poison: number;
  /** Executions that found their artifact already written: the work was done twice in effect (at-least-once). */
  duplicate_effects: number;
  max_executions_of_one_task: number;
  /** Tasks completed in the queue, and their artifacts. */
  completed: number;
  artifacts: number;
  duplicate_artifacts: string[];
  missing_artifacts: string[];
  /** Tasks completed without a finished execution: silent loss. */
  completed_without_execution: string[];
  final_stats: Stats | null;
  worker_exit_codes: Record<string, number>;
  doctor_exit: number | null;
  doctor_problems: DoctorFinding[];
  anomalies: string[];
  duration_ms: number;
  tasks_per_sec: number;
  /** Stretches (> 1 s) with no artifact written while tasks remained: how long a kill can stall the others. */
  stalls_over_1s: number;
  longest_stall_ms: number;
}

const taskId = (i: number): string => `t${String(i).padStart(6, '0')}`;

export async function concurrencySuite(o: ConcurrencyOptions): Promise<ConcurrencyFigures> {
  const t0 = performance.now();
  const rng = new Rng(o.seed);
  const nWorkers = o.workers ?? 4;
  const batch = o.batch ?? 1000;
  const poisonEvery = o.poisonEvery ?? 97;
  const ws = chaosWorkspace();
  const anomalies: string[] = [];
  const ids = Array.from({ length: o.tasks }, (_, i) => taskId(i));
  const poison = new Set(ids.filter((_, i) => i % poisonEvery === poisonEvery - 1));

  const workerArgs = ['worker', 'run', CHAOS_WORKER, '--workspace', ws, '--concurrency', '8', '--poll-ms', '50'];
  const workers: Proc[] = Array.from({ length: nWorkers }, () => start(workerArgs));
  const exitCodes: (number | null)[] = [];
  let workerKills = 0;
  let enqueueKills = 0;
  let enqueueCalls = 0;
  let retryCalls = 0;
  let retried = 0;
  let enqueued = false;
  let drained = false;
  let last: Stats | null = null;
  const deadline = Date.now() + o.timeoutMs;

  const enqueuer = (async () => {
    for (let b = 0; b < o.tasks; b += batch) {
      const file = join(ws, `batch-${b}.jsonl`);
      writeFileSync(
        file,
        ids
          .slice(b, b + batch)
          .map((id, k) => `${JSON.stringify({ id, payload: { n: b + k, ...(poison.has(id) ? { poison: true } : {}) } })}\n`)
          .join(''),
      );
      const args = ['queue', 'enqueue', QUEUE, '--workspace', ws, '--file', file, '--json'];
      if (rng.float() < 0.2) {
        // Killed mid-batch: what it acknowledged is durable, and sending the batch again adds the rest once.
        const p = start(args);
        enqueueCalls++;
        await sleep(rng.int(0, 400));
        const k = await kill(p);
        if (k.signal === 'SIGKILL') enqueueKills++;
      }
      const r = await run(args);
      enqueueCalls++;
      if (r.code !== 0) anomalies.push(`enqueue of batch ${b} exited ${r.code}: ${r.stderr.trim()}`);
      else {
        const res = JSON.parse(r.stdout) as { added: string[]; existing: string[] };
        if (res.added.length + res.existing.length !== Math.min(batch, o.tasks - b)) anomalies.push(`enqueue of batch ${b}: ${res.added.length} added + ${res.existing.length} existing`);
      }
    }
    enqueued = true;
  })();

  const retrier = (async () => {
    while (!drained && Date.now() < deadline) {
      if (existsSync(join(ws, 'queue', QUEUE))) {
        const r = await run(['queue', 'retry', QUEUE, '--workspace', ws, '--json']);
        retryCalls++;
        if (r.code !== 0) anomalies.push(`queue retry exited ${r.code}: ${r.stderr.trim()}`);
        else retried += (JSON.parse(r.stdout) as { retried: string[] }).retried.length;
      }
      await sleep(rng.int(100, 400));
    }
  })();

  // A kill only once the tasks moved since the last one: a worker needs about a second to start on
  // a loaded 2-core machine, several under heavy load, and kills faster than that starved the drain.
  let completedNow = 0;
  let completedAtKill = -1;
  const killer = (async () => {
    while (!drained && Date.now() < deadline) {
      await sleep(rng.int(o.killMinMs ?? 200, o.killMaxMs ?? 1200));
      if (drained) break;
      if (completedNow === completedAtKill) continue;
      completedAtKill = completedNow;
      const i = rng.int(0, nWorkers - 1);
      const w = workers[i]!;
      const k = await kill(w);
      if (k.signal === 'SIGKILL') workerKills++;
      else {
        exitCodes.push(k.code);
        anomalies.push(`worker ${w.child.pid} exited by itself with ${k.code}: ${k.stderr.trim().slice(-500)}`);
      }
      workers[i] = start(workerArgs);
    }
  })();

  while (Date.now() < deadline) {
    await sleep(300);
    if (!existsSync(join(ws, 'queue', QUEUE))) continue;
    // Read in this process (the only command that runs here): a CLI process every 300 ms cost more CPU than the workers.
    const r = await runIn(['queue', 'stats', QUEUE, '--workspace', ws, '--json']);
    if (r.code !== 0) {
      anomalies.push(`queue stats exited ${r.code}: ${r.stderr.trim()}`);
      continue;
    }
    last = JSON.parse(r.stdout) as Stats;
    completedNow = last.completed;
    if (enqueued && last.completed === o.tasks && !last.ready && !last.scheduled && !last.leased && !last.dead) break;
  }
  drained = true;
  if (Date.now() >= deadline) anomalies.push(`not drained within ${o.timeoutMs} ms: ${JSON.stringify(last)}`);
  await Promise.all([enqueuer, retrier, killer]);
  // A graceful stop: the first SIGTERM stops claiming; an idle worker exits at once.
  for (const w of workers) if (alive(w)) w.child.kill('SIGTERM');
  for (const w of workers) {
    const r = await finish(w, 30_000).catch(async (err: unknown) => {
      anomalies.push(String(err));
      return kill(w);
    });
    exitCodes.push(r.code ?? (r.signal === 'SIGTERM' ? -15 : null));
    // 0, or 20 when it dead-lettered a poison task, or 11 when it gave a lease back; a worker still
    // starting (no handler yet) dies of the SIGTERM itself, holding nothing.
    if (!(r.code === 0 || r.code === 20 || r.code === 11 || r.signal === 'SIGTERM')) anomalies.push(`worker ${w.child.pid} exited ${r.code} on SIGTERM: ${r.stderr.trim().slice(-500)}`);
  }
  const duration = performance.now() - t0;

  // What happened, from the workers' own log and the store file.
  const starts = new Map<string, number>();
  const wrote = new Map<string, number>();
  let present = 0;
  const wroteAt: number[] = [];
  const execLog = join(ws, 'executions.log');
  for (const line of existsSync(execLog) ? readFileSync(execLog, 'utf8').split('\n') : []) {
    const [kind, id, , , how, at] = line.split(' ');
    if (!id) continue;
    if (kind === 'start') starts.set(id, (starts.get(id) ?? 0) + 1);
    if (kind === 'wrote') {
      wrote.set(id, (wrote.get(id) ?? 0) + 1);
      if (how === 'present') present++;
      if (at) wroteAt.push(Number(at));
    }
  }
  const artifacts = new Map<string, number>();
  const storeFile = join(ws, 'store', 'chaos_artifacts.jsonl');
  for (const line of existsSync(storeFile) ? readFileSync(storeFile, 'utf8').split('\n') : []) {
    if (!line) continue;
    try {
      const id = (JSON.parse(line) as { id: string }).id;
      artifacts.set(id, (artifacts.get(id) ?? 0) + 1);
    } catch {
      anomalies.push(`store line is not JSON: ${line.slice(0, 100)}`);
    }
  }
  wroteAt.sort((a, b) => a - b);
  const gaps = wroteAt
    .slice(1)
    .map((t, i) => t - wroteAt[i]!)
    .filter((g) => g > 1000);
  const executions = [...starts.values()].reduce((a, b) => a + b, 0);
  const d = await doctor(ws);
  const final = await runIn(['queue', 'stats', QUEUE, '--workspace', ws, '--json']);
  const finalStats = final.code === 0 ? (JSON.parse(final.stdout) as Stats) : null;
  return {
    seed: o.seed,
    tasks: o.tasks,
    workers: nWorkers,
    poison: poison.size,
    worker_kills: workerKills,
    enqueue_kills: enqueueKills,
    enqueue_calls: enqueueCalls,
    retry_calls: retryCalls,
    retried_from_dead_letters: retried,
    executions,
    extra_executions: executions - starts.size,
    extra_executions_by_poison: [...poison].filter((id) => (starts.get(id) ?? 0) > 1).length,
    duplicate_effects: present,
    max_executions_of_one_task: Math.max(0, ...starts.values()),
    completed: finalStats?.completed ?? -1,
    artifacts: artifacts.size,
    duplicate_artifacts: [...artifacts].filter(([, n]) => n > 1).map(([id]) => id),
    missing_artifacts: ids.filter((id) => !artifacts.has(id)).slice(0, 20),
    completed_without_execution: ids.filter((id) => !wrote.has(id)).slice(0, 20),
    final_stats: finalStats,
    worker_exit_codes: exitCodes.reduce<Record<string, number>>((a, c) => ({ ...a, [String(c)]: (a[String(c)] ?? 0) + 1 }), {}),
    doctor_exit: d.code,
    doctor_problems: problems(d),
    anomalies,
    duration_ms: Math.round(duration),
    tasks_per_sec: Math.round(o.tasks / (duration / 1000)),
    stalls_over_1s: gaps.length,
    longest_stall_ms: Math.max(0, ...gaps),
  };
}
