// The queue commands and `worker run` on PostgreSQL, driven through the real CLI (in the test process, but for the worker whose database goes away) against a fresh
// database: selection by --database-url, METASPN_DATABASE_URL or the config file; migrations;
// a worker draining the queue; stats, dead letters and retry read from the database.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LATEST_VERSION } from '../../src/backend/pg/migrations.js';
import { createTestDatabase, pgAvailable, type TestDatabase } from '../queue/pg-db.js';
import { startProxy } from '../queue/pg-proxy.js';
import { tempDir } from '../temp.js';
import { exit, spec, start, tempWorkspace, waitFor } from './cli.js';
import { cliIn } from './in-process.js';

const up = await pgAvailable();
let db: TestDatabase;

const sql = <T extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<T[]> => db.query<T>(text, values);

function taskFile(ws: string, tasks: object[]): string {
  const f = join(ws, 'tasks.jsonl');
  writeFileSync(f, tasks.map((t) => JSON.stringify(t)).join('\n') + '\n');
  return f;
}

describe.skipIf(!up)('the CLI on PostgreSQL', () => {
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('db migrate, enqueue, worker run --once, stats, a dead letter, retry: all in the database, nothing in the workspace', async () => {
    const ws = tempWorkspace({ demo: false });
    // Retries due at once: one --once run sees every attempt (exit codes do not race the backoff).
    const env = { METASPN_DATABASE_URL: db.url, METASPN_QUEUE_BACKOFF_BASE_MS: '0', METASPN_QUEUE_BACKOFF_CAP_MS: '0' };
    const target = `127.0.0.1:5432/${db.name}`;

    let r = await cliIn(['db', 'migrate', '--workspace', ws, '--database-url', db.url, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ schema_version: 1, target, schema: 'metaspn', from: 0, to: LATEST_VERSION, applied: Array.from({ length: LATEST_VERSION }, (_, i) => i + 1) });
    r = await cliIn(['db', 'migrate', '--workspace', ws, '--database-url', db.url]);
    expect([r.code, r.stdout]).toEqual([0, `schema metaspn at ${target}: up to date (version ${LATEST_VERSION})\n`]);

    const f = taskFile(ws, [
      { id: 'a', payload: { fail: 0 } },
      { id: 'b', payload: { fail: 1 } },
      { id: 'c', payload: { fail: 9 }, max_attempts: 2 },
    ]);
    r = await cliIn(['queue', 'enqueue', 'flaky', '--workspace', ws, '--file', f], { env });
    expect([r.code, r.stdout], r.stderr).toEqual([0, 'enqueued 3 task(s) to flaky; 0 already present\n']);

    // a succeeds, b after one retry, c uses its two attempts and goes to the dead letters: exit 50.
    r = await cliIn(['worker', 'run', spec('FailTimes'), '--workspace', ws, '--once', '--json'], { env });
    expect(r.code, r.stderr).toBe(50);
    expect(JSON.parse(r.stdout)).toMatchObject({ worker: 'flaky', completed: 2, dead: 1, exit_code: 50 });

    r = await cliIn(['queue', 'stats', 'flaky', '--workspace', ws, '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      queue: 'flaky',
      ready: 0,
      scheduled: 0,
      leased: 0,
      completed: 2,
      dead: 1,
      cancelled: 0,
      paused: false,
      totals: { failed: 3, dead_lettered: 1, retried: 0 },
    });

    r = await cliIn(['queue', 'deadletter', 'list', 'flaky', '--workspace', ws], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^c\s+2\s+\S+\s+transient Error: flaky failure 2$/m);
    expect(r.stdout).toContain(`1 dead letter(s) in PostgreSQL schema metaspn at ${target}\n`);

    r = await cliIn(['queue', 'deadletter', 'show', 'flaky', 'c', '--workspace', ws, '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const dead = JSON.parse(r.stdout) as { attempt_count: number; errors: { attempt: number; message: string }[]; task: { payload: unknown } };
    expect(dead.attempt_count).toBe(2);
    expect(dead.task.payload).toEqual({ fail: 9 });
    expect(dead.errors.map((e) => [e.attempt, e.message])).toEqual([
      [1, 'flaky failure 1'],
      [2, 'flaky failure 2'],
    ]);
    r = await cliIn(['queue', 'deadletter', 'show', 'flaky', 'a', '--workspace', ws], { env });
    expect(r.code).toBe(64);
    expect(r.stderr).toContain('error: no dead letter "a" for flaky');

    r = await cliIn(['queue', 'retry', 'flaky', '--workspace', ws, '--task-id', 'c'], { env });
    expect([r.code, r.stdout], r.stderr).toEqual([0, 'moved 1 task(s) of flaky back to ready:\n  c\n']);
    r = await cliIn(['queue', 'stats', 'flaky', '--workspace', ws, '--json'], { env });
    expect(JSON.parse(r.stdout)).toMatchObject({ ready: 1, dead: 0, totals: { failed: 3, dead_lettered: 1, retried: 1 } });

    // Paused: a worker hands out nothing; resumed: it drains (c fails twice more: dead again).
    expect((await cliIn(['queue', 'pause', 'flaky', '--workspace', ws], { env })).stdout).toBe('flaky: paused\n');
    r = await cliIn(['worker', 'run', spec('FailTimes'), '--workspace', ws, '--once', '--json'], { env });
    expect([r.code, JSON.parse(r.stdout).claimed], r.stderr).toEqual([0, 0]);
    expect((await cliIn(['queue', 'resume', 'flaky', '--workspace', ws], { env })).stdout).toBe('flaky: resumed\n');
    r = await cliIn(['worker', 'run', spec('FailTimes'), '--workspace', ws, '--once', '--json'], { env });
    expect(r.code, r.stderr).toBe(50);

    // The rows are where the commands said; the workspace holds no queue or dead-letter files.
    expect(await sql(`SELECT id, state FROM metaspn.task WHERE queue = 'flaky' ORDER BY id`)).toEqual([
      { id: 'a', state: 3 },
      { id: 'b', state: 3 },
      { id: 'c', state: 4 },
    ]);
    expect(existsSync(join(ws, 'queue'))).toBe(false);
    expect(existsSync(join(ws, 'deadletter', 'flaky'))).toBe(false);
    // Without the setting the same workspace is on files, where this queue does not exist.
    r = await cliIn(['queue', 'stats', 'flaky', '--workspace', ws]);
    expect(r.code).toBe(64);
  });

  it('the config file selects the backend and its schema; --database-url wins over the environment; bad settings are one-line errors', async () => {
    const ws = tempWorkspace({ demo: false, config: { backend: { url: db.url, schema: 'cfg_schema' } } });
    let r = await cliIn(['queue', 'enqueue', 'ok', '--workspace', ws, '--payload', '{"n":1}', '--id', 'x1']);
    expect([r.code, r.stdout], r.stderr).toEqual([0, 'enqueued 1 task(s) to ok; 0 already present\n']);
    expect(await sql(`SELECT id FROM cfg_schema.task WHERE queue = 'ok'`)).toEqual([{ id: 'x1' }]);
    r = await cliIn(['worker', 'run', spec('Succeed'), '--workspace', ws, '--once']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^worker ok: claimed 1, completed 1 in \d+\.\ds \(exit 0\)\n$/);

    // An unreachable database in the environment is overridden by the flag (the config's schema still holds).
    const env = { METASPN_DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nowhere' };
    r = await cliIn(['queue', 'stats', 'ok', '--workspace', ws, '--json', '--database-url', db.url], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ queue: 'ok', completed: 1 });
    r = await cliIn(['queue', 'stats', 'ok', '--workspace', ws], { env });
    expect(r.code).toBe(11);
    expect(r.stderr).toMatch(/^error: PostgreSQL at 127\.0\.0\.1:1\/nowhere is unavailable while migrating schema cfg_schema \(ECONNREFUSED\)\nhint: /);

    // A password in --database-url is never copied into records or logs.
    const withPassword = new URL(db.url);
    withPassword.password = 's3cret';
    r = await cliIn(['queue', 'pause', 'ok', '--workspace', ws, '--database-url', withPassword.toString()]);
    expect([r.code, r.stdout], r.stderr).toEqual([0, 'ok: paused\n']);
    const [row] = await sql<{ paused: boolean; paused_by: string }>(`SELECT paused, paused_by FROM cfg_schema.queue WHERE name = 'ok'`);
    expect(row!.paused).toBe(true);
    expect(row!.paused_by).toContain(`--database-url 'postgres://postgres:***@127.0.0.1:5432/${db.name}'`);
    expect(row!.paused_by).not.toContain('s3cret');
    expect(readFileSync(join(ws, 'logs', 'metaspn.jsonl'), 'utf8')).not.toContain('s3cret');
    expect((await cliIn(['queue', 'resume', 'ok', '--workspace', ws])).code).toBe(0);

    // A typo in a queue name is an error on this backend too.
    r = await cliIn(['queue', 'stats', 'okk', '--workspace', ws]);
    expect(r.code).toBe(64);
    expect(r.stderr).toContain('error: unknown worker "okk": no queue of that name in PostgreSQL schema cfg_schema');

    // Bad settings: the flag (64), the variable (20), the config file (20); no stack trace.
    r = await cliIn(['queue', 'stats', 'ok', '--workspace', ws, '--database-url', 'mysql://x']);
    expect([r.code, r.stderr.split('\n')[0]]).toEqual([64, 'error: --database-url must be a postgres:// or postgresql:// URL, got "mysql://x"']);
    r = await cliIn(['queue', 'stats', 'ok', '--workspace', ws], { env: { METASPN_DATABASE_URL: 'nope' } });
    expect([r.code, r.stderr.split('\n')[0]]).toEqual([20, 'error: environment METASPN_DATABASE_URL: must be a postgres:// or postgresql:// URL, got "nope"']);
    const bad = tempWorkspace({ demo: false, config: { backend: { url: db.url, schema: 'Bad-Name' } } });
    r = await cliIn(['queue', 'stats', 'ok', '--workspace', bad]);
    expect(r.code).toBe(20);
    expect(r.stderr).toContain('backend.schema');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('s1 run-local on PostgreSQL (backend.url in the config): its queues and rows in the database, exported as the store on files; a re-run writes nothing new', async () => {
    const onPg = tempWorkspace({ config: { backend: { url: db.url, schema: 's1_queues' } } });
    const onFiles = tempWorkspace();
    let r = await cliIn(['s1', 'run-local', '--workspace', onPg, '--date', '2026-01-15']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/update_attention_scores\s+success\s+300\/300 tasks\s+300 rows written/);
    expect(existsSync(join(onPg, 'queue'))).toBe(false);
    expect(await sql(`SELECT queue, state, count(*)::int AS n FROM s1_queues.task GROUP BY queue, state ORDER BY queue`)).toEqual([
      { queue: 'project_rewards', state: 3, n: 1 },
      { queue: 'publish_season_summary', state: 3, n: 1 },
      { queue: 'settle_season', state: 3, n: 1 },
      { queue: 'update_attention_scores', state: 3, n: 300 },
    ]);
    expect(existsSync(join(onPg, 'store'))).toBe(false);
    r = await cliIn(['s1', 'run-local', '--workspace', onFiles, '--date', '2026-01-15']);
    expect(r.code, r.stderr).toBe(0);
    const out = tempDir('metaspn-export-');
    r = await cliIn(['store', 'export', '--workspace', onPg, '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    for (const f of ['s1_attention_scores', 's1_reward_projections', 's1_settlements', 's1_summaries']) {
      expect(readFileSync(join(out, 'store', `${f}.jsonl`), 'utf8'), f).toBe(readFileSync(join(onFiles, 'store', `${f}.jsonl`), 'utf8'));
    }
    r = await cliIn(['s1', 'run-local', '--workspace', onPg, '--date', '2026-01-15']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/update_attention_scores\s+success\s+300\/300 tasks\s+0 rows written, 300 present/);
  });

  it('the database going away under a running worker: it stops with exit 11 and one line; another worker finishes every task', async () => {
    const ws = tempWorkspace({ demo: false, config: { backend: { url: db.url, schema: 'gone' } } });
    const f = taskFile(
      ws,
      Array.from({ length: 30 }, (_, i) => ({ id: `s${i}`, payload: { ms: 100 } })),
    );
    let r = await cliIn(['queue', 'enqueue', 'slow', '--workspace', ws, '--file', f]);
    expect(r.code, r.stderr).toBe(0);
    const u = new URL(db.url);
    const proxy = await startProxy({ host: u.hostname, port: Number(u.port || 5432) });
    u.port = String(proxy.port);
    const worker = start(['worker', 'run', spec('Slow'), '--workspace', ws, '--database-url', u.toString(), '--concurrency', '2', '--isolation', 'none'], { cwd: ws });
    const ran = (): number => (existsSync(join(ws, 'executions.log')) ? readFileSync(join(ws, 'executions.log'), 'utf8').split('\n').filter(Boolean).length : 0);
    await waitFor(() => ran() >= 4, 20_000, 'four tasks run');
    await proxy.cutAll();
    const gone = await exit(worker, 20_000);
    expect(gone.code, gone.stderr).toBe(11);
    expect(gone.stderr).toMatch(/^error: PostgreSQL at 127\.0\.0\.1:\d+\/metaspn_t_\w+ is unavailable while [^\n]+\nhint: [^\n]+\n$/);
    // The leases it held come back at once (its presence session went with the database).
    r = await cliIn(['worker', 'run', spec('Slow'), '--workspace', ws, '--once', '--json']);
    expect(r.code, r.stderr).toBe(0);
    r = await cliIn(['queue', 'stats', 'slow', '--workspace', ws, '--json']);
    expect(JSON.parse(r.stdout)).toMatchObject({ ready: 0, scheduled: 0, leased: 0, completed: 30, dead: 0 });
    await proxy.close();
  });

  it('a schema newer than this metaspn is refused (exit 30), whatever the command', async () => {
    const ws = tempWorkspace({ demo: false, config: { backend: { url: db.url, schema: 'future' } } });
    let r = await cliIn(['db', 'migrate', '--workspace', ws]);
    expect(r.code, r.stderr).toBe(0);
    await sql(`INSERT INTO future.schema_migrations (version, name) VALUES (999, 'from a newer metaspn')`);
    const line = `error: PostgreSQL schema future at 127.0.0.1:5432/${db.name} is at version 999, newer than this metaspn knows (${LATEST_VERSION}); refusing to use it`;
    for (const args of [
      ['db', 'migrate'],
      ['queue', 'enqueue', 'ok', '--payload', '1'],
      ['worker', 'run', spec('Succeed'), '--once'],
    ]) {
      r = await cliIn([...args, '--workspace', ws]);
      expect(r.code, args.join(' ')).toBe(30);
      expect(r.stderr.split('\n')[0]).toBe(line);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    expect(await sql(`SELECT count(*)::int AS n FROM future.task`)).toEqual([{ n: 0 }]);
  });
});
