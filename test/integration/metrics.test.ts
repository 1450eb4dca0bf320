// /metrics as Prometheus recommends: one metric per meaning for the latest run, the last success
// of each pipeline, a task-duration histogram per queue (kept by the worker processes), and
// metaspn_build_info; `promtool check metrics` clean when promtool is installed.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { parsePrometheusText, type PromFamily } from '../../src/ops/reports/prom-text.js';
import { buildServer } from '../../src/ops/server.js';
import { opsSettings } from '../../src/ops/settings.js';
import { workspacePaths } from '../../src/storage/paths.js';
import { BIN, spec, tempWorkspace } from './cli.js';
import { cliIn } from './in-process.js';

const VERSION = (JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
const promtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' }).status === 0;

async function scrape(ws: string): Promise<string> {
  const p = workspacePaths(ws);
  const app = await buildServer({ ws: p, cfg: loadConfig(p), settings: opsSettings({}), log: pino({ level: 'silent' }), bin: BIN, minFreeBytes: 1 });
  try {
    const r = await app.inject({ url: '/metrics' });
    expect(r.statusCode).toBe(200);
    return r.body;
  } finally {
    await app.close();
  }
}

describe('/metrics', () => {
  it('the latest run one metric per meaning, the last success, task durations per queue and outcome, build info', async () => {
    const ws = tempWorkspace();
    const started = Date.now();
    const s1 = await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15']);
    expect(s1.code, s1.stderr).toBe(0);
    for (const n of [1, 2]) expect((await cliIn(['queue', 'enqueue', 'ok', '--workspace', ws, '--payload', JSON.stringify({ n })])).code).toBe(0);
    expect((await cliIn(['worker', 'run', spec('Succeed'), '--workspace', ws, '--once'])).code).toBe(0);
    expect((await cliIn(['queue', 'enqueue', 'flaky', '--workspace', ws, '--payload', '{"fail":1}'])).code).toBe(0);
    // Its retry is not due within the run (a loaded machine must not let --once retry it).
    expect((await cliIn(['worker', 'run', spec('FailTimes'), '--workspace', ws, '--once'], { env: { METASPN_QUEUE_BACKOFF_BASE_MS: '60000', METASPN_QUEUE_BACKOFF_CAP_MS: '60000' } })).code).toBe(11);
    expect(existsSync(join(ws, 'ops', 'task-durations', 'ok.json'))).toBe(true);

    const text = await scrape(ws);
    const p = parsePrometheusText(text);
    expect(p.errors).toEqual([]);
    const fam = (n: string): PromFamily => {
      const f = p.families.get(n);
      if (!f) throw new Error(`no metric ${n} in:\n${text}`);
      return f;
    };
    const one = (n: string, labels: Record<string, string>): number | undefined => fam(n).samples.find((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v))?.value;

    // The latest run: one gauge per meaning, labelled by pipeline only.
    expect(p.families.has('metaspn_last_run_info')).toBe(false);
    expect(one('metaspn_last_run_exit_code', { pipeline: 's1' })).toBe(0);
    expect(one('metaspn_last_run_success', { pipeline: 's1' })).toBe(1);
    expect(one('metaspn_last_run_duration_seconds', { pipeline: 's1' })).toBeGreaterThan(0);
    const start = one('metaspn_last_run_start_timestamp_seconds', { pipeline: 's1' })!;
    const success = one('metaspn_last_success_timestamp_seconds', { pipeline: 's1' })!;
    expect(start * 1000).toBeGreaterThanOrEqual(started - 1000);
    expect(success).toBeGreaterThanOrEqual(start);
    expect(success * 1000).toBeLessThanOrEqual(Date.now());
    for (const n of ['metaspn_last_run_exit_code', 'metaspn_last_success_timestamp_seconds']) {
      expect(fam(n).type).toBe('gauge');
      for (const x of fam(n).samples) expect(Object.keys(x.labels)).toEqual(['pipeline']);
    }

    // Task durations: a histogram per worker and outcome, buckets cumulative, +Inf = count.
    const h = fam('metaspn_task_duration_seconds');
    expect(h.type).toBe('histogram');
    const series = (worker: string, outcome: string) => h.samples.filter((x) => x.labels.worker === worker && x.labels.outcome === outcome);
    const ok = series('ok', 'completed');
    expect(ok.find((x) => x.name === 'metaspn_task_duration_seconds_count')!.value).toBe(2);
    const buckets = ok.filter((x) => x.name === 'metaspn_task_duration_seconds_bucket');
    expect(buckets.at(-1)!.labels.le).toBe('+Inf');
    expect(buckets.at(-1)!.value).toBe(2);
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value);
    expect(ok.find((x) => x.name === 'metaspn_task_duration_seconds_sum')!.value).toBeGreaterThan(0);
    expect(series('flaky', 'failed').find((x) => x.name === 'metaspn_task_duration_seconds_count')!.value).toBe(1);
    // Season 1's stages count too.
    expect(series('update_attention_scores', 'completed').find((x) => x.name === 'metaspn_task_duration_seconds_count')!.value).toBe(300);

    expect(fam('metaspn_build_info').samples).toEqual([expect.objectContaining({ labels: { version: VERSION, nodejs_version: process.versions.node }, value: 1 })]);
    // Every family has its help, and units in the names where there are units.
    for (const f of p.families.values()) {
      expect(f.help, f.name).toBeTruthy();
      expect(f.name).toMatch(/^metaspn_/);
    }
  });

  it.skipIf(!promtool)('promtool check metrics finds nothing to say', async () => {
    const ws = tempWorkspace();
    expect((await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15'])).code).toBe(0);
    const r = spawnSync('promtool', ['check', 'metrics'], { input: await scrape(ws), encoding: 'utf8' });
    expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
    expect(r.status).toBe(0);
  });
});
