import { createHash } from 'node:crypto';
import { appendFileSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exampleWorkspace, type Run } from './cli.js';
import { cliIn } from './in-process.js';

/**
 * The example pipeline (examples/daily-projections) driven through the real CLI, as a user would:
 * a copy of the example workspace per test, with `metaspn` installed beside it (linked to this
 * repository, as `npm link` would).
 */
const NAME = 'daily-projections';
const STEPS = ['ingest', 'minutes', 'rates', 'sim', 'ownership', 'finalize'];
const WEEK = ['2026-03-01', '2026-03-02', '2026-03-03', '2026-03-04', '2026-03-05', '2026-03-06', '2026-03-07'];

interface StepReport {
  step: string;
  identity: string;
  status: string;
  exit_code: number;
  manifest: string;
  tasks: { total: number; completed: number; dead: number };
  outputs: { path: string; rows_written: number; rows_present: number; sha256: string }[];
}
interface RunReport {
  run_id: string;
  date: string;
  status: string;
  exit_code: number;
  steps: StepReport[];
  checks: { name: string; status: string; observed: unknown }[];
  identity: string | null;
  pointer: string | null;
  restatement_of: string | null;
}
interface Pointer {
  run_id: string;
  summary_id: string;
  steps: Record<string, string>;
}
interface Manifest {
  run_id: string;
  step: string;
  identity: string;
  status: string;
  exit_code: number;
  started_at: string;
  finished_at: string;
  upstream: Record<string, { run_id: string; identity: string }>;
  previous_run_id?: string | null;
  tasks: { total: number; completed: number };
  inputs: { path: string; sha256: string; rows: number }[];
  outputs: { path: string; rows_written: number; rows_present: number; sha256: string }[];
  checks: { name: string; status: string; note?: string }[];
}
interface LedgerEntry {
  kind: string;
  run_id?: string;
  detail: { date: string; pointer: Pointer; restatement_of?: string; replay_of?: string; skipped_checks?: { name: string; reason: string }[] };
}
interface PartitionResult {
  status: string;
  run_id: string | null;
  exit_code: number;
}
interface BackfillReport {
  backfill_id: string;
  exit_code: number;
  partitions: Record<string, PartitionResult>;
}

const example = exampleWorkspace;

const pipeline = (dir: string, ...args: string[]): Promise<Run> => cliIn(['pipeline', ...args, '--workspace', dir]);
const run = (dir: string, date: string, ...args: string[]): Promise<Run> => pipeline(dir, 'run', NAME, '--date', date, ...args);
async function runJson(dir: string, date: string, ...args: string[]): Promise<RunReport> {
  const r = await run(dir, date, '--json', ...args);
  expect(r.stdout, r.stderr).toMatch(/^\{/);
  return JSON.parse(r.stdout) as RunReport;
}
const json = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T;
const pointerPath = (dir: string, date: string): string => join(dir, 'manifests', 'current', NAME, `date=${date}.json`);
const pointer = (dir: string, date: string): Pointer => json<Pointer>(pointerPath(dir, date));
const manifest = (dir: string, step: string, date: string, runId: string): Manifest => json<Manifest>(join(dir, 'manifests', step, `date=${date}`, `run=${runId}`, 'manifest.json'));
const ledger = (dir: string): LedgerEntry[] =>
  readFileSync(join(dir, 'ledger.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LedgerEntry);
const rows = (dir: string, step: string): { key: string; date: string; identity: string; [k: string]: unknown }[] =>
  readFileSync(join(dir, 'store', `${NAME}.${step}.jsonl`), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
const sha = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');
const storeHashes = (dir: string): Record<string, string> => Object.fromEntries(STEPS.map((s) => [s, sha(join(dir, 'store', `${NAME}.${s}.jsonl`))]));
const byStep = (r: RunReport): Record<string, StepReport> => Object.fromEntries(r.steps.map((s) => [s.step, s]));

/** Replaces the one line of an input file that contains `match`. */
function editLine(dir: string, file: string, match: string, edit: (line: string) => string): void {
  const path = join(dir, 'inputs', file);
  const lines = readFileSync(path, 'utf8').split('\n');
  const i = lines.findIndex((l) => l.includes(match));
  expect(i, `${file} has a line with ${match}`).toBeGreaterThanOrEqual(0);
  lines[i] = edit(lines[i]!);
  writeFileSync(path, lines.join('\n'));
}

/** An error printed as one line (`error: …`, maybe a `hint: …`), never a stack trace. */
function expectOneLineError(r: Run, pattern: RegExp): void {
  const lines = r.stderr.trim().split('\n');
  expect(lines[0]).toMatch(/^error: /);
  expect(lines[0]).toMatch(pattern);
  expect(lines.slice(1).every((l) => l.startsWith('hint: '))).toBe(true);
  expect(r.stderr).not.toMatch(/^\s+at /m);
}

describe('the example pipeline: list and show', () => {
  it('list names it beside the bundled s1; show prints its steps, dependencies, inputs and checks', async () => {
    const dir = example();
    const list = await pipeline(dir, 'list');
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^s1\s+bundled\s/m);
    expect(list.stdout).toMatch(/^daily-projections\s+workspace\s+\.\/pipeline\.mjs\s+6 steps$/m);
    const listJson = JSON.parse((await pipeline(dir, 'list', '--json')).stdout) as { pipelines: { name: string; source: string; module: string | null }[] };
    expect(listJson.pipelines).toContainEqual({ name: NAME, source: 'workspace', module: './pipeline.mjs', status: 'ok', steps: 6 });

    const show = await pipeline(dir, 'show', NAME);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/^daily-projections: nightly player projections/);
    expect(show.stdout).toMatch(/^\s+ingest\s+\(first\)\s+inputs boxscores\.jsonl, players\.jsonl\s+queue daily-projections-ingest$/m);
    expect(show.stdout).toMatch(/^\s+sim\s+after minutes, rates\s+queue daily-projections-sim$/m);
    expect(show.stdout).toMatch(/^\s+ownership\s+after sim\s+reads the previous partition\s+queue daily-projections-ownership$/m);
    expect(show.stdout).toMatch(/^\s+finalize\s+after sim, ownership\s/m);
    expect(show.stdout).toMatch(/^checks:\n\s+team_minutes: .+\n\s+projections_complete: .+$/m);

    const view = JSON.parse((await pipeline(dir, 'show', NAME, '--json')).stdout) as {
      name: string;
      partition: string;
      steps: { name: string; after: string[]; upstream: string[]; inputs: string[]; previous: boolean; params: Record<string, unknown>; queue: string }[];
      checks: { name: string; reads: string[] }[];
    };
    expect(view.name).toBe(NAME);
    expect(view.partition).toBe('date');
    expect(view.steps.map((s) => [s.name, s.after])).toEqual([
      ['ingest', []],
      ['minutes', ['ingest']],
      ['rates', ['ingest']],
      ['sim', ['minutes', 'rates']],
      ['ownership', ['sim']],
      ['finalize', ['sim', 'ownership']],
    ]);
    const step = Object.fromEntries(view.steps.map((s) => [s.name, s]));
    expect(step.ingest!.inputs).toEqual(['boxscores.jsonl', 'players.jsonl']);
    expect(step.minutes!.inputs).toEqual(['status.jsonl']);
    expect(step.finalize!.upstream).toEqual(['ingest', 'minutes', 'ownership', 'rates', 'sim']);
    expect(step.ownership!.previous).toBe(true);
    expect(step.sim!.params).toEqual({ worlds: 1000 });
    expect(view.checks).toEqual([expect.objectContaining({ name: 'team_minutes', reads: ['minutes'] }), expect.objectContaining({ name: 'projections_complete', reads: ['ingest', 'finalize'] })]);
  }, 120_000);
});

describe('the example pipeline: run and replay', () => {
  it('a run publishes with a manifest per step, a pointer and a ledger entry; a replay writes nothing', async () => {
    const dir = example();
    const r = await run(dir, '2026-03-04');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^daily-projections run 2026-03-04 {2}run \S+ {2}as_of 2026-03-05T00:00:00\.000Z$/m);
    expect(r.stdout).toMatch(/^\s+sim\s+success\s+39\/39 tasks\s+39 rows written, 0 present/m);
    expect(r.stdout).toContain('checks: team_minutes pass, projections_complete pass');
    expect(r.stdout).toContain('published: manifests/current/daily-projections/date=2026-03-04.json');
    expect(r.stdout).toMatch(/^exit 0 in /m);

    const ptr = pointer(dir, '2026-03-04');
    expect(Object.keys(ptr.steps)).toEqual(STEPS);
    const m = Object.fromEntries(STEPS.map((s) => [s, manifest(dir, s, '2026-03-04', ptr.run_id)]));
    for (const s of STEPS) {
      expect(m[s]!.status, s).toBe('success');
      expect(m[s]!.exit_code).toBe(0);
      expect(m[s]!.identity).toBe(ptr.steps[s]);
      expect(m[s]!.outputs[0]!.path).toBe(`store/${NAME}.${s}.jsonl`);
    }
    // What each step read: its inputs with their digests, its upstream steps' identities.
    expect(m.ingest!.inputs).toEqual([
      { path: 'inputs/boxscores.jsonl', sha256: sha(join(dir, 'inputs', 'boxscores.jsonl')), rows: 182 },
      { path: 'inputs/players.jsonl', sha256: sha(join(dir, 'inputs', 'players.jsonl')), rows: 40 },
    ]);
    expect(m.minutes!.inputs.map((i) => i.path)).toEqual(['inputs/status.jsonl']);
    expect(m.rates!.inputs).toEqual([]);
    expect(m.sim!.upstream).toEqual({ minutes: { run_id: ptr.run_id, identity: ptr.steps.minutes }, rates: { run_id: ptr.run_id, identity: ptr.steps.rates } });
    expect(m.ownership!.previous_run_id).toBeNull();
    // Fan-out: one sim task per player who plays (p07 is out); fan-in: one finalize row per roster player.
    expect(m.sim!.tasks).toMatchObject({ total: 39, completed: 39 });
    expect(m.finalize!.outputs[0]).toMatchObject({ rows_written: 40, rows_present: 0 });
    expect(m.finalize!.checks.map((c) => [c.name, c.status])).toEqual([
      ['team_minutes', 'pass'],
      ['projections_complete', 'pass'],
    ]);
    // minutes and rates depend only on ingest: they ran at the same time.
    expect(m.minutes!.started_at <= m.rates!.finished_at && m.rates!.started_at <= m.minutes!.finished_at).toBe(true);
    expect(m.minutes!.started_at >= m.ingest!.finished_at && m.rates!.started_at >= m.ingest!.finished_at).toBe(true);
    const final = rows(dir, 'finalize').filter((x) => x.date === '2026-03-04');
    expect(final).toHaveLength(40);
    expect(final.find((x) => x.key === 'p07')).toMatchObject({ minutes: 0, mean: 0 });
    const entries = ledger(dir);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ kind: 'publish', run_id: ptr.run_id, detail: { date: '2026-03-04', pointer: ptr } });

    // The replay: same identities, no row written, the pointer keeps its identity.
    const before = storeHashes(dir);
    const again = await runJson(dir, '2026-03-04');
    expect(again.exit_code).toBe(0);
    expect(again.run_id).not.toBe(ptr.run_id);
    expect(again.steps.map((s) => s.outputs[0]!.rows_written)).toEqual([0, 0, 0, 0, 0, 0]);
    expect(again.identity).toBe(ptr.summary_id);
    expect(again.restatement_of).toBeNull();
    expect(pointer(dir, '2026-03-04')).toMatchObject({ run_id: again.run_id, summary_id: ptr.summary_id, steps: ptr.steps });
    expect(storeHashes(dir)).toEqual(before);
    expect(ledger(dir)[1]!.detail).toMatchObject({ date: '2026-03-04', replay_of: ptr.run_id });
    expect(ledger(dir)[1]!.detail.restatement_of).toBeUndefined();
  }, 120_000);

  it('changed inputs give the affected steps new identities and a restatement; the old rows stay; a line of another date changes nothing', async () => {
    const dir = example();
    const first = await runJson(dir, '2026-03-05');
    expect(first.exit_code).toBe(0);
    const old = pointer(dir, '2026-03-05');

    // A new line in the date's injury report: minutes reads it; ingest and rates do not.
    appendFileSync(join(dir, 'inputs', 'status.jsonl'), '{"date":"2026-03-05","player":"p10","status":"questionable","note":"back"}\n');
    const second = await runJson(dir, '2026-03-05');
    expect(second.exit_code).toBe(0);
    expect(second.restatement_of).toBe(first.run_id);
    const now = pointer(dir, '2026-03-05');
    expect(now.summary_id).not.toBe(old.summary_id);
    const changed = STEPS.filter((s) => now.steps[s] !== old.steps[s]);
    expect(changed).toEqual(['minutes', 'sim', 'ownership', 'finalize']);
    const st = byStep(second);
    expect(st.ingest!.outputs[0]).toMatchObject({ rows_written: 0, rows_present: 40 });
    expect(st.rates!.outputs[0]).toMatchObject({ rows_written: 0, rows_present: 40 });
    expect(st.minutes!.outputs[0]).toMatchObject({ rows_written: 40, rows_present: 0 });
    expect(rows(dir, 'minutes').find((x) => x.key === 'p10' && x.identity === now.steps.minutes)).toMatchObject({ status: 'questionable' });
    // The restatement is in the ledger, and both output sets are in the store.
    const last = ledger(dir).at(-1)!;
    expect(last).toMatchObject({ kind: 'publish', run_id: second.run_id, detail: { date: '2026-03-05', restatement_of: first.run_id } });
    const finals = rows(dir, 'finalize').filter((x) => x.date === '2026-03-05');
    expect(finals.filter((x) => x.identity === old.steps.finalize)).toHaveLength(40);
    expect(finals.filter((x) => x.identity === now.steps.finalize)).toHaveLength(40);
    expect(existsSync(join(dir, 'manifests', 'finalize', 'date=2026-03-05', `run=${first.run_id}`, 'manifest.json'))).toBe(true);

    // A stat correction for 2026-03-07 is outside 2026-03-05's window (03-03..03-05): its digest
    // hook keeps its identity, so a run is a replay.
    editLine(dir, 'boxscores.jsonl', '"date":"2026-03-07","player":"p09"', (l) => l.replace(/"points":\d+/, '"points":44'));
    const third = await runJson(dir, '2026-03-05');
    expect(third.exit_code).toBe(0);
    expect(third.identity).toBe(now.summary_id);
    expect(third.restatement_of).toBeNull();
    expect(third.steps.map((s) => s.outputs[0]!.rows_written)).toEqual([0, 0, 0, 0, 0, 0]);
  }, 120_000);

  it('a bad input line fails ingest with exit 20 naming the file, line and rule; fixed, the same command publishes', async () => {
    const dir = example();
    const path = join(dir, 'inputs', 'boxscores.jsonl');
    const good = readFileSync(path, 'utf8');
    const lineNo = good.split('\n').findIndex((l) => l.includes('"date":"2026-03-02","player":"p06"')) + 1;
    editLine(dir, 'boxscores.jsonl', '"date":"2026-03-02","player":"p06"', (l) => l.replace(/"minutes":\d+/, '"minutes":-3'));
    const bad = await run(dir, '2026-03-02');
    expect(bad.code).toBe(20);
    expect(bad.stdout).toMatch(/^\s+ingest\s+failed\s+0\/1 tasks, 1 dead/m);
    expect(bad.stdout).toContain(`ContractError: inputs/boxscores.jsonl:${lineNo}: minutes must be an integer from 0 to 65, got -3`);
    expect(bad.stdout).toContain('not published');
    expect(existsSync(pointerPath(dir, '2026-03-02'))).toBe(false);
    writeFileSync(path, good);
    const fixed = await run(dir, '2026-03-02');
    expect(fixed.code, fixed.stdout).toBe(0);
    expect(existsSync(pointerPath(dir, '2026-03-02'))).toBe(true);
  }, 120_000);
});

describe('the example pipeline: checks', () => {
  it('a tripped check exits 60 and publishes nothing; --skip-check NAME --reason T publishes and records why', async () => {
    const dir = example();
    appendFileSync(join(dir, 'inputs', 'status.jsonl'), '{"date":"2026-03-05","player":"p02","status":"out"}\n{"date":"2026-03-05","player":"p03","status":"out"}\n');
    const halted = await run(dir, '2026-03-05');
    expect(halted.code).toBe(60);
    expect(halted.stdout).toContain('checks: team_minutes fail, projections_complete pass');
    expect(halted.stdout).toMatch(/^check team_minutes failed: observed \{"HBR":\d+(\.\d)?\}, expected \{"min":200,"max":265\}$/m);
    expect(halted.stdout).toContain('not published');
    expect(existsSync(pointerPath(dir, '2026-03-05'))).toBe(false);
    expect(existsSync(join(dir, 'ledger.jsonl'))).toBe(false);
    const incidents = readdirSync(join(dir, 'reports', 'incidents')).filter((f) => f.includes('anomaly_halt-2026-03-05-team_minutes'));
    expect(incidents).toHaveLength(1);
    expect(json<{ check: string; pipeline: string }>(join(dir, 'reports', 'incidents', incidents[0]!))).toMatchObject({ check: 'team_minutes', pipeline: NAME });
    const runId = /run (\S+) {2}as_of/.exec(halted.stdout)![1]!;
    const fin = manifest(dir, 'finalize', '2026-03-05', runId);
    expect(fin).toMatchObject({ status: 'failed', exit_code: 60 });
    expect(fin.checks.map((c) => [c.name, c.status])).toEqual([
      ['team_minutes', 'fail'],
      ['projections_complete', 'pass'],
    ]);

    const noReason = await run(dir, '2026-03-05', '--skip-check', 'team_minutes');
    expect(noReason.code).toBe(64);
    expectOneLineError(noReason, /--skip-check needs --reason/);
    const unknown = await run(dir, '2026-03-05', '--skip-check', 'minutes_total', '--reason', 'x');
    expect(unknown.code).toBe(64);
    expectOneLineError(unknown, /--skip-check minutes_total: pipeline daily-projections has no such check/);
    expect(unknown.stderr).toContain('hint: checks: team_minutes, projections_complete');
    expect(existsSync(pointerPath(dir, '2026-03-05'))).toBe(false);

    const skipped = await runJson(dir, '2026-03-05', '--skip-check', 'team_minutes', '--reason', 'two starters out; minutes are not redistributed');
    expect(skipped.exit_code).toBe(0);
    expect(skipped.checks.map((c) => [c.name, c.status])).toEqual([
      ['team_minutes', 'skipped'],
      ['projections_complete', 'pass'],
    ]);
    // The halted run's rows were kept: publishing through the check wrote nothing new.
    expect(skipped.steps.map((s) => s.outputs[0]!.rows_written)).toEqual([0, 0, 0, 0, 0, 0]);
    expect(pointer(dir, '2026-03-05').run_id).toBe(skipped.run_id);
    expect(ledger(dir)[0]!.detail.skipped_checks).toEqual([{ name: 'team_minutes', reason: 'two starters out; minutes are not redistributed' }]);
    expect(manifest(dir, 'finalize', '2026-03-05', skipped.run_id).checks[0]).toMatchObject({
      name: 'team_minutes',
      status: 'skipped',
      note: '--skip-check: two starters out; minutes are not redistributed',
    });
  }, 120_000);
});

describe('the example pipeline: backfill and resume', () => {
  it('backfills the week (--max-parallel 2); --resume skips current dates and re-runs stale ones', async () => {
    const dir = example();
    const r = await pipeline(dir, 'backfill', NAME, '--start', '2026-03-01', '--end', '2026-03-07', '--max-parallel', '2', '--json');
    expect(r.code, r.stderr).toBe(0);
    const bf = JSON.parse(r.stdout) as BackfillReport;
    expect(Object.keys(bf.partitions)).toEqual(WEEK);
    expect(Object.values(bf.partitions).map((p) => p.status)).toEqual(WEEK.map(() => 'published'));
    expect(json<BackfillReport>(join(dir, 'manifests', 'backfills', bf.backfill_id, 'summary.json')).partitions['2026-03-07']).toMatchObject({ status: 'published', exit_code: 0 });
    const before = Object.fromEntries(WEEK.map((d) => [d, pointer(dir, d)]));
    for (const d of WEEK) expect(before[d]!.run_id).toBe(`${bf.backfill_id}.${d}`);
    // ownership read the previous date's published run.
    expect(manifest(dir, 'ownership', '2026-03-02', before['2026-03-02']!.run_id).previous_run_id).toBe(before['2026-03-01']!.run_id);

    // A replay of 03-03 publishes the same identity under a new run id: 03-04, whose ownership
    // reads 03-03's published output, is still current.
    const replay = await runJson(dir, '2026-03-03');
    expect(replay.steps.map((s) => s.outputs[0]!.rows_written)).toEqual([0, 0, 0, 0, 0, 0]);
    before['2026-03-03'] = pointer(dir, '2026-03-03');
    expect(before['2026-03-03'].run_id).toBe(replay.run_id);
    // A run of 03-04 interrupted after it enqueued (here: a task of its group left ready): the
    // date it would re-run is published and current, so --resume skips it and cancels the leftover.
    const left = join(dir, 'leftover.jsonl');
    writeFileSync(left, `${JSON.stringify({ id: 'leftover-1', payload: { key: 'p1' }, group: `${NAME}/2026-03-04` })}\n`);
    expect((await cliIn(['queue', 'enqueue', `${NAME}-sim`, '--file', left, '--workspace', dir])).code).toBe(0);
    const resumed = await pipeline(dir, 'backfill', NAME, '--start', '2026-03-01', '--end', '2026-03-07', '--max-parallel', '2', '--resume');
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(/: 7 skipped\nexit 0\n$/);
    const sim = JSON.parse((await cliIn(['queue', 'stats', `${NAME}-sim`, '--workspace', dir, '--json'])).stdout) as { ready: number; cancelled: number };
    expect([sim.ready, sim.cancelled]).toEqual([0, 1]);
    for (const d of WEEK) expect(resumed.stdout).toMatch(new RegExp(`^${d}  skipped .* run ${before[d]!.run_id}  \\(already published`, 'm'));

    // The injury report of 03-05 changes: 03-05 is stale, and so are 03-06 and 03-07, whose
    // ownership reads the previous date's published output.
    appendFileSync(join(dir, 'inputs', 'status.jsonl'), '{"date":"2026-03-05","player":"p10","status":"questionable"}\n');
    const stale = await pipeline(dir, 'backfill', NAME, '--start', '2026-03-01', '--end', '2026-03-07', '--resume', '--json');
    expect(stale.code, stale.stderr).toBe(0);
    const again = JSON.parse(stale.stdout) as BackfillReport;
    expect(WEEK.map((d) => again.partitions[d]!.status)).toEqual(['skipped', 'skipped', 'skipped', 'skipped', 'published', 'published', 'published']);
    for (const d of WEEK.slice(0, 4)) expect(pointer(dir, d)).toEqual(before[d]);
    const changed = (d: string): string[] => STEPS.filter((s) => pointer(dir, d).steps[s] !== before[d]!.steps[s]);
    expect(changed('2026-03-05')).toEqual(['minutes', 'sim', 'ownership', 'finalize']);
    expect(changed('2026-03-06')).toEqual(['ownership', 'finalize']);
    const restated = ledger(dir).filter((e) => e.detail.restatement_of);
    expect(restated.map((e) => [e.detail.date, e.detail.restatement_of])).toEqual(['2026-03-05', '2026-03-06', '2026-03-07'].map((d) => [d, before[d]!.run_id]));
  }, 180_000);
});

describe('the example pipeline: refusals', () => {
  it('--run-id of an existing run is 64 and overwrites nothing; a date not over yet is 10 and writes nothing', async () => {
    const dir = example();
    const first = await runJson(dir, '2026-03-03', '--run-id', 'nightly-0303');
    expect(first.exit_code).toBe(0);
    const path = join(dir, 'manifests', 'finalize', 'date=2026-03-03', 'run=nightly-0303', 'manifest.json');
    const bytes = readFileSync(path, 'utf8');
    const dup = await run(dir, '2026-03-03', '--run-id', 'nightly-0303');
    expect(dup.code).toBe(64);
    expectOneLineError(dup, /--run-id nightly-0303 names a run that already exists; nothing was overwritten/);
    expect(readFileSync(path, 'utf8')).toBe(bytes);
    expect(ledger(dir)).toHaveLength(1);

    const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
    const early = await run(dir, tomorrow);
    expect(early.code).toBe(10);
    expectOneLineError(early, new RegExp(`--date ${tomorrow} is not over yet`));
    expect(existsSync(join(dir, 'manifests', 'ingest', `date=${tomorrow}`))).toBe(false);
    const before = await run(dir, '2026-02-27');
    expect(before.code).toBe(10);
    expectOneLineError(before, /outside pipeline daily-projections's partitions \(2026-03-01 to any\)/);
  }, 120_000);

  it('a name the config does not list is 64 naming the ones it does; a module outside the workspace is 20', async () => {
    const dir = example();
    const missing = await pipeline(dir, 'run', 'projections', '--date', '2026-03-03');
    expect(missing.code).toBe(64);
    expectOneLineError(missing, /no pipeline projections in .*metaspn\.config\.json/);
    expect(missing.stderr).toContain('hint: pipelines: daily-projections');
    expect((await pipeline(dir, 'show', 'projections')).code).toBe(64);

    // A module that exists, beside the workspace rather than in it.
    const other = mkdtempSync(join(tmpdir(), 'metaspn-it-elsewhere-'));
    try {
      cpSync(join(dir, 'pipeline.mjs'), join(other, 'pipeline.mjs'));
      const rel = relative(dir, join(other, 'pipeline.mjs'));
      writeFileSync(join(dir, 'metaspn.config.json'), JSON.stringify({ pipelines: { [NAME]: rel } }));
      const outside = await run(dir, '2026-03-03');
      expect(outside.code).toBe(20);
      expectOneLineError(outside, /metaspn\.config\.json: pipelines\.daily-projections: \.\.\/metaspn-it-elsewhere-\w+\/pipeline\.mjs leads outside the workspace/);
      expect(existsSync(join(dir, 'manifests'))).toBe(false);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  }, 120_000);

  it('list loads every module: one that does not parse is 20 at its line, TypeScript is 20 saying so, the others listed; --json errors are JSON', async () => {
    const dir = example();
    writeFileSync(join(dir, 'broken.mjs'), "import { definePipeline } from 'metaspn';\nexport default definePipeline({\n  name: 'broken',\n  steps: [ ) ],\n});\n");
    writeFileSync(join(dir, 'typed.ts'), 'export default {};\n');
    writeFileSync(join(dir, 'metaspn.config.json'), JSON.stringify({ pipelines: { [NAME]: './pipeline.mjs', broken: './broken.mjs', typed: './typed.ts' } }));
    const list = await pipeline(dir, 'list');
    expect(list.code).toBe(20);
    expect(list.stdout).toMatch(/^daily-projections\s+workspace\s+\.\/pipeline\.mjs\s+6 steps$/m);
    expect(list.stdout).toMatch(/^broken\s+workspace\s+\.\/broken\.mjs\s+error \(exit 20\): \S*broken\.mjs:4: pipeline broken: Unexpected token '\)' \(the module does not parse\)$/m);
    expect(list.stdout).toMatch(/^typed\s+workspace\s+\.\/typed\.ts\s+error \(exit 20\): .*typed\.ts is TypeScript, which Node 20 does not run: compile it to \.js/m);
    const broken = await pipeline(dir, 'run', 'broken', '--date', '2026-03-03');
    expect(broken.code).toBe(20);
    expectOneLineError(broken, /broken\.mjs:4: pipeline broken: Unexpected token/);
    // With --json, a failure is JSON on stdout as well as the line on stderr.
    const asJson = await pipeline(dir, 'run', 'broken', '--date', '2026-03-03', '--json');
    expect(asJson.code).toBe(20);
    expect(JSON.parse(asJson.stdout)).toMatchObject({ error: { code: 'DATA_INVALID', exit_code: 20, message: expect.stringMatching(/broken\.mjs:4: /) } });

    // A name that breaks the rule, or the bundled pipeline's name: 20 naming the config key and the rule.
    writeFileSync(join(dir, 'metaspn.config.json'), JSON.stringify({ pipelines: { 'Daily Projections': './pipeline.mjs' } }));
    const badName = await pipeline(dir, 'list');
    expect(badName.code).toBe(20);
    expectOneLineError(badName, /metaspn\.config\.json: pipelines\.Daily Projections: pipeline name "Daily Projections" must match \[a-z\]\[a-z0-9_-\]\{0,63\}$/);
    writeFileSync(join(dir, 'metaspn.config.json'), JSON.stringify({ pipelines: { s1: './pipeline.mjs' } }));
    const taken = await pipeline(dir, 'list');
    expect(taken.code).toBe(20);
    expectOneLineError(taken, /pipelines\.s1: s1 is the bundled pipeline's name/);
  }, 120_000);

  it('a declared input that is missing fails its step with 20 naming the file; a backfill reaching a date not over is 10 naming its --end', async () => {
    const dir = example();
    rmSync(join(dir, 'inputs', 'status.jsonl'));
    const r = await run(dir, '2026-03-03');
    expect(r.code).toBe(20);
    expect(r.stdout).toMatch(/failed: minutes: inputs\/status\.jsonl: step minutes of pipeline daily-projections reads this input, and it is missing/);
    expect(existsSync(pointerPath(dir, '2026-03-03'))).toBe(false);
    const end = new Date(Date.now() + 3 * 86_400_000).toISOString().slice(0, 10);
    const lastOver = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
    const bf = await pipeline(dir, 'backfill', NAME, '--start', '2026-03-01', '--end', end);
    expect(bf.code).toBe(10);
    expectOneLineError(bf, new RegExp(`^error: --end ${end} is not over yet \\(the last date that is over is ${lastOver}\\); nothing was run$`));
    expect(bf.stderr).toContain(`hint: end the range at ${lastOver}`);
  }, 120_000);

  it('a module that breaks a definition rule is 64 with a one-line error', async () => {
    const dir = example();
    const src = readFileSync(join(dir, 'pipeline.mjs'), 'utf8');
    const variant = (file: string, from: string, to: string): void => {
      expect(src).toContain(from);
      writeFileSync(join(dir, file), src.replace(from, to));
    };
    variant('cycle.mjs', "  inputs: ['boxscores.jsonl', 'players.jsonl'],", "  after: ['finalize'],\n  inputs: ['boxscores.jsonl', 'players.jsonl'],");
    variant('unknown.mjs', "after: ['minutes', 'rates'],", "after: ['minutes', 'rate'],");
    writeFileSync(join(dir, 'metaspn.config.json'), JSON.stringify({ pipelines: { cycle: './cycle.mjs', unknown: './unknown.mjs' } }));
    // The module names itself daily-projections; the rule it breaks is reported first.
    const cycle = await pipeline(dir, 'show', 'cycle');
    expect(cycle.code).toBe(64);
    expectOneLineError(cycle, /^error: pipeline daily-projections: steps .*ingest.* form a cycle \(.*cycle\.mjs\)$/);
    const dep = await pipeline(dir, 'run', 'unknown', '--date', '2026-03-03');
    expect(dep.code).toBe(64);
    expectOneLineError(dep, /^error: pipeline daily-projections: step sim depends on unknown step rate \(.*unknown\.mjs\)$/);
    expect(existsSync(join(dir, 'manifests'))).toBe(false);
  }, 120_000);
});
