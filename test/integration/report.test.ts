// `metaspn report weekly` and `metaspn baseline capture`, through the real CLI (in the test process) over real runs.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { spec, tempWorkspace } from './cli.js';
import { cliIn } from './in-process.js';

async function ok(ws: string, args: string[], code = 0, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await cliIn([...args, '--workspace', ws], { env });
  expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(code);
  return r.stdout;
}

const today = (): string => new Date().toISOString().slice(0, 10);
const daysAgo = (n: number): string => new Date(Date.now() - n * 86_400_000).toISOString().slice(0, 10);

describe('metaspn report weekly', () => {
  it('below the minimum evidence: status=insufficient_evidence with observed vs required, exit 10, nothing written', async () => {
    const ws = tempWorkspace();
    await ok(ws, ['s1', 'run-local', '--date', '2026-01-15']);
    const j = JSON.parse(await ok(ws, ['report', 'weekly', '--json'], 10));
    expect(j).toMatchObject({
      status: 'insufficient_evidence',
      anchor_date: today(),
      evidence: { observed: { runs: 1, tasks: 303 }, required: { runs: 5, tasks: 25 } },
      files: null,
      exit_code: 10,
    });
    const text = await ok(ws, ['report', 'weekly', '--min-runs', '1', '--min-tasks', '1000'], 10);
    expect(text).toContain('status=insufficient_evidence; runs 1/1, tasks 303/1000 (observed/required)');
    // A week without runs (the anchor a fortnight back) has no evidence at all.
    const empty = JSON.parse(await ok(ws, ['report', 'weekly', '--json', '--anchor-date', daysAgo(14), '--min-runs', '1', '--min-tasks', '0'], 10));
    expect(empty.evidence.observed).toEqual({ runs: 0, tasks: 0 });
    expect(existsSync(join(ws, 'reports', 'weekly'))).toBe(false);
  });

  it('a normal week: runs, exit codes, throughput, dead letters, retries and alerts, as JSON and Markdown under reports/weekly/', async () => {
    const ws = tempWorkspace({ config: { reports: { weekly_min_runs: 2, weekly_min_tasks: 100 } } });
    await ok(ws, ['s1', 'run-local', '--date', '2026-01-15']);
    await ok(ws, ['s1', 'run-local', '--date', '2026-01-16']);
    await ok(ws, ['queue', 'enqueue', 'contract', '--payload', '{"n":1}']);
    await ok(ws, ['queue', 'enqueue', 'contract', '--payload', '{"n":2}']);
    await ok(ws, ['worker', 'run', spec('Contract'), '--once'], 20);
    await ok(ws, ['alerts', 'check'], 60);
    const ids = (JSON.parse(await ok(ws, ['queue', 'deadletter', 'list', 'contract', '--json'])) as { dead_letters: { task: { id: string } }[] }).dead_letters.map((d) => d.task.id);
    await ok(ws, ['queue', 'retry', 'contract', '--task-id', ids[0]!]);

    const j = JSON.parse(await ok(ws, ['report', 'weekly', '--json']));
    expect(j).toMatchObject({
      schema_version: 1,
      kind: 'weekly',
      status: 'ok',
      anchor_date: today(),
      evidence: { observed: { runs: 2, tasks: 606 }, required: { runs: 2, tasks: 100 } },
      runs: { total: 2, by_status: { success: 2 }, by_exit_code: { '0': 2 }, success_rate: 1 },
      throughput: { tasks_completed: 606, by_step: { update_attention_scores: 600, project_rewards: 2, settle_season: 2, publish_season_summary: 2 } },
      dead_letters: { in_runs: 0, new_by_worker: { contract: 1 }, waiting_now: { contract: 1 } },
      retries: { task_retries_in_runs: 0, deadletter_retries: 1, deadletter_tasks_retried: 1 },
      alerts: { opened: 1, sent: 0, opened_by_rule: { dead_letters_grew: 1 }, open_now: 1 },
      exit_code: 0,
    });
    expect(j.window).toEqual({ from: `${daysAgo(6)}T00:00:00.000Z`, to: new Date(Date.parse(`${today()}T00:00:00Z`) + 86_400_000).toISOString() });
    expect(j.runs.list.map((r: { date: string; exit_code: number; tasks_completed: number }) => [r.date, r.exit_code, r.tasks_completed])).toEqual([
      ['2026-01-15', 0, 303],
      ['2026-01-16', 0, 303],
    ]);
    expect(j.throughput.tasks_per_run_hour).toBeGreaterThan(0);

    const dir = join(ws, 'reports', 'weekly');
    expect(readdirSync(dir).sort()).toEqual([`weekly-${today()}.json`, `weekly-${today()}.md`]);
    const onDisk = JSON.parse(readFileSync(join(dir, `weekly-${today()}.json`), 'utf8'));
    expect(onDisk.evidence).toEqual(j.evidence);
    const md = readFileSync(join(dir, `weekly-${today()}.md`), 'utf8');
    expect(md).toContain(`# metaspn weekly report: week ending ${today()}`);
    expect(md).toContain('| by exit code | 0: 2 |');
    expect(md).toContain('606 task(s) completed');
    expect(md).toContain('dead-letter retries by operators: 1 (1 task(s))');
    expect(md).toContain('- opened: 1 (dead_letters_grew: 1)');

    const printed = await ok(ws, ['report', 'weekly', '--print-markdown']);
    expect(printed).toContain(`# metaspn weekly report: week ending ${today()}`);
    expect(printed).toContain('## Runs');
    const summary = await ok(ws, ['report', 'weekly', '--anchor-date', today()]);
    expect(summary).toMatch(/status=ok; runs 2\/2, tasks 606\/100/);
    expect(summary).toContain(`written: ${join(dir, `weekly-${today()}.json`)}`);

    // Usage errors: 64.
    await ok(ws, ['report', 'weekly', '--anchor-date', '2026-02-30'], 64);
    await ok(ws, ['report', 'weekly', '--json', '--print-markdown'], 64);
  });
});

describe('metaspn baseline capture', () => {
  it('writes a snapshot of queue stats, rates and thresholds to reports/baseline/, and the same as baseline_latest.json', async () => {
    const ws = tempWorkspace({ config: { queues: { project_rewards: { max_attempts: 7 } }, alerts: { oldest_ready_max_minutes: 45 } } });
    await ok(ws, ['s1', 'run-local', '--date', '2026-01-15']);
    await ok(ws, ['s1', 'run-local', '--date', '2026-01-16']);
    const out = await ok(ws, ['baseline', 'capture'], 0, { METASPN_SIGNING_SECRET: 'do-not-write-me', METASPN_ADMIN_TOKEN: 'nor-me', METASPN_ALERT_WEBHOOK_URL: 'http://127.0.0.1:9/x' });
    expect(out).toMatch(/^baseline \S+: 4 queue\(s\), 2 run\(s\): \d+ tasks\/hour, success rate 1, open alerts 0/);

    const dir = join(ws, 'reports', 'baseline');
    const files = readdirSync(dir).sort();
    expect(files).toHaveLength(2);
    expect(files[0]).toMatch(/^baseline-\d{8}T\d{6}Z\.json$/);
    expect(files[1]).toBe('baseline_latest.json');
    const text = readFileSync(join(dir, files[0]!), 'utf8');
    expect(readFileSync(join(dir, 'baseline_latest.json'), 'utf8')).toBe(text);
    expect(text).not.toContain('do-not-write-me');
    expect(text).not.toContain('nor-me');

    const b = JSON.parse(text);
    expect(Object.keys(b).sort()).toEqual(['captured_at', 'kind', 'lock', 'open_alerts', 'queues', 'rates', 'schema_version', 'thresholds', 'version', 'workspace']);
    expect(b).toMatchObject({ schema_version: 1, kind: 'baseline', lock: { held: false }, open_alerts: 0 });
    expect(Object.keys(b.queues).sort()).toEqual(['project_rewards', 'publish_season_summary', 'settle_season', 'update_attention_scores']);
    expect(b.queues.update_attention_scores).toMatchObject({ completed: 600, ready: 0, dead: 0, failure_ratio: 0, totals: { failed: 0, dead_lettered: 0, retried: 0 } });
    expect(b.rates).toMatchObject({ runs_considered: 2, tasks_completed: 606, success_rate: 1, incident_rate: 0, by_exit_code: { '0': 2 } });
    expect(b.rates.tasks_per_hour).toBeGreaterThan(0);
    expect(b.rates.run_seconds).toBeGreaterThan(0);
    expect(b.thresholds.policy.project_rewards).toMatchObject({ max_attempts: 7, stop_failure_ratio: 1, stop_window: 20, max_queue_size: 0 });
    expect(b.thresholds.policy.settle_season.max_attempts).toBe(5);
    expect(b.thresholds.guardrails.total_score_ratio).toMatchObject({ enabled: true, max_ratio: 10 });
    expect(b.thresholds.alerts).toMatchObject({
      oldest_ready_max_minutes: 45,
      failure_ratio_max: 0.1,
      failure_window_minutes: 10,
      failure_min_attempts: 20,
      cooldown_minutes: 60,
      webhook: true,
      signed: true,
    });
    expect(b.thresholds.reports).toEqual({ weekly_min_runs: 5, weekly_min_tasks: 25, baseline_runs: 20 });
    expect(b.thresholds.ops).toMatchObject({ env: 'development', write_enabled: true, signing: true });

    // --runs narrows the rates; --json prints the same snapshot with the files written.
    const one = JSON.parse(await ok(ws, ['baseline', 'capture', '--runs', '1', '--json']));
    expect(one.rates).toMatchObject({ runs_considered: 1, tasks_completed: 303 });
    expect(one.files.latest).toBe(join(dir, 'baseline_latest.json'));
  });
});
