// The chaos suites' shared harness: real CLI processes, killed and restarted, and the checks that
// say whether the workspace came out whole. Scale comes from the environment (see scale()), so the
// same suites run short in `npm test` and long in `npm run chaos`.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';
import { mulberry32 } from '../scripts/gen-signals.js';
import type { Finding as DoctorFinding } from '../src/doctor/finding.js';
import type { QueueStats } from '../src/queue/types.js';
import { exit, start, type Proc, type Run } from '../test/integration/cli.js';
import { cliIn } from '../test/integration/in-process.js';

export { mulberry32 };

/**
 * A fresh workspace for one suite: removed when the test passes, kept (and its path printed) when
 * it fails or when CHAOS_KEEP=1. `signals` goes to inputs/s1_signals.jsonl.
 */
export function chaosWorkspace(o: { signals?: string; under?: string } = {}): string {
  const dir = mkdtempSync(join(o.under ?? tmpdir(), 'metaspn-chaos-'));
  mkdirSync(join(dir, 'inputs'), { recursive: true });
  if (o.signals !== undefined) writeFileSync(join(dir, 'inputs', 's1_signals.jsonl'), o.signals);
  onTestFinished((ctx) => {
    if (ctx.task.result?.state === 'pass' && process.env.CHAOS_KEEP !== '1') rmSync(dir, { recursive: true, force: true });
    else process.stderr.write(`kept chaos workspace: ${dir}\n`);
  });
  return dir;
}

/** The four Season 1 artifact files. */
export const STORE_FILES = ['s1_attention_scores.jsonl', 's1_reward_projections.jsonl', 's1_settlements.jsonl', 's1_summaries.jsonl'];
/** The four Season 1 queues. */
export const STAGES = ['update_attention_scores', 'project_rewards', 'settle_season', 'publish_season_summary'];

/** A line of a stack trace as Node prints it: bad input must never show one. */
export const STACK = /\n\s+at \S+ \(|\n\s+at (file|node):/;

export interface Scale {
  /** True under `npm run chaos` (long runs); false in `npm test`. */
  full: boolean;
  /** The crash suite's iterations (and the base of the others' repetition counts). */
  iterations: number;
  /** Seed of every random choice of a suite (printed, so a failure can be replayed). */
  seed: number;
}

/**
 * The scale of this run: CHAOS_FULL=1 and CHAOS_ITERATIONS=N come from `npm run chaos`
 * (chaos/run.mjs); CHAOS_SEED replays a run. In `npm test`: 20 iterations, a random seed.
 */
export function scale(): Scale {
  const full = process.env.CHAOS_FULL === '1';
  const iterations = Number(process.env.CHAOS_ITERATIONS ?? (full ? 200 : 20));
  const seed = process.env.CHAOS_SEED !== undefined ? Number(process.env.CHAOS_SEED) : Math.floor(Math.random() * 2 ** 31);
  if (!Number.isSafeInteger(iterations) || iterations < 1) throw new Error(`CHAOS_ITERATIONS must be a whole number >= 1, got ${process.env.CHAOS_ITERATIONS}`);
  if (!Number.isSafeInteger(seed)) throw new Error(`CHAOS_SEED must be an integer, got ${process.env.CHAOS_SEED}`);
  return { full, iterations, seed };
}

/** A seeded random source with the helpers the suites use. */
export class Rng {
  private readonly next: () => number;
  constructor(readonly seed: number) {
    this.next = mulberry32(seed);
  }
  float(): number {
    return this.next();
  }
  /** A whole number in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
}

export { start, type Proc, type Run } from '../test/integration/cli.js';

/** Waits for the process; one still running after `ms` is killed and fails the caller. */
export const finish = (p: Proc, ms = 120_000): Promise<Run> => exit(p, ms);

/** Runs the CLI to its end without blocking the test process. */
export function run(args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv; ms?: number } = {}): Promise<Run> {
  return finish(start(args, o), o.ms);
}

/**
 * Runs the CLI in the test's own process (test/integration/in-process.ts): for the steps around the
 * chaos whose process adds nothing (re-runs after a kill, stats, doctor), at none of the ~0.5 s of
 * CPU a CLI process spends loading. What is killed, stopped or raced stays a process of its own.
 */
export const runIn = (args: string[], o: { env?: NodeJS.ProcessEnv; ms?: number } = {}): Promise<Run> => cliIn(args, o);

export function alive(p: Proc): boolean {
  return p.child.exitCode === null && p.child.signalCode === null;
}

/** SIGKILLs the process (if still running) and waits until it is gone. */
export async function kill(p: Proc): Promise<Run> {
  if (alive(p)) p.child.kill('SIGKILL');
  return finish(p, 20_000);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** sha256 of each store file ('missing' when absent). */
export function storeHashes(ws: string): string[] {
  return STORE_FILES.map((f) =>
    existsSync(join(ws, 'store', f))
      ? createHash('sha256')
          .update(readFileSync(join(ws, 'store', f)))
          .digest('hex')
      : 'missing',
  );
}

/** Ids that appear more than once in a store file, per file (empty lists when all are unique). */
export function duplicateIds(ws: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const f of STORE_FILES) {
    const path = join(ws, 'store', f);
    const seen = new Set<string>();
    const dupes: string[] = [];
    if (existsSync(path)) {
      for (const line of readFileSync(path, 'utf8').split('\n')) {
        if (!line) continue;
        let id: unknown;
        try {
          id = (JSON.parse(line) as { id?: unknown }).id;
        } catch {
          continue;
        }
        if (typeof id !== 'string') continue;
        if (seen.has(id)) dupes.push(id);
        seen.add(id);
      }
    }
    out[f] = dupes;
  }
  return out;
}

export type Stats = Pick<QueueStats, 'queue' | 'ready' | 'scheduled' | 'leased' | 'completed' | 'dead' | 'corrupt_records'>;

/** Queues that still hold work (ready, scheduled, leased) or dead letters: empty when every queue drained (read in this process). */
export async function undrained(ws: string, queues = STAGES): Promise<Stats[]> {
  const out: Stats[] = [];
  for (const q of queues) {
    const r = await runIn(['queue', 'stats', q, '--workspace', ws, '--json']);
    if (r.code !== 0) throw new Error(`queue stats ${q} exited ${r.code}: ${r.stderr}`);
    const s = JSON.parse(r.stdout) as Stats;
    if (s.ready || s.scheduled || s.leased || s.dead) out.push(s);
  }
  return out;
}

export type { DoctorFinding };

export interface DoctorResult {
  code: number | null;
  findings: DoctorFinding[];
  stderr: string;
}

/** `metaspn doctor [--repair] --json` (in this process). */
export async function doctor(ws: string, repair = false): Promise<DoctorResult> {
  const r = await runIn(['doctor', '--workspace', ws, '--json', ...(repair ? ['--repair'] : [])]);
  let findings: DoctorFinding[] = [];
  try {
    findings = (JSON.parse(r.stdout) as { findings: DoctorFinding[] }).findings;
  } catch {
    throw new Error(`doctor${repair ? ' --repair' : ''} printed no JSON (exit ${r.code}): ${r.stdout}\n${r.stderr}`);
  }
  return { code: r.code, findings, stderr: r.stderr };
}

/** Findings that are not info: what a clean workspace has none of. */
export function problems(d: DoctorResult): DoctorFinding[] {
  return d.findings.filter((f) => f.severity !== 'info' && !f.repaired);
}

export function lines(path: string): string[] {
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean) : [];
}

/** Every JSON event of the workspace log. */
export function logEvents(ws: string): Record<string, unknown>[] {
  return lines(join(ws, 'logs', 'metaspn.jsonl')).flatMap((l) => {
    try {
      return [JSON.parse(l) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}

/** Files under `dir`, recursively, relative to it. */
export function filesUnder(dir: string, base = dir): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? filesUnder(join(dir, d.name), base) : [join(dir, d.name).slice(base.length + 1)]));
}

/** Quantiles of a list of numbers (ms), rounded. */
export function summarize(xs: readonly number[]): { n: number; min: number; p50: number; p95: number; max: number; mean: number } {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number): number => Math.round(s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0);
  return { n: s.length, min: Math.round(s[0] ?? 0), p50: q(0.5), p95: q(0.95), max: Math.round(s[s.length - 1] ?? 0), mean: Math.round(s.reduce((a, b) => a + b, 0) / (s.length || 1)) };
}

/**
 * Records a suite's figures: printed, and under `npm run chaos` also written to
 * CHAOS_RESULTS/<suite>.json for docs/RELIABILITY.md.
 */
export function report(suite: string, figures: Record<string, unknown>): void {
  const dir = process.env.CHAOS_RESULTS;
  const body = { suite, at: new Date().toISOString(), ...figures };
  process.stdout.write(`chaos ${suite}: ${JSON.stringify(body)}\n`);
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${suite}.json`), `${JSON.stringify(body, null, 2)}\n`);
}
