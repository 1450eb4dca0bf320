import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempWorkspace } from './cli.js';
import { cliIn } from './in-process.js';
import { projectionIds, specCountedDigest, specInputsDigest } from './s1-spec.js';

const STORE = ['s1_attention_scores.jsonl', 's1_reward_projections.jsonl', 's1_settlements.jsonl', 's1_summaries.jsonl'];
const STEPS = ['update_attention_scores', 'project_rewards', 'settle_season', 'publish_season_summary'];

function storeHashes(ws: string): string[] {
  return STORE.map((f) =>
    existsSync(join(ws, 'store', f))
      ? createHash('sha256')
          .update(readFileSync(join(ws, 'store', f)))
          .digest('hex')
      : 'missing',
  );
}

function lines(path: string): string[] {
  return readFileSync(path, 'utf8').split('\n').filter(Boolean);
}

function storeEmpty(ws: string): boolean {
  return !existsSync(join(ws, 'store')) || readdirSync(join(ws, 'store')).filter((f) => f.endsWith('.jsonl')).length === 0;
}

describe('metaspn s1 run-local', () => {
  it('runs the four stages, writes artifacts, manifests, the pointer and the log, exits 0', async () => {
    const ws = tempWorkspace();
    const r = await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15', '--run-id', 'r1']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('published: manifests/current/s1/date=2026-01-15.json');
    for (const f of STORE) expect(lines(join(ws, 'store', f)).length).toBeGreaterThan(0);
    // The params the spec gives: the inputs digest of the date's window, and for stages 3-4 the
    // counted digest over the projection rows settlement counts (this run's only: nothing else is published).
    const params12 = { as_of: '2026-01-16T00:00:00.000Z', config_hash: '3bbf9e591339f3a2', inputs: specInputsDigest(join(ws, 'inputs', 's1_signals.jsonl'), '2026-01-15') };
    const ids = projectionIds(join(ws, 'store', 's1_reward_projections.jsonl'), '2026-01-15', params12);
    expect(ids.length).toBeGreaterThan(0);
    const params34 = { ...params12, counted: specCountedDigest(ids) };
    for (const step of STEPS) {
      const m = JSON.parse(readFileSync(join(ws, 'manifests', step, 'date=2026-01-15', 'run=r1', 'manifest.json'), 'utf8'));
      expect(m).toMatchObject({ schema_version: 1, run_id: 'r1', step, date: '2026-01-15', as_of: '2026-01-16T00:00:00.000Z', provisional: false, status: 'success', exit_code: 0 });
      expect(m.params).toEqual(step === 'settle_season' || step === 'publish_season_summary' ? params34 : params12);
      expect(m.checks.length).toBeGreaterThan(0);
      expect(m.checks.every((c: { status: string }) => c.status === 'pass')).toBe(true);
      expect(m.outputs[0].sha256).toMatch(/^[0-9a-f]{64}$/);
    }
    const first = JSON.parse(readFileSync(join(ws, 'manifests', 'update_attention_scores', 'date=2026-01-15', 'run=r1', 'manifest.json'), 'utf8'));
    expect(first.inputs).toEqual([
      {
        path: 'inputs/s1_signals.jsonl',
        sha256: createHash('sha256')
          .update(readFileSync(join(ws, 'inputs', 's1_signals.jsonl')))
          .digest('hex'),
        rows: 12000,
        digest: params12.inputs,
      },
    ]);
    const ptr = JSON.parse(readFileSync(join(ws, 'manifests', 'current', 's1', 'date=2026-01-15.json'), 'utf8'));
    expect(ptr).toMatchObject({ run_id: 'r1', date: '2026-01-15', params: params34 });
    expect(ptr.summary_id).toMatch(/^sum_[0-9a-f]{24}$/);
    const logLines = lines(join(ws, 'logs', 'metaspn.jsonl'));
    // One run_id field a line (a JSON object with a key twice reads as the last one only).
    expect(logLines.filter((l) => l.split('"run_id":').length > 2)).toEqual([]);
    const events = logLines.map((l) => JSON.parse(l));
    const stageEnds = events.filter((e) => e.event === 'stage_end');
    expect(stageEnds.map((e) => [e.stage, e.rc, e.run_id])).toEqual(STEPS.map((s) => [s, 0, 'r1']));
    expect(stageEnds.every((e) => typeof e.duration_ms === 'number')).toBe(true);
    const summary = JSON.parse(lines(join(ws, 'store', 's1_summaries.jsonl'))[0]!);
    expect(summary).toMatchObject({
      stage: 'publish_season_summary',
      date: '2026-01-15',
      season_id: 's1',
      pool_units: 1000000,
      allocated_units: 1000000,
      settlement_status: 'provisional',
      days_counted: 1,
    });
    // Released: the lock says who ran last, and that nobody holds it.
    const lock = JSON.parse(readFileSync(join(ws, 'locks', 's1.lock'), 'utf8'));
    expect(lock).toMatchObject({ active: 0, reason: 'scheduled' });
  });

  it('a replay leaves every store file byte-identical; settlement counts the earlier published date', async () => {
    const ws = tempWorkspace();
    expect((await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-14'])).code).toBe(0);
    expect((await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15'])).code).toBe(0);
    const before = storeHashes(ws);
    const again = await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15', '--json']);
    expect(again.code).toBe(0);
    const report = JSON.parse(again.stdout);
    expect(report.stages.map((s: { outputs: { rows_written: number }[] }) => s.outputs[0]!.rows_written)).toEqual([0, 0, 0, 0]);
    expect(report.stages[0].tasks.rerun).toBeGreaterThan(0);
    expect(storeHashes(ws)).toEqual(before);
    const summaries = lines(join(ws, 'store', 's1_summaries.jsonl')).map((l) => JSON.parse(l));
    expect(summaries.map((s) => [s.date, s.days_counted])).toEqual([
      ['2026-01-14', 1],
      ['2026-01-15', 2],
    ]);
  });

  it('a replay whose inputs changed writes a new set of rows beside the old ones and restates the date', async () => {
    const ws = tempWorkspace();
    expect((await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15', '--run-id', 'r1'])).code).toBe(0);
    const before = STORE.map((f) => readFileSync(join(ws, 'store', f), 'utf8'));
    const input = join(ws, 'inputs', 's1_signals.jsonl');
    const all = lines(input);
    const changed = JSON.parse(all[4]!);
    changed.value = 7;
    all[4] = JSON.stringify(changed);
    writeFileSync(input, `${all.join('\n')}\n`);
    const r = await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15', '--run-id', 'r2', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ status: 'published', restatement_of: 'r1' });
    expect(report.params.inputs).toBe(specInputsDigest(input, '2026-01-15'));
    // Every stage wrote a complete new set; the old rows stay as they were, in front.
    expect(report.stages.map((s: { outputs: { rows_written: number; rows_present: number }[] }) => s.outputs[0]!.rows_present)).toEqual([0, 0, 0, 0]);
    STORE.forEach((f, i) => expect(readFileSync(join(ws, 'store', f), 'utf8').startsWith(before[i]!)).toBe(true));
    const entry = JSON.parse(lines(join(ws, 'ledger.jsonl')).at(-1)!);
    expect(entry.detail).toMatchObject({ date: '2026-01-15', restatement_of: 'r1', previous: { run_id: 'r1' }, pointer: { run_id: 'r2' } });
    expect(existsSync(join(ws, 'reports', 'incidents'))).toBe(false);
  });

  it('a row changed under its id (corruption) exits 30 with an incident, overwriting nothing', async () => {
    const ws = tempWorkspace();
    expect((await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15'])).code).toBe(0);
    // The same id with other content: what only corruption or non-determinism can make.
    const scores = join(ws, 'store', 's1_attention_scores.jsonl');
    const row = JSON.parse(lines(scores)[0]!);
    writeFileSync(scores, `${readFileSync(scores, 'utf8')}${JSON.stringify({ ...row, score: row.score + 1 })}\n`);
    const before = storeHashes(ws);
    const r = await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15']);
    expect(r.code).toBe(30);
    expect(r.stdout).toContain('replay conflict');
    expect(r.stdout).toContain('not published');
    expect(storeHashes(ws)).toEqual(before);
    const incidents = readdirSync(join(ws, 'reports', 'incidents'));
    expect(incidents).toHaveLength(1);
    const inc = JSON.parse(readFileSync(join(ws, 'reports', 'incidents', incidents[0]!), 'utf8'));
    expect(inc).toMatchObject({ kind: 'replay_conflict', id: row.id });
    expect(inc.existing.score).toBe(row.score + 1);
    expect(inc.incoming.score).toBe(row.score);
  });

  it('a date outside the season exits 10 and writes nothing', async () => {
    const ws = tempWorkspace();
    const r = await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-04-01']);
    expect(r.code).toBe(10);
    expect(r.stderr).toContain('--date 2026-04-01 is outside season s1 (2026-01-01 to 2026-03-31)');
    expect(readdirSync(ws).sort()).toEqual(['inputs']);
  });

  it('a bad input line exits 20 naming file, line and rule, and writes nothing', async () => {
    const ws = tempWorkspace();
    const input = join(ws, 'inputs', 's1_signals.jsonl');
    const all = lines(input);
    all[41] = '{"signal_id":"x1","ts":"2026-01-10T00:00:00Z","subject_ref":"creator:a","kind":"poke"}';
    writeFileSync(input, `${all.join('\n')}\n`);
    const r = await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15']);
    expect(r.code).toBe(20);
    expect(r.stderr.split('\n')[0]).toMatch(/^error: .*inputs\/s1_signals\.jsonl:42: kind/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(storeEmpty(ws)).toBe(true);
    expect(existsSync(join(ws, 'manifests'))).toBe(false);
  });

  it('a malformed config exits 20 naming the file', async () => {
    const ws = tempWorkspace({ config: { season: { daily_pool_units: -5 } } });
    const r = await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15']);
    expect(r.code).toBe(20);
    expect(r.stderr).toContain('metaspn.config.json');
    expect(r.stderr).toContain('daily_pool_units');
  });

  it('bad flag values exit 64 with a message and no stack', async () => {
    const ws = tempWorkspace();
    const bad = [
      ['--date', '2026-02-30'],
      ['--date', '2026-13-01'],
      ['--date', '2026-01-15', '--as-of', '2026-01-17T00:00:00Z'],
      ['--date', '2026-01-15', '--run-id', '../x'],
      ['--date', '2026-01-15', '--on-lock-held', 'sometimes'],
    ];
    for (const args of bad) {
      const r = await cliIn(['s1', 'run-local', '--workspace', ws, ...args]);
      expect(r.code, args.join(' ')).toBe(64);
      expect(r.stderr).toMatch(/^error: /);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    expect((await cliIn(['s1', 'run-local', '--workspace', join(ws, 'nope'), '--date', '2026-01-15'])).code).toBe(64);
  });

  it('--as-of excludes later signals and changes the ids', async () => {
    const ws = tempWorkspace();
    const r = await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15', '--as-of', '2026-01-15T12:00:00Z', '--json']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.as_of).toBe('2026-01-15T12:00:00.000Z');
    const rows = lines(join(ws, 'store', 's1_attention_scores.jsonl')).map((l) => JSON.parse(l));
    expect(rows.every((x) => x.params.as_of === '2026-01-15T12:00:00.000Z')).toBe(true);
  });
});

describe('metaspn smoke', () => {
  it('passes on the bundled demo and never writes into the workspace store', async () => {
    const ws = tempWorkspace({ demo: false });
    const r = await cliIn(['smoke', '--workspace', ws]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n').at(-1)).toBe('STATUS=PASS');
    expect(existsSync(join(ws, 'store'))).toBe(false);
    const events = lines(join(ws, 'logs', 'metaspn.jsonl')).map((l) => JSON.parse(l));
    expect(events.at(-1)).toMatchObject({ module: 'smoke', event: 'smoke_summary', status: 'PASS', rc: 0 });
  });

  it('fails with STATUS=FAIL and a non-zero code when the config makes the run fail', async () => {
    const ws = tempWorkspace({ demo: false, config: { attention: { weights: { view: 1 } } } });
    const r = await cliIn(['smoke', '--workspace', ws]);
    expect(r.code).toBe(20);
    expect(r.stdout).toMatch(/STATUS=FAIL reason=.*kind/);
    // A failed smoke keeps its workspace for forensics and names it; the test removes it.
    const kept = /smoke workspace kept at (\S+)\)/.exec(r.stdout)?.[1];
    expect(kept).toBeDefined();
    rmSync(kept!, { recursive: true, force: true });
  });
});
