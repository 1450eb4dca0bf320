// Crash suite (promises 1, 2, 4, 5): `s1 run-local` and `s1 backfill` SIGKILLed at a random moment,
// then run again to completion, many times over on one workspace. At the end the store must be
// byte-identical to a clean run's, with no id twice, every queue drained and doctor clean.
import { generateSignals } from '../scripts/gen-signals.js';
import { chaosWorkspace, doctor, duplicateIds, kill, problems, Rng, run, runIn, sleep, start, storeHashes, summarize, undrained, type DoctorFinding, type Stats } from './lib.js';

export interface CrashOptions {
  /** How many kill-and-rerun rounds. */
  iterations: number;
  seed: number;
  /** Subjects of the generated input (signals: 20 each, over `days` days from 2026-01-01). */
  subjects?: number;
  days?: number;
}

/** Something that went wrong in one round: kept with its round so it can be replayed. */
export interface Anomaly {
  iteration: number;
  what: string;
  detail: string;
}

export interface CrashFigures {
  mode: 'run-local' | 'backfill';
  seed: number;
  iterations: number;
  subjects: number;
  dates: string[];
  /** Wall time of each clean run (ms): the kill delay is drawn in [0, this). */
  clean_ms: ReturnType<typeof summarize>;
  /** Kill delays drawn (ms). */
  delay_ms: ReturnType<typeof summarize>;
  /** Rounds where the kill landed before the run finished, and where the run beat it. */
  killed: number;
  finished_before_kill: number;
  /** Wall time of the re-runs (ms). */
  rerun_ms: ReturnType<typeof summarize>;
  /** Exit codes of the re-runs: all 0 when the promises hold. */
  rerun_exit_codes: Record<string, number>;
  store_identical: boolean;
  duplicate_ids: number;
  undrained: Stats[];
  doctor_exit: number | null;
  doctor_problems: DoctorFinding[];
  anomalies: Anomaly[];
  duration_ms: number;
}

const tally = (xs: readonly (number | null)[]): Record<string, number> => xs.reduce<Record<string, number>>((a, x) => ({ ...a, [String(x)]: (a[String(x)] ?? 0) + 1 }), {});

function signalsFor(subjects: number, days: number, seed: number): string {
  return `${generateSignals({ subjects, perSubject: 20, start: '2026-01-01', days, seed: seed % 1000 }).join('\n')}\n`;
}

/** One round's commands: the dates it covers, and its argv. */
interface Job {
  label: string;
  /** `resume`: the round's re-run may pass --resume (backfill). */
  args: (ws: string, resume: boolean) => string[];
}

async function crashLoop(mode: 'run-local' | 'backfill', jobs: Job[], o: CrashOptions): Promise<CrashFigures> {
  const t0 = performance.now();
  const rng = new Rng(o.seed);
  const subjects = o.subjects ?? 30;
  const signals = signalsFor(subjects, o.days ?? 10, o.seed);

  // The reference: the same inputs and jobs, once each, in a fresh workspace; their durations bound the kill delays.
  const clean = chaosWorkspace({ signals });
  const cleanMs = new Map<string, number>();
  for (const job of jobs) {
    const r = await run(job.args(clean, false));
    if (r.code !== 0) throw new Error(`clean ${job.label} exited ${r.code}: ${r.stderr}`);
    cleanMs.set(job.label, r.ms);
  }

  const ws = chaosWorkspace({ signals });
  const anomalies: Anomaly[] = [];
  const delays: number[] = [];
  const reruns: number[] = [];
  const codes: (number | null)[] = [];
  let killed = 0;
  let beat = 0;
  for (let i = 0; i < o.iterations; i++) {
    const job = jobs[i % jobs.length]!;
    const delay = rng.float() * cleanMs.get(job.label)!;
    delays.push(delay);
    const p = start(job.args(ws, false));
    await sleep(delay);
    const k = await kill(p);
    if (k.signal === 'SIGKILL') killed++;
    else {
      beat++;
      if (k.code !== 0) anomalies.push({ iteration: i, what: `${job.label}: the run that beat the kill exited ${k.code}`, detail: k.stderr.trim() });
    }
    // The re-run needs no process of its own: what must survive is the killed one's state.
    const r = await runIn(job.args(ws, i % 2 === 1));
    reruns.push(r.ms);
    codes.push(r.code);
    if (r.code !== 0) anomalies.push({ iteration: i, what: `${job.label}: re-run after a kill at ${Math.round(delay)} ms exited ${r.code}`, detail: r.stderr.trim() });
  }

  const identical = storeHashes(ws).join() === storeHashes(clean).join();
  if (!identical)
    anomalies.push({
      iteration: o.iterations,
      what: 'store files differ from the clean run',
      detail: `chaos ${storeHashes(ws).join(' ')} clean ${storeHashes(clean).join(' ')} (workspaces ${ws} ${clean})`,
    });
  const dupes = Object.values(duplicateIds(ws)).flat();
  const left = await undrained(ws);
  const d = await doctor(ws);
  return {
    mode,
    seed: o.seed,
    iterations: o.iterations,
    subjects,
    dates: jobs.map((j) => j.label),
    clean_ms: summarize([...cleanMs.values()]),
    delay_ms: summarize(delays),
    killed,
    finished_before_kill: beat,
    rerun_ms: summarize(reruns),
    rerun_exit_codes: tally(codes),
    store_identical: identical,
    duplicate_ids: dupes.length,
    undrained: left,
    doctor_exit: d.code,
    doctor_problems: problems(d),
    anomalies,
    duration_ms: Math.round(performance.now() - t0),
  };
}

/** Dates 2026-01-03 … of the generated season. */
export function crashDates(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `2026-01-${String(i + 3).padStart(2, '0')}`);
}

/** `s1 run-local` over a few dates in turn, each round killed at random and re-run. */
export function crashRunLocal(o: CrashOptions & { dates?: string[] }): Promise<CrashFigures> {
  const dates = o.dates ?? crashDates(4);
  return crashLoop(
    'run-local',
    dates.map((date) => ({ label: date, args: (ws) => ['s1', 'run-local', '--workspace', ws, '--date', date] })),
    o,
  );
}

/** `s1 backfill` over a short range (two dates at once), each round killed at random and re-run (every other re-run with --resume). */
export function crashBackfill(o: CrashOptions & { start?: string; end?: string }): Promise<CrashFigures> {
  const s = o.start ?? '2026-01-03';
  const e = o.end ?? '2026-01-05';
  return crashLoop(
    'backfill',
    [{ label: `${s}..${e}`, args: (ws, resume) => ['s1', 'backfill', '--workspace', ws, '--start', s, '--end', e, '--max-parallel', '2', ...(resume ? ['--resume'] : [])] }],
    o,
  );
}
