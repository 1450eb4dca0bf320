// `metaspn serve --database-url`, /ops, the JSON API, /metrics and the alert rules on PostgreSQL:
// the database's queues (counters, dead letters, retry and discard), runs, pointers, run locks and
// worker presence; nothing of them read from or written to the workspace's queue files.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePrometheusText } from '../../src/ops/reports/prom-text.js';
import { createTestDatabase, pgAvailable, type TestDatabase } from '../queue/pg-db.js';
import { exampleWorkspace, exit, spec, start, waitFor } from './cli.js';
import { cliIn } from './in-process.js';
import { http, startServe } from './serve-process.js';

const up = await pgAvailable();
let db: TestDatabase;
const TOKEN = 'pg-ops-token-0123456789abcdef';

/** The value of one sample of a /metrics text, or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const p = parsePrometheusText(text);
  expect(p.errors).toEqual([]);
  return p.families.get(name)?.samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v))?.value;
}

describe.skipIf(!up)('serve, /ops, /metrics and alerts on PostgreSQL', () => {
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('shows and changes the database: queue counters, dead letters (retry, discard), runs with their pointer, the run lock, worker presence; alerts fire on a PG queue', async () => {
    const ws = exampleWorkspace();
    const env = { METASPN_DATABASE_URL: db.url };
    const cli = (args: string[], o: { env?: NodeJS.ProcessEnv } = {}) => cliIn([...args, '--workspace', ws], { env: { ...env, ...o.env } });
    // A published run of the example pipeline (rows, manifests, pointer, ledger in the database).
    const run = await cli(['pipeline', 'run', 'daily-projections', '--date', '2026-03-04', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const runId = (JSON.parse(run.stdout) as { run_id: string }).run_id;
    // Two dead letters, three tasks waiting.
    for (const id of ['a', 'b']) expect((await cli(['queue', 'enqueue', 'contract', '--payload', JSON.stringify({ id }), '--id', id])).code).toBe(0);
    expect((await cli(['worker', 'run', spec('Contract'), '--once'])).code).toBe(20);
    for (const n of [1, 2, 3]) expect((await cli(['queue', 'enqueue', 'waiting', '--payload', JSON.stringify({ n })])).code).toBe(0);
    // Nothing of the queues is in the workspace.
    for (const p of ['queue', 'deadletter']) expect(existsSync(join(ws, p)), p).toBe(false);

    // An alert on a queue of the database: dead letters (exit 60: open alerts), read from it.
    const check = await cli(['alerts', 'check', '--json']);
    expect(check.code, check.stderr).toBe(60);
    const alerts = JSON.parse(check.stdout) as { open: { fingerprint: string; rule: string; subject: string; details: { dead: number } }[]; unreadable: unknown[] };
    expect(alerts.unreadable).toEqual([]);
    expect(alerts.open.find((a) => a.fingerprint === 'dead_letters_grew:contract')).toMatchObject({ rule: 'dead_letters_grew', subject: 'contract', details: { dead: 2 } });

    // serve with the flag (the environment of serve names no database).
    const served = await startServe(ws, { env: { METASPN_ADMIN_TOKEN: TOKEN, METASPN_ADMIN_WRITE_ENABLED: 'true' }, args: ['--database-url', db.url] });
    const worker = start(['worker', 'run', spec('Slow'), '--workspace', ws, '--max-tasks', '1'], { env });
    try {
      expect(served.out().stdout).toMatch(/^metaspn serve: http:\/\/127\.0\.0\.1:\d+ \(DEVELOPMENT, writes enabled, PostgreSQL schema metaspn at 127\.0\.0\.1:5432\/metaspn_t_\w+\)\n$/);
      const base = served.url;

      // JSON API: the counters, dead letters, runs, the lock.
      const queues = (await http('GET', `${base}/api/queues`)).json as { schema_version: number; queues: { queue: string; ready: number; dead: number; oldest_ready_age_s: number | null }[] };
      expect(queues.schema_version).toBe(1);
      expect(queues.queues.find((q) => q.queue === 'contract')).toMatchObject({ ready: 0, dead: 2 });
      const waiting = queues.queues.find((q) => q.queue === 'waiting')!;
      expect(waiting.ready).toBe(3);
      expect(waiting.oldest_ready_age_s).toBeGreaterThanOrEqual(0);
      expect(queues.queues.map((q) => q.queue)).toEqual(expect.arrayContaining(['contract', 'waiting', 'daily-projections-sim', 'settle_season']));
      const dl = (await http('GET', `${base}/api/queues/contract/deadletters`)).json as { dead_letters: { task: { id: string }; reason: { kind: string } }[] };
      expect(dl.dead_letters.map((d) => d.task.id).sort()).toEqual(['a', 'b']);
      const typo = await http('GET', `${base}/api/queues/contrct`);
      expect(typo.status).toBe(404);
      expect((typo.json as { error: string }).error).toMatch(/^unknown queue "contrct" in PostgreSQL schema metaspn at 127\.0\.0\.1:5432\/metaspn_t_\w+: did you mean contract\?$/);
      const runs = (await http('GET', `${base}/api/runs`)).json as {
        runs: { run_id: string; pipeline: string; status: string; current: boolean; steps: { manifest: string }[] }[];
        problems: unknown[];
      };
      expect(runs.problems).toEqual([]);
      expect(runs.runs).toHaveLength(1);
      expect(runs.runs[0]).toMatchObject({ run_id: runId, pipeline: 'daily-projections', status: 'success', current: true });
      expect(runs.runs[0]!.steps[0]!.manifest).toMatch(/^pg:metaspn\.manifest\/daily-projections\//);
      expect((await http('GET', `${base}/api/runs/${runId}`)).json).toMatchObject({ run_id: runId, current: true });
      const locks = (await http('GET', `${base}/api/locks`)).json as { locks: { pipeline: string; path: string; held: boolean; payload: { active: number; generation: number } | null }[] };
      expect(locks.locks.find((l) => l.pipeline === 'daily-projections')).toMatchObject({
        path: expect.stringMatching(/^pg:127\.0\.0\.1:5432\/metaspn_t_\w+\/metaspn\.run_lock\/daily-projections$/),
        held: false,
        payload: { active: 0, generation: 1 },
      });
      expect(((await http('GET', `${base}/api/settings`)).json as { backend: string }).backend).toBe('postgres');

      // /ops: the same, server-rendered, and the run's page with its manifests.
      const page = await http('GET', `${base}/ops`);
      expect(page.status).toBe(200);
      expect(page.text).toMatch(/<tr data-queue="contract" class="hot">\s*<td class="mono">contract<\/td>\s*<td class="num" data-stat="ready">0<\/td>/);
      expect(page.text).toMatch(/<tr data-queue="waiting" class="">\s*<td class="mono">waiting<\/td>\s*<td class="num" data-stat="ready">3<\/td>/);
      expect(page.text).toContain('<div class="dead-group" data-queue="contract">');
      expect(page.text).toMatch(/<tr data-task="a">[\s\S]*?<span class="badge bad">contract<\/span>/);
      expect(page.text).toContain(`<tr data-run="${runId}">`);
      expect(page.text).toContain('title="the date\'s current pointer names this run">current</span>');
      expect(page.text).toMatch(/id="database">PostgreSQL schema metaspn at 127\.0\.0\.1:5432\/metaspn_t_\w+</);
      expect(page.text).toMatch(/<dt>File<\/dt><dd class="mono">pg:127\.0\.0\.1:5432\/metaspn_t_\w+\/metaspn\.run_lock\/daily-projections<\/dd>/);
      const runPage = await http('GET', `${base}/ops/run/${runId}`);
      expect(runPage.status).toBe(200);
      expect(runPage.text).toContain('finalize');
      const taskPage = await http('GET', `${base}/ops/task/contract/a`);
      expect(taskPage.status).toBe(200);
      expect(taskPage.text).toContain('ContractError');

      // Worker presence: a worker holding a lease is present, and owns leases of its queue.
      expect((await cli(['queue', 'enqueue', 'slow', '--payload', JSON.stringify({ ms: 120_000 })])).code).toBe(0);
      let metrics = '';
      await waitFor(
        async () => {
          metrics = (await http('GET', `${base}/metrics`)).text;
          // (The counters and presence are read one after the other: both once the lease is taken.)
          return sample(metrics, 'metaspn_queue_lease_owners', { worker: 'slow' }) === 1 && sample(metrics, 'metaspn_queue_leased', { worker: 'slow' }) === 1;
        },
        20_000,
        'the worker to hold its lease, present',
      );
      expect(sample(metrics, 'metaspn_backend_up')).toBe(1);
      expect(sample(metrics, 'metaspn_workers_present')).toBe(1);
      expect(sample(metrics, 'metaspn_queue_leased', { worker: 'slow' })).toBe(1);
      expect(sample(metrics, 'metaspn_queue_dead', { worker: 'contract' })).toBe(2);
      expect(sample(metrics, 'metaspn_tasks_dead_lettered_total', { worker: 'contract' })).toBe(2);
      expect(sample(metrics, 'metaspn_queue_ready', { worker: 'waiting' })).toBe(3);
      expect(sample(metrics, 'metaspn_queue_oldest_ready_age_seconds', { worker: 'waiting' })).toBeGreaterThanOrEqual(0);
      expect(sample(metrics, 'metaspn_lock_held', { lock: 'daily-projections' })).toBe(0);
      expect(sample(metrics, 'metaspn_last_run_success', { pipeline: 'daily-projections' })).toBe(1);
      expect(sample(metrics, 'metaspn_queues_unreadable')).toBe(0);
      const withWorker = await http('GET', `${base}/ops`);
      expect(withWorker.text).toMatch(
        /<p class="muted" id="workers" data-present="1">Workers present \(presence session held\): <strong>1<\/strong>; holding leases: <span class="mono">slow<\/span> 1\.<\/p>/,
      );
      worker.child.kill('SIGKILL');
      await exit(worker);
      await waitFor(async () => sample((await http('GET', `${base}/metrics`)).text, 'metaspn_workers_present') === 0, 20_000, 'the killed worker to be gone');

      // Writes go to the database: retry one dead letter, discard the other (ledgered in the workspace).
      const retried = await http('POST', `${base}/api/queues/contract/retry`, { token: TOKEN, body: { task_id: 'a' } });
      expect([retried.status, retried.json]).toEqual([200, { schema_version: 1, worker: 'contract', retried: ['a'] }]);
      const discarded = await http('POST', `${base}/api/queues/contract/discard`, { token: TOKEN, body: { task_ids: ['b'], reason: 'obsolete' } });
      expect(discarded.status).toBe(200);
      expect(discarded.json).toMatchObject({ discarded: ['b'], skipped: [], ledger_seq: 2 });
      const stats = await cli(['queue', 'stats', 'contract', '--json']);
      expect(JSON.parse(stats.stdout)).toMatchObject({ ready: 1, dead: 0, cancelled: 1, totals: { retried: 1 } });
      const ledger = readFileSync(join(ws, 'ledger.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { kind: string; detail: { ids: string[] } });
      expect(ledger.map((e) => [e.kind, e.detail.ids])).toEqual([
        ['deadletter_retry', ['a']],
        ['deadletter_discard', ['b']],
      ]);
      metrics = (await http('GET', `${base}/metrics`)).text;
      expect(sample(metrics, 'metaspn_queue_dead', { worker: 'contract' })).toBe(0);
      expect(sample(metrics, 'metaspn_tasks_retried_total', { worker: 'contract' })).toBe(1);

      // The dead letters are gone: the alert resolves at the next check.
      const again = await cli(['alerts', 'check', '--json']);
      expect(JSON.parse(again.stdout)).toMatchObject({ resolved: expect.arrayContaining(['dead_letters_grew:contract']) });
    } finally {
      worker.child.kill('SIGKILL');
      await served.stop();
    }
  });

  it('a database that does not answer: /health/test fails (503) naming it, /metrics says metaspn_backend_up 0, /ops shows the error in its panels', async () => {
    const ws = exampleWorkspace();
    const served = await startServe(ws, { args: ['--database-url', 'postgres://postgres@127.0.0.1:1/nowhere'] });
    try {
      const health = await http('GET', `${served.url}/health/test`);
      expect(health.status).toBe(503);
      expect(health.json).toMatchObject({ status: 'fail', failed: ['queues_readable'] });
      const metrics = await http('GET', `${served.url}/metrics`);
      expect(metrics.status).toBe(200);
      expect(sample(metrics.text, 'metaspn_backend_up')).toBe(0);
      const page = await http('GET', `${served.url}/ops`);
      expect(page.status).toBe(200);
      expect(page.text).toMatch(/<section id="queues"><h2>Queues<\/h2><p class="section-error">Could not read this section: [^<]*127\.0\.0\.1:1/);
    } finally {
      await served.stop();
    }
  });
});
