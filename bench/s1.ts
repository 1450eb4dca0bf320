/**
 * Season 1 run-local on generated workspaces (10 signals per subject): wall time, tasks/s and
 * peak RSS per size, each run in a fresh child process and a fresh workspace. The ratio is
 * run-local's time over the time this process takes to read and JSON.parse the same input file,
 * measured just before: the least any run must do with it, on the same machine at the same moment.
 * On a shared machine wall time is mostly waiting for a CPU: each run also gives its CPU time
 * (user + system of the child) and the 1-minute load average when it started.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { writeSignalsFile } from '../scripts/gen-signals.js';
import { fmtInt, fmtNum, fmtRatio, median, progress, table, withTempWorkspace } from './lib.js';

const PER_SUBJECT = 10;
const DATE = '2026-01-28';
/** Issue 14's targets at 1M signals / 100k subjects: time as a ratio to the parse of the input, peak RSS, growth 100k → 1M. */
const TARGET_RATIO_1M = 10;
const TARGET_RSS_MB = 512;
const TARGET_GROWTH = 10.5;

export interface S1Run {
  signals: number;
  subjects: number;
  run: number;
  ms: number;
  /** CPU time of the run-local process (user + system), ms. */
  cpu_ms: number;
  /** 1-minute load average when the run started. */
  load: number;
  tasks_per_s: number;
  max_rss_mb: number;
  parse_ms: number;
  /** CPU time of the parse baseline (user + system), ms. */
  parse_cpu_ms: number;
  ratio: number;
  /** CPU ms of the run ÷ CPU ms of the parse: the ratio a loaded machine disturbs least. */
  cpu_ratio: number;
}

export interface S1BenchResult {
  runs: S1Run[];
}

/** Reads and parses every line of the input: the floor under any run-local of it. Wall and CPU ms. */
function parseBaseline(path: string): { ms: number; cpu_ms: number } {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let n = 0;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line) {
      JSON.parse(line);
      n++;
    }
  }
  if (n === 0) throw new Error(`${path} is empty`);
  const cpu = process.cpuUsage(c0);
  return { ms: performance.now() - t0, cpu_ms: (cpu.user + cpu.system) / 1000 };
}

export async function runS1Bench(o: { sizes: number[]; runs: number }): Promise<S1BenchResult> {
  const runs: S1Run[] = [];
  const child = join(import.meta.dirname, 's1-child.js');
  for (const signals of o.sizes) {
    const subjects = Math.max(1, Math.floor(signals / PER_SUBJECT));
    for (let run = 1; run <= o.runs; run++) {
      await withTempWorkspace(`s1-${signals}`, async (dir) => {
        mkdirSync(join(dir, 'inputs'));
        const input = join(dir, 'inputs', 's1_signals.jsonl');
        await writeSignalsFile(input, { subjects, perSubject: PER_SUBJECT, start: '2026-01-01', days: 28, seed: 7 });
        const { ms: parse_ms, cpu_ms: parse_cpu_ms } = parseBaseline(input);
        const load = loadavg()[0]!;
        const r = spawnSync(process.execPath, [child, dir, DATE], { encoding: 'utf8', maxBuffer: 1 << 28, env: { ...process.env, METASPN_LOG_LEVEL: process.env.METASPN_LOG_LEVEL ?? 'info' } });
        const last = r.stderr.trim().split('\n').at(-1) ?? '';
        if (r.status !== 0 || !last.startsWith('{')) throw new Error(`run-local failed at ${signals} signals (exit ${r.status}): ${r.stderr.slice(-800)}`);
        const m = JSON.parse(last) as { ms: number; cpu_ms: number; max_rss_mb: number };
        // Tasks: one per subject for scoring, one per date for the three date-level stages.
        const tasks = subjects + 3;
        const s: S1Run = {
          signals,
          subjects,
          run,
          ms: m.ms,
          cpu_ms: m.cpu_ms,
          load,
          tasks_per_s: (tasks / m.ms) * 1000,
          max_rss_mb: m.max_rss_mb,
          parse_ms,
          parse_cpu_ms,
          ratio: m.ms / parse_ms,
          cpu_ratio: m.cpu_ms / parse_cpu_ms,
        };
        runs.push(s);
        progress(
          `s1 ${fmtInt(signals)} signals run ${run}/${o.runs}: ${fmtNum(m.ms / 1000, 1)} s (CPU ${fmtNum(m.cpu_ms / 1000, 1)} s, load ${fmtNum(load, 1)}), ${fmtInt(s.tasks_per_s)} tasks/s, peak RSS ${fmtNum(m.max_rss_mb, 0)} MB, ${fmtNum(s.ratio, 1)}× the parse of its input (CPU ${fmtNum(s.cpu_ratio, 1)}×)`,
        );
      });
    }
  }
  return { runs };
}

export function formatS1Report(res: S1BenchResult): string {
  const sizes = [...new Set(res.runs.map((r) => r.signals))];
  const med = (n: number, f: (r: S1Run) => number): number => median(res.runs.filter((r) => r.signals === n).map(f));
  const rows = sizes.map((n) => {
    const ms = med(n, (r) => r.ms);
    const rss = med(n, (r) => r.max_rss_mb);
    const ratio = med(n, (r) => r.ratio);
    const verdict = n >= 1_000_000 ? `${ratio <= TARGET_RATIO_1M ? 'met' : 'MISSED'} / ${rss <= TARGET_RSS_MB ? 'met' : 'MISSED'}` : rss <= TARGET_RSS_MB ? 'rss met' : 'rss MISSED';
    return [
      fmtInt(n),
      fmtInt(Math.floor(n / PER_SUBJECT)),
      fmtNum(ms / 1000, 2),
      fmtNum(med(n, (r) => r.cpu_ms) / 1000, 2),
      fmtNum(
        med(n, (r) => r.load),
        1,
      ),
      fmtInt(med(n, (r) => r.tasks_per_s)),
      fmtNum(rss, 0),
      fmtNum(med(n, (r) => r.parse_ms) / 1000, 2),
      fmtRatio(med(n, (r) => r.ratio)),
      fmtRatio(med(n, (r) => r.cpu_ratio)),
      verdict,
    ];
  });
  const lines = [
    'SEASON 1 run-local — medians, each run a fresh process on a fresh generated workspace (10 signals per subject).',
    `ratio = run-local wall time ÷ time to read and JSON.parse the same input in this run (CPU ratio: the same with CPU times, which load disturbs less). Targets at 1M signals: ratio ≤ ${TARGET_RATIO_1M}×, peak RSS ≤ ${TARGET_RSS_MB} MB.`,
    table(['signals', 'subjects', 'wall s', 'CPU s', 'load', 'tasks/s', 'peak RSS MB', 'parse s', 'ratio', 'CPU ratio', 'status (ratio / RSS)'], rows),
  ];
  const at = (n: number): number | null => (sizes.includes(n) ? med(n, (r) => r.ms) : null);
  const a = at(100_000);
  const b = at(1_000_000);
  if (a && b) lines.push(`growth 100k → 1M signals: ${fmtNum(b / a, 1)}× the time (target ≤ ${TARGET_GROWTH}×: ${b / a <= TARGET_GROWTH ? 'met' : 'MISSED'})`);
  return lines.join('\n');
}
