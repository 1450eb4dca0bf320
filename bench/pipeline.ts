/**
 * The example pipeline (examples/daily-projections) run by `metaspn pipeline run` on generated
 * workspaces of growing size: wall time, tasks/s, cost per entity (player) and peak RSS, each run
 * in a fresh child process and a fresh workspace.
 *
 * The inputs are those of examples/daily-projections/gen-inputs.mjs at a chosen number of players
 * (teams of 8, a week of games, the same injury pattern, the model's seeded PRNG); that script
 * itself writes only its 40 players. `--full` adds 100,000 players (a few minutes): its one-task
 * steps read every player in their handlers (ctx.step) a page at a time and yield their rows, so no
 * payload carries them and no step holds them all.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { fmtInt, fmtNum, median, progress, table, withTempWorkspace } from './lib.js';

export const DEFAULT_PLAYERS = [150, 1_500];
/** With `--full`: issue 14's 100k entities too. */
export const FULL_PLAYERS = [150, 1_500, 100_000];
const EXAMPLE = resolve(import.meta.dirname, '..', '..', 'examples', 'daily-projections');
const REPO = resolve(import.meta.dirname, '..', '..');
const START = '2026-03-01';
const DAYS = 7;
/** The fourth day: its window (the date and the two before it) is full and p07's injury applies. */
const DATE = '2026-03-04';

const POSITIONS = ['G', 'G', 'F', 'F', 'C', 'G', 'F', 'C'] as const;
const SLOT_MINUTES = [36, 34, 32, 30, 28, 28, 26, 26];

function teamCode(t: number): string {
  const A = 65;
  return String.fromCharCode(A + (Math.floor(t / 676) % 26), A + (Math.floor(t / 26) % 26), A + (t % 26));
}

/** Writes players.jsonl, boxscores.jsonl and status.jsonl for `count` players, as gen-inputs.mjs does for 40 (exported for A/B runs on one workspace). */
export async function writeInputs(dir: string, count: number): Promise<{ box: number }> {
  // The example's own seeded generator and Poisson draws, as gen-inputs.mjs uses them.
  const model = (await import(pathToFileURL(join(EXAMPLE, 'model.mjs')).href)) as { prng: (seed: number) => () => number; poisson: (lambda: number, rand: () => number) => number };
  const rand = model.prng(20260301);
  const poisson = (lambda: number): number => model.poisson(lambda, rand);
  const width = count > 99 ? 4 : 2;
  const teams = Math.ceil(count / 8);
  type P = { player: string; name: string; team: string; position: string; salary: number; slot: number; rates: { pts: number; reb: number; ast: number } };
  const players: P[] = [];
  for (let n = 0; n < count; n++) {
    const t = Math.floor(n / 8);
    const s = n % 8;
    const pos = POSITIONS[s]!;
    const pts = 0.38 + rand() * 0.32 - s * 0.012;
    const reb = pos === 'C' ? 0.26 + rand() * 0.1 : pos === 'F' ? 0.17 + rand() * 0.08 : 0.1 + rand() * 0.06;
    const ast = pos === 'G' ? 0.15 + rand() * 0.1 : 0.05 + rand() * 0.06;
    const fp = (pts + 1.25 * reb + 1.5 * ast) * SLOT_MINUTES[s]!;
    const salary = Math.round((3000 + fp * 130) / 100) * 100;
    players.push({ player: `p${String(n + 1).padStart(width, '0')}`, name: `Player ${n + 1}`, team: teamCode(t), position: pos, salary, slot: s, rates: { pts, reb, ast } });
  }
  const dates = Array.from({ length: DAYS }, (_, i) => new Date(Date.parse(`${START}T00:00:00Z`) + i * 86_400_000).toISOString().slice(0, 10));
  // The seventh player is out from the fourth day on; the twenty-second questionable on the third.
  const outId = players[6]?.player;
  const questionable = players[21]?.player;
  const status: object[] = [];
  dates.forEach((date, day) => {
    if (outId && day >= 3) status.push({ date, player: outId, status: 'out', note: 'ankle' });
    if (questionable && day === 2) status.push({ date, player: questionable, status: 'questionable', note: 'illness' });
  });
  const box: object[] = [];
  dates.forEach((date, day) => {
    for (let t = 0; t < teams; t++) {
      if ((day + t) % 3 === 0) continue;
      const roster = players.slice(t * 8, t * 8 + 8).filter((p) => !(p.player === outId && day >= 3));
      const missing = 240 - roster.reduce((a, p) => a + SLOT_MINUTES[p.slot]!, 0);
      const minutes = roster.map((p) => Math.round(SLOT_MINUTES[p.slot]! + missing / roster.length + (rand() - 0.5) * 8));
      if (minutes.length) minutes[0]! += 240 - minutes.reduce((a, m) => a + m, 0);
      roster.forEach((p, i) => {
        const m = minutes[i]!;
        box.push({ date, player: p.player, team: p.team, minutes: m, points: poisson(p.rates.pts * m), rebounds: poisson(p.rates.reb * m), assists: poisson(p.rates.ast * m) });
      });
    }
  });
  const jsonl = (rows: object[]): string => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
  mkdirSync(join(dir, 'inputs'), { recursive: true });
  writeFileSync(join(dir, 'inputs', 'players.jsonl'), jsonl(players.map(({ player, name, team, position, salary }) => ({ player, name, team, position, salary }))));
  writeFileSync(join(dir, 'inputs', 'boxscores.jsonl'), jsonl(box));
  writeFileSync(join(dir, 'inputs', 'status.jsonl'), jsonl(status));
  return { box: box.length };
}

export interface PipelineRun {
  players: number;
  box_lines: number;
  run: number;
  exit_code: number;
  ms: number;
  max_rss_mb: number;
  /** Tasks the run drained: one per player projected to play (sim) and one for each other step. */
  tasks: number;
  error?: string;
}

export interface PipelineBenchResult {
  date: string;
  runs: PipelineRun[];
}

export async function runPipelineBench(o: { players: number[]; runs: number }): Promise<PipelineBenchResult> {
  const runs: PipelineRun[] = [];
  const child = join(import.meta.dirname, 'cli-child.js');
  for (const players of o.players) {
    for (let run = 1; run <= o.runs; run++) {
      await withTempWorkspace(`pipeline-${players}`, async (dir) => {
        for (const f of ['pipeline.mjs', 'model.mjs', 'metaspn.config.json']) copyFileSync(join(EXAMPLE, f), join(dir, f));
        // The module imports `metaspn`: this repository, as an installed package would be.
        mkdirSync(join(dir, 'node_modules'));
        symlinkSync(REPO, join(dir, 'node_modules', 'metaspn'), 'dir');
        const { box } = await writeInputs(dir, players);
        const r = spawnSync(process.execPath, [child, 'pipeline', 'run', 'daily-projections', '--workspace', dir, '--date', DATE, '--json'], {
          encoding: 'utf8',
          maxBuffer: 1 << 28,
          env: { ...process.env, METASPN_LOG_LEVEL: process.env.METASPN_LOG_LEVEL ?? 'warn' },
        });
        const last = r.stderr.trim().split('\n').at(-1) ?? '';
        const m = last.startsWith('{') ? (JSON.parse(last) as { exit_code: number; ms: number; max_rss_mb: number }) : { exit_code: r.status ?? -1, ms: Number.NaN, max_rss_mb: Number.NaN };
        let tasks = Number.NaN;
        let failure = '';
        try {
          const doc = JSON.parse(r.stdout) as { steps?: Array<{ step?: string; tasks?: { total?: number }; error?: { class?: string; message?: string } }> };
          tasks = (doc.steps ?? []).reduce((a, s) => a + (s.tasks?.total ?? 0), 0);
          const bad = (doc.steps ?? []).find((s) => s.error);
          if (bad) failure = `step ${bad.step ?? '?'}: ${bad.error?.class ?? 'Error'}: ${bad.error?.message ?? ''}`;
        } catch {
          // No JSON report (a failure before the run): tasks unknown.
        }
        const s: PipelineRun = { players, box_lines: box, run, exit_code: m.exit_code, ms: m.ms, max_rss_mb: m.max_rss_mb, tasks };
        if (m.exit_code !== 0) s.error = (failure || r.stderr.trim().split('\n').slice(-4, -1).join(' | ')).slice(0, 400);
        runs.push(s);
        progress(
          `pipeline ${fmtInt(players)} players run ${run}/${o.runs}: exit ${m.exit_code}, ${fmtNum(m.ms / 1000, 2)} s, ${fmtInt(tasks)} tasks, peak RSS ${fmtNum(m.max_rss_mb, 0)} MB${s.error ? `; ${s.error}` : ''}`,
        );
      });
    }
  }
  return { date: DATE, runs };
}

export function formatPipelineReport(res: PipelineBenchResult): string {
  const sizes = [...new Set(res.runs.map((r) => r.players))];
  const med = (n: number, f: (r: PipelineRun) => number): number => median(res.runs.filter((r) => r.players === n).map(f));
  const rows = sizes.map((n) => {
    const ms = med(n, (r) => r.ms);
    const tasks = med(n, (r) => r.tasks);
    const exits = [...new Set(res.runs.filter((r) => r.players === n).map((r) => r.exit_code))].join(',');
    return [
      fmtInt(n),
      fmtInt(med(n, (r) => r.box_lines)),
      exits,
      fmtNum(ms / 1000, 2),
      fmtInt(tasks),
      fmtInt((tasks / ms) * 1000),
      fmtNum((ms * 1000) / n, 0),
      fmtNum(
        med(n, (r) => r.max_rss_mb),
        0,
      ),
    ];
  });
  const lines = [
    `EXAMPLE PIPELINE daily-projections — pipeline run --date ${res.date}, medians, each run a fresh process on a fresh generated workspace.`,
    'entities = players (one sim task each); inputs as examples/daily-projections/gen-inputs.mjs makes them, at that many players.',
    table(['players', 'box lines', 'exit', 'wall s', 'tasks', 'tasks/s', 'µs/player', 'peak RSS MB'], rows),
  ];
  if (sizes.length > 1) {
    const lo = Math.min(...sizes);
    const hi = Math.max(...sizes);
    lines.push(`growth ${fmtInt(lo)} → ${fmtInt(hi)} players (${fmtNum(hi / lo, 1)}×): ${fmtNum(med(hi, (r) => r.ms) / med(lo, (r) => r.ms), 1)}× the time`);
  }
  if (!sizes.includes(100_000)) lines.push('100k players (issue 14): npm run bench -- --only pipeline --full');
  for (const r of res.runs.filter((x) => x.error).slice(0, 3)) lines.push(`failed at ${fmtInt(r.players)} players (exit ${r.exit_code}): ${r.error}`);
  return lines.join('\n');
}
