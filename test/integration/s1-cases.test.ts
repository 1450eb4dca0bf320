import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Run, tempWorkspace } from './cli.js';
import { cliIn } from './in-process.js';
import { http, startServe } from './serve-process.js';
import { projectionIds, specCountedDigest, specInputsDigest, storeRows } from './s1-spec.js';

/**
 * The cases of issue 10, tried as a new user would: a fresh workspace with the demo inputs, the
 * real CLI. None of them may leave a date stuck: each ends with the date published.
 */

const DAY = 86_400_000;
/** Each case runs the CLI 3 to 10 times: on a loaded 2-core machine that can take well over a minute. */
const SLOW = 240_000;
const utcDate = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

const ptrFile = (ws: string, d: string): string => join(ws, 'manifests', 'current', 's1', `date=${d}.json`);
const ptr = (ws: string, d: string): { run_id: string; summary_id: string; params: Record<string, string> } | null =>
  existsSync(ptrFile(ws, d)) ? JSON.parse(readFileSync(ptrFile(ws, d), 'utf8')) : null;
const ledger = (ws: string): { kind: string; run_id?: string; detail: Record<string, unknown> }[] =>
  readFileSync(join(ws, 'ledger.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
const manifest = (ws: string, step: string, date: string, run: string): Record<string, unknown> =>
  JSON.parse(readFileSync(join(ws, 'manifests', step, `date=${date}`, `run=${run}`, 'manifest.json'), 'utf8'));
const summaryOf = (ws: string, date: string): Record<string, unknown> => {
  const p = ptr(ws, date)!;
  return storeRows(join(ws, 'store', 's1_summaries.jsonl')).find((r) => r.id === p.summary_id)!;
};
const stats = async (ws: string, q: string): Promise<Record<string, number>> => JSON.parse((await cliIn(['queue', 'stats', q, '--workspace', ws, '--json'])).stdout);

function runLocal(ws: string, date: string, extra: string[] = []): Promise<Run> {
  return cliIn(['s1', 'run-local', '--workspace', ws, '--date', date, ...extra]);
}

/** Every file under the folders a run writes, with its size and content hash: "nothing written" compares two of these. */
function snapshot(ws: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string): void => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else out[p.slice(ws.length + 1)] = `${statSync(p).size}:${createHash('sha256').update(readFileSync(p)).digest('hex')}`;
    }
  };
  for (const d of ['store', 'manifests', 'queue', 'ledger.jsonl']) {
    const p = join(ws, d);
    if (existsSync(p) && statSync(p).isFile()) out[d] = createHash('sha256').update(readFileSync(p)).digest('hex');
    else walk(p);
  }
  return out;
}

describe('issue 10: Season 1 runs are never stuck', () => {
  it(
    '01-02, then 01-01, then 01-02 again: all 0; the last restates 01-02 with a settlement that counts both dates',
    async () => {
      const ws = tempWorkspace();
      const input = join(ws, 'inputs', 's1_signals.jsonl');
      expect((await runLocal(ws, '2026-01-02', ['--run-id', 'a'])).code).toBe(0);
      expect(summaryOf(ws, '2026-01-02').days_counted).toBe(1);
      expect((await runLocal(ws, '2026-01-01', ['--run-id', 'b'])).code).toBe(0);
      const again = await runLocal(ws, '2026-01-02', ['--run-id', 'c']);
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout).toContain('published: manifests/current/s1/date=2026-01-02.json (restates run a)');

      // The ledger records the publish as a restatement of the run it replaces.
      const last = ledger(ws).at(-1)!;
      expect(last).toMatchObject({ kind: 'publish', run_id: 'c', detail: { date: '2026-01-02', restatement_of: 'a', previous: { run_id: 'a' }, pointer: { run_id: 'c' } } });

      // Stages 1-2 of 01-02 kept their ids (same inputs); stages 3-4 count 01-01 now: new ids.
      const p = ptr(ws, '2026-01-02')!;
      const params12 = { as_of: '2026-01-03T00:00:00.000Z', config_hash: '3bbf9e591339f3a2', inputs: specInputsDigest(input, '2026-01-02') };
      const projections = join(ws, 'store', 's1_reward_projections.jsonl');
      const counted = [
        ...projectionIds(projections, '2026-01-01', { ...params12, as_of: '2026-01-02T00:00:00.000Z', inputs: specInputsDigest(input, '2026-01-01') }),
        ...projectionIds(projections, '2026-01-02', params12),
      ];
      expect(p.params).toEqual({ ...params12, counted: specCountedDigest(counted) });
      const summary = summaryOf(ws, '2026-01-02');
      expect(summary.days_counted).toBe(2);
      const settlements = storeRows(join(ws, 'store', 's1_settlements.jsonl')).filter((r) => r.date === '2026-01-02' && (r.params as { counted: string }).counted === p.params.counted);
      const units = (d: string): number =>
        storeRows(projections)
          .filter((r) => r.date === d && (r.params as { inputs: string }).inputs === specInputsDigest(input, d))
          .reduce((a, r) => a + (r.projected_units as number), 0);
      expect(settlements.reduce((a, r) => a + (r.settled_units as number), 0)).toBe(units('2026-01-01') + units('2026-01-02'));
      expect(Math.max(...settlements.map((r) => r.days_counted as number))).toBe(2);
      // The first publish of 01-02 stays in the store, immutable, beside the restatement.
      expect(storeRows(join(ws, 'store', 's1_summaries.jsonl')).filter((r) => r.date === '2026-01-02')).toHaveLength(2);
    },
    SLOW,
  );

  it(
    'a paused settle_season: 01-02 exits 11; 01-01 runs without touching its task; 01-02 then publishes, its old task cancelled',
    async () => {
      const ws = tempWorkspace();
      expect((await cliIn(['queue', 'pause', 'settle_season', '--workspace', ws])).code).toBe(0);
      expect((await runLocal(ws, '2026-01-02', ['--run-id', 'a'])).code).toBe(11);
      expect(await stats(ws, 'settle_season')).toMatchObject({ ready: 1, completed: 0 });
      expect((await cliIn(['queue', 'resume', 'settle_season', '--workspace', ws])).code).toBe(0);

      expect((await runLocal(ws, '2026-01-01', ['--run-id', 'b'])).code).toBe(0);
      // 01-02's task is still there, not executed: only 01-01's ran.
      expect(await stats(ws, 'settle_season')).toMatchObject({ ready: 1, completed: 1 });
      expect(storeRows(join(ws, 'store', 's1_settlements.jsonl')).every((r) => r.date === '2026-01-01')).toBe(true);

      const r = await runLocal(ws, '2026-01-02', ['--run-id', 'c']);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(ptr(ws, '2026-01-02')?.run_id).toBe('c');
      expect(summaryOf(ws, '2026-01-02').days_counted).toBe(2);
      // Planned before 01-01 was published, the old task was superseded: cancelled, never run.
      expect(await stats(ws, 'settle_season')).toMatchObject({ ready: 0, completed: 2, cancelled: 1 });
    },
    SLOW,
  );

  it(
    'a task whose counted runs changed since it was planned fails as a contract error under worker run, writing nothing',
    async () => {
      const ws = tempWorkspace();
      await cliIn(['queue', 'pause', 'settle_season', '--workspace', ws]);
      expect((await runLocal(ws, '2026-01-02')).code).toBe(11);
      await cliIn(['queue', 'resume', 'settle_season', '--workspace', ws]);
      expect((await runLocal(ws, '2026-01-01')).code).toBe(0);
      const before = readFileSync(join(ws, 'store', 's1_settlements.jsonl'), 'utf8');
      const w = await cliIn(['worker', 'run', 'metaspn_ops.workers.s1:SettleSeasonWorker', '--workspace', ws, '--once']);
      expect(w.code).toBe(20);
      const dead = (
        JSON.parse((await cliIn(['queue', 'deadletter', 'list', 'settle_season', '--workspace', ws, '--json'])).stdout) as { dead_letters: { reason: { kind: string; message: string } }[] }
      ).dead_letters;
      expect(dead).toHaveLength(1);
      expect(dead[0]!.reason.kind).toBe('contract');
      expect(dead[0]!.reason.message).toMatch(/settle_season of 2026-01-02: counted digest mismatch: the task expects [0-9a-f]{16}, .* give [0-9a-f]{16} now/);
      expect(readFileSync(join(ws, 'store', 's1_settlements.jsonl'), 'utf8')).toBe(before);
    },
    SLOW,
  );

  it(
    'a task whose inputs changed since it was planned fails as a contract error under worker run, writing nothing',
    async () => {
      const ws = tempWorkspace();
      await cliIn(['queue', 'pause', 'project_rewards', '--workspace', ws]);
      expect((await runLocal(ws, '2026-01-15')).code).toBe(11);
      const input = join(ws, 'inputs', 's1_signals.jsonl');
      const expected = specInputsDigest(input, '2026-01-15');
      const all = readFileSync(input, 'utf8').split('\n').filter(Boolean);
      const i = all.findIndex((l) => l.includes('"ts":"2026-01-15'));
      all[i] = JSON.stringify({ ...JSON.parse(all[i]!), value: 9 });
      writeFileSync(input, `${all.join('\n')}\n`);
      const found = specInputsDigest(input, '2026-01-15');
      await cliIn(['queue', 'resume', 'project_rewards', '--workspace', ws]);
      const w = await cliIn(['worker', 'run', 'metaspn_ops.workers.s1:ProjectRewardsWorker', '--workspace', ws, '--once']);
      expect(w.code).toBe(20);
      const dead = (
        JSON.parse((await cliIn(['queue', 'deadletter', 'list', 'project_rewards', '--workspace', ws, '--json'])).stdout) as { dead_letters: { reason: { kind: string; message: string } }[] }
      ).dead_letters;
      expect(dead[0]!.reason).toMatchObject({ kind: 'contract' });
      expect(dead[0]!.reason.message).toContain(`project_rewards of 2026-01-15: inputs digest mismatch: the task expects ${expected}, inputs/s1_signals.jsonl gives ${found} now`);
      const projections = join(ws, 'store', 's1_reward_projections.jsonl');
      expect(existsSync(projections) ? readFileSync(projections, 'utf8') : '').toBe('');
      // The date is not stuck: a run plans it anew under the new inputs.
      expect((await runLocal(ws, '2026-01-15')).code).toBe(0);
    },
    SLOW,
  );

  it(
    'backfill 01-01..05; an emptied inputs file halts 01-06 with 60; restored, 01-06 publishes',
    async () => {
      const ws = tempWorkspace();
      const input = join(ws, 'inputs', 's1_signals.jsonl');
      const demo = readFileSync(input, 'utf8');
      expect((await cliIn(['s1', 'backfill', '--workspace', ws, '--start', '2026-01-01', '--end', '2026-01-05'])).code).toBe(0);
      writeFileSync(input, '');
      const empty = await runLocal(ws, '2026-01-06', ['--run-id', 'empty']);
      expect(empty.code).toBe(60);
      expect(empty.stdout).toContain('check window_has_signals');
      expect(ptr(ws, '2026-01-06')).toBeNull();
      writeFileSync(input, demo);
      const r = await runLocal(ws, '2026-01-06', ['--run-id', 'full']);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(ptr(ws, '2026-01-06')?.run_id).toBe('full');
      expect(summaryOf(ws, '2026-01-06').days_counted).toBe(6);
    },
    SLOW,
  );

  it(
    'a window with no signal halts with 60 by the built-in check, with no history; --skip-check publishes through it',
    async () => {
      // Truncated inputs: the first 100 lines, all on 2026-01-01; 2026-03-01's window (02-02..03-01) holds none.
      const ws = tempWorkspace();
      const input = join(ws, 'inputs', 's1_signals.jsonl');
      writeFileSync(input, `${readFileSync(input, 'utf8').split('\n').slice(0, 100).join('\n')}\n`);
      const r = await runLocal(ws, '2026-03-01', ['--run-id', 'h']);
      expect(r.code).toBe(60);
      expect(r.stdout).toContain('check window_has_signals tripped');
      expect(ptr(ws, '2026-03-01')).toBeNull();
      const m = manifest(ws, 'publish_season_summary', '2026-03-01', 'h');
      expect(m).toMatchObject({ status: 'failed', exit_code: 60, error: { class: 'AnomalyHalt' } });
      expect((m.checks as { name: string; status: string }[]).find((c) => c.name === 'window_has_signals')).toMatchObject({
        status: 'fail',
        observed: { signals: 0, first: '2026-02-02', last: '2026-03-01', as_of: '2026-03-02T00:00:00.000Z' },
      });
      expect(readdirSync(join(ws, 'reports', 'incidents')).some((f) => f.includes('anomaly_halt') && f.includes('window_has_signals'))).toBe(true);

      const through = await runLocal(ws, '2026-03-01', ['--run-id', 's', '--skip-check', 'window_has_signals', '--reason', 'season paused in February']);
      expect(through.code, through.stderr).toBe(0);
      expect(ptr(ws, '2026-03-01')?.run_id).toBe('s');
      expect(ledger(ws).at(-1)!.detail.skipped_checks).toEqual([{ name: 'window_has_signals', reason: 'season paused in February' }]);
      const unknown = await runLocal(ws, '2026-03-01', ['--skip-check', 'no_such_check', '--reason', 'x']);
      expect(unknown.code).toBe(64);
      expect(unknown.stderr).toContain('window_has_signals');
    },
    SLOW,
  );

  it(
    'a date not over yet, or an --as-of later than now, exits 10 and writes nothing; an --as-of not later than now runs provisionally',
    async () => {
      // "Today" must stay today while the test runs: close to midnight UTC, start once the day has turned.
      const untilMidnight = DAY - (Date.now() % DAY);
      if (untilMidnight < 180_000) await new Promise((r) => setTimeout(r, untilMidnight + 1_000));
      const now = Date.now();
      const today = utcDate(now);
      const tomorrow = utcDate(now + DAY);
      const yesterday = utcDate(now - DAY);
      // A season that reaches past tomorrow, and signals of yesterday and of two hours ago.
      const signals = [
        { signal_id: 'y1', ts: `${yesterday}T12:00:00Z`, subject_ref: 'creator:a', kind: 'like' },
        { signal_id: 'y2', ts: `${yesterday}T13:00:00Z`, subject_ref: 'creator:b', kind: 'view' },
        { signal_id: 't1', ts: `${new Date(now - 2 * 3_600_000).toISOString().slice(0, 19)}Z`, subject_ref: 'creator:a', kind: 'view' },
      ];
      const ws = tempWorkspace({ signals: `${signals.map((s) => JSON.stringify(s)).join('\n')}\n`, config: { season: { start: '2026-01-01', end: '2099-12-31' } } });
      const inHour = new Date(now + 3_600_000).toISOString();

      const cases: [string[], RegExp][] = [
        [['--date', tomorrow], new RegExp(`--date ${tomorrow} is not over yet`)],
        [['--date', today], new RegExp(`--date ${today} is not over yet`)],
        [['--date', today, '--as-of', inHour], /--as-of .* is later than the clock/],
        [['--date', tomorrow, '--as-of', inHour], /--as-of .* is later than the clock/],
      ];
      for (const [args, message] of cases) {
        const r = await cliIn(['s1', 'run-local', '--workspace', ws, ...args]);
        expect(r.code, args.join(' ')).toBe(10);
        expect(r.stderr).toMatch(message);
      }
      const b = await cliIn(['s1', 'backfill', '--workspace', ws, '--start', yesterday, '--end', tomorrow]);
      expect(b.code).toBe(10);
      expect(b.stderr).toContain('not over yet');
      // Run starts from the ops server go through the same plan: 409 with the same message, in
      // the body's words ("date", not --date).
      const token = 'test-admin-token-0123456789';
      const served = await startServe(ws, { env: { METASPN_ADMIN_TOKEN: token } });
      try {
        const open = await http('POST', `${served.url}/api/runs`, { token, body: { date: tomorrow } });
        expect(open.status).toBe(409);
        expect((open.json as { error: string }).error).toContain(`"date" ${tomorrow} is not over yet`);
        expect(JSON.stringify(open.json)).not.toContain('--');
        const later = await http('POST', `${served.url}/api/runs`, { token, body: { date: today, as_of: inHour } });
        expect(later.status).toBe(409);
        expect(JSON.stringify(later.json)).toContain('is later than the clock');
      } finally {
        await served.stop();
      }
      // Nothing written: no store, manifests, queue or ledger.
      expect(snapshot(ws)).toEqual({});

      const asOf = new Date(now - 60_000).toISOString();
      const r = await cliIn(['s1', 'run-local', '--workspace', ws, '--date', today, '--as-of', asOf, '--run-id', 'p', '--json']);
      expect(r.code, r.stderr).toBe(0);
      const report = JSON.parse(r.stdout);
      expect(report).toMatchObject({ status: 'published', provisional: true, as_of: asOf });
      for (const step of ['update_attention_scores', 'project_rewards', 'settle_season', 'publish_season_summary']) {
        expect(manifest(ws, step, today, 'p'), step).toMatchObject({ provisional: true, as_of: asOf, status: 'success' });
      }
      expect(ledger(ws).at(-1)!.detail).toMatchObject({ date: today, provisional: true });
      // A closed day is not provisional.
      const closed = await cliIn(['s1', 'run-local', '--workspace', ws, '--date', yesterday, '--json']);
      expect(closed.code, closed.stderr).toBe(0);
      expect(JSON.parse(closed.stdout).provisional).toBe(false);
    },
    SLOW,
  );

  it(
    'doctor and backfill --resume call a published date whose upstream changed stale; --resume restates it',
    async () => {
      const ws = tempWorkspace();
      const input = join(ws, 'inputs', 's1_signals.jsonl');
      expect((await runLocal(ws, '2026-01-02', ['--run-id', 'a'])).code).toBe(0);
      expect((await runLocal(ws, '2026-01-01', ['--run-id', 'b'])).code).toBe(0);
      type Finding = { severity: string; area: string; path: string; message: string; fix: string };
      const findings = async (): Promise<Finding[]> => {
        const d = await cliIn(['doctor', '--workspace', ws, '--json']);
        expect(d.code, d.stdout).toBe(0);
        return JSON.parse(d.stdout).findings;
      };
      // 01-01 was published after 01-02: 01-02's settlement no longer counts what a run would count now.
      const counted = await findings();
      expect(counted).toEqual([
        {
          severity: 'warning',
          area: 'stale',
          path: 'manifests/current/s1/date=2026-01-02.json',
          message: expect.stringContaining('s1 2026-01-02 is stale (published by run a): an earlier date was published or rolled back since: counted digest'),
          fix: `re-run the date: metaspn s1 run-local --workspace ${ws} --date 2026-01-02`,
        },
      ]);

      // A corrected signal of 01-01 changes the inputs of both dates.
      const all = readFileSync(input, 'utf8').split('\n').filter(Boolean);
      const i = all.findIndex((l) => l.includes('"ts":"2026-01-01'));
      all[i] = JSON.stringify({ ...JSON.parse(all[i]!), value: 5 });
      writeFileSync(input, `${all.join('\n')}\n`);
      const inputs = await findings();
      expect(inputs.map((f) => f.path)).toEqual(['manifests/current/s1/date=2026-01-01.json', 'manifests/current/s1/date=2026-01-02.json']);
      expect(inputs[0]!.message).toContain(
        `inputs changed: inputs digest ${ptr(ws, '2026-01-01')!.params.inputs} was published, inputs/s1_signals.jsonl gives ${specInputsDigest(input, '2026-01-01')} now`,
      );
      expect(inputs[0]!.fix).toContain(`metaspn s1 backfill --workspace ${ws} --start 2026-01-01 --end 2026-01-02 --resume`);

      const r = await cliIn(['s1', 'backfill', '--workspace', ws, '--start', '2026-01-01', '--end', '2026-01-02', '--resume', '--json']);
      expect(r.code, r.stderr).toBe(0);
      const dates = JSON.parse(r.stdout).dates as Record<string, { status: string; stale?: string }>;
      expect(dates['2026-01-01']).toMatchObject({ status: 'published', stale: expect.stringContaining('inputs changed') });
      expect(dates['2026-01-02']).toMatchObject({ status: 'published', stale: expect.stringContaining('inputs changed') });
      expect(
        ledger(ws)
          .slice(-2)
          .map((e) => e.detail.restatement_of),
      ).toEqual(['b', 'a']);
      expect(await findings()).toEqual([]);
      // Nothing changed since: --resume skips both.
      const again = JSON.parse((await cliIn(['s1', 'backfill', '--workspace', ws, '--start', '2026-01-01', '--end', '2026-01-02', '--resume', '--json'])).stdout);
      expect(Object.values(again.dates).map((d) => (d as { status: string }).status)).toEqual(['skipped', 'skipped']);
    },
    SLOW,
  );

  it(
    '--run-id naming an existing run (or a backfill) exits 64 and overwrites nothing',
    async () => {
      const ws = tempWorkspace();
      expect((await runLocal(ws, '2026-01-10', ['--run-id', 'r1'])).code).toBe(0);
      const b = await cliIn(['s1', 'backfill', '--workspace', ws, '--start', '2026-01-11', '--end', '2026-01-11', '--json']);
      expect(b.code).toBe(0);
      const backfillId = JSON.parse(b.stdout).backfill_id as string;
      const before = snapshot(ws);
      for (const [date, id] of [
        ['2026-01-10', 'r1'],
        ['2026-01-12', 'r1'],
        ['2026-01-12', backfillId],
        ['2026-01-12', `${backfillId}.2026-01-11`],
      ] as const) {
        const r = await runLocal(ws, date, ['--run-id', id]);
        expect(r.code, `${date} ${id}`).toBe(64);
        expect(r.stderr).toContain(`--run-id ${id} names a run that already exists`);
        expect(r.stderr).not.toMatch(/\n\s+at /);
      }
      expect(snapshot(ws)).toEqual(before);
    },
    SLOW,
  );
});
