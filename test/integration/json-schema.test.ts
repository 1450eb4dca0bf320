// Every `--json` document, driven through the real CLI: an object whose first key is
// "schema_version": 1, with every instant an ISO-8601 string (never epoch ms), and the error
// document too. The list of commands is checked against the CLI itself: a command that gains
// --json without a case here fails the test.
import { cpSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import { ROOT, spec, tempWorkspace, type CliResult } from './cli.js';
import { cliIn } from './in-process.js';
import { http, startServe } from './serve-process.js';

const TIME_KEY = /^(?:now|at|[a-z0-9_]+_at)$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{3})?Z$/;

/** Where a document holds an instant that is not an ISO-8601 string (a task's payload is the user's). */
function badInstants(v: unknown, key = '', path = '$'): string[] {
  if (TIME_KEY.test(key) && v !== null && !(typeof v === 'string' && ISO.test(v))) return [`${path}=${JSON.stringify(v)}`];
  if (v === null || typeof v !== 'object' || key === 'payload') return [];
  if (Array.isArray(v)) return v.flatMap((x, i) => badInstants(x, key, `${path}[${i}]`));
  return Object.entries(v).flatMap(([k, x]) => badInstants(x, k, `${path}.${k}`));
}

/** Every command path (`queue deadletter list`) that takes --json. */
function jsonCommands(program: Command): string[] {
  const out: string[] = [];
  const walk = (c: Command, path: string[]): void => {
    if (c.options.some((o) => o.long === '--json')) out.push(path.join(' '));
    for (const s of c.commands) walk(s, [...path, s.name()]);
  };
  walk(program, []);
  return out.sort();
}

interface Doc {
  schema_version: number;
  [key: string]: unknown;
}

describe('--json documents', () => {
  it('every command with --json prints an object, "schema_version": 1 first, instants as ISO-8601; so does the error document', async () => {
    const covered = new Set<string>();
    /** `metaspn <command> <args> --json`: its exit code one of `codes`, its stdout one document of the versioned shape. */
    const json = async (command: string, args: string[], codes: number[] = [0], env?: NodeJS.ProcessEnv): Promise<Doc> => {
      const r: CliResult = await cliIn([...command.split(' '), ...args, '--json'], env ? { env } : {});
      expect(codes, `metaspn ${command} exited ${r.code}: ${r.stderr}`).toContain(r.code);
      const d = JSON.parse(r.stdout) as Doc;
      expect(Array.isArray(d), command).toBe(false);
      expect(Object.keys(d)[0], command).toBe('schema_version');
      expect(d.schema_version, command).toBe(1);
      expect(badInstants(d), command).toEqual([]);
      covered.add(command);
      return d;
    };

    // A Season 1 workspace with a published run, a failed run, dead letters and a retry scheduled.
    const ws = tempWorkspace();
    const w = ['--workspace', ws];
    const run = await json('s1 run-local', [...w, '--date', '2026-01-15', '--run-id', 'good']);
    expect(run).toMatchObject({ run_id: 'good', status: 'published', exit_code: 0 });
    expect((await cliIn(['queue', 'pause', 'project_rewards', ...w])).code).toBe(0);
    await json('s1 run-local', [...w, '--date', '2026-01-16', '--run-id', 'bad'], [11]);
    expect((await cliIn(['queue', 'resume', 'project_rewards', ...w])).code).toBe(0);
    for (const id of ['c1', 'c2', 'c3']) expect((await cliIn(['queue', 'enqueue', 'contract', ...w, '--payload', JSON.stringify({ id, created_at: 1 }), '--id', id])).code).toBe(0);
    expect(await json('queue enqueue', ['flaky', ...w, '--payload', '{"fail":1}', '--id', 'f1'])).toMatchObject({ worker: 'flaky', added: ['f1'] });
    expect(await json('worker run', [spec('Contract'), ...w, '--once'], [20])).toMatchObject({ worker: 'contract', dead_contract: 3 });
    // Its retry must not come due within the run (a loaded machine lets a 10 ms retry run in it).
    await json('worker run', [spec('FailTimes'), ...w, '--once'], [11], { METASPN_QUEUE_BACKOFF_BASE_MS: '60000', METASPN_QUEUE_BACKOFF_CAP_MS: '60000' });

    // Queues: instants that were epoch ms (now, next_due_at, oldest_ready_at) are ISO-8601.
    const stats = await json('queue stats', ['flaky', ...w]);
    expect(stats).toMatchObject({ queue: 'flaky', scheduled: 1, now: expect.stringMatching(ISO), next_due_at: expect.stringMatching(ISO) });
    const list = await json('queue list', w);
    expect((list.queues as { queue: string }[]).map((q) => q.queue)).toContain('contract');
    expect(list.now).toMatch(ISO);
    const dead = await json('queue deadletter list', ['contract', ...w]);
    expect(dead).toMatchObject({ worker: 'contract' });
    expect((dead.dead_letters as { task: { id: string; payload: unknown } }[]).map((d) => d.task.id)).toEqual(['c1', 'c2', 'c3']);
    // A payload is the user's: printed as given, its numbers untouched.
    expect((dead.dead_letters as { task: { payload: unknown } }[])[0]!.task.payload).toEqual({ id: 'c1', created_at: 1 });
    expect(await json('queue deadletter show', ['contract', 'c1', ...w])).toMatchObject({ worker: 'contract', task: { id: 'c1' } });
    expect(await json('queue deadletter discard', ['contract', ...w, '--task-id', 'c1', '--reason', 'not needed'])).toMatchObject({ discarded: ['c1'] });
    expect(await json('queue retry', ['contract', ...w, '--dry-run'])).toMatchObject({ dry_run: true, would_retry: ['c2', 'c3'] });
    expect(await json('queue retry', ['contract', ...w, '--task-id', 'c2'])).toMatchObject({ retried: ['c2'] });

    // Runs.
    const runs = await json('runs list', w);
    expect((runs.runs as { run_id: string }[]).map((r) => r.run_id)).toEqual(['bad', 'good']);
    expect(await json('runs show', ['good', ...w])).toMatchObject({ run_id: 'good', started_at: expect.stringMatching(ISO) });
    expect(await json('runs retry', ['bad', ...w])).toMatchObject({ retry_of_run_id: 'bad', status: 'published' });
    await json('s1 backfill', [...w, '--start', '2026-01-17', '--end', '2026-01-17']);
    expect(await json('s1 rollback', [...w, '--steps', '1', '--dry-run'])).toMatchObject({ dry_run: true });

    // Operators.
    await json('lock status', w);
    await json('doctor', w);
    await json('alerts check', w, [0, 60]);
    await json('alerts list', w);
    await json('report weekly', w, [0, 10]);
    await json('baseline capture', w);
    await json('store export', [...w, '--out', join(ws, 'export')]);
    await json('verify', ['--url', 'http://127.0.0.1:9'], [50]);
    // Without a database, db migrate is a usage error: the error document is versioned as well.
    expect(await json('db migrate', w, [64])).toMatchObject({ error: { code: 'USAGE', exit_code: 64 } });
    await json('smoke', ['--workspace', tempWorkspace({ demo: false })]);

    // A user pipeline (examples/daily-projections): pipeline list, show, run, backfill, rollback.
    const ex = tempWorkspace({ demo: false });
    const example = join(ROOT, 'examples', 'daily-projections');
    for (const f of ['metaspn.config.json', 'pipeline.mjs', 'model.mjs', 'inputs']) cpSync(join(example, f), join(ex, f), { recursive: true });
    mkdirSync(join(ex, 'node_modules'));
    symlinkSync(ROOT, join(ex, 'node_modules', 'metaspn'), 'dir');
    const e = ['--workspace', ex];
    expect(((await json('pipeline list', e)).pipelines as { name: string }[]).map((p) => p.name)).toContain('daily-projections');
    await json('pipeline show', ['daily-projections', ...e]);
    expect(await json('pipeline run', ['daily-projections', ...e, '--date', '2026-03-01'])).toMatchObject({ exit_code: 0 });
    await json('pipeline backfill', ['daily-projections', ...e, '--start', '2026-03-02', '--end', '2026-03-02']);
    await json('pipeline rollback', ['daily-projections', ...e, '--steps', '1', '--dry-run']);

    // The error document of a failed command.
    const typo = await cliIn(['queue', 'stats', 'no_such_queue', ...w, '--json']);
    expect(typo.code).toBe(64);
    expect(JSON.parse(typo.stdout)).toEqual({ schema_version: 1, error: expect.objectContaining({ code: 'USAGE', exit_code: 64 }) });
    expect(Object.keys(JSON.parse(typo.stdout) as object)[0]).toBe('schema_version');

    // Every command that takes --json was driven above.
    const all = jsonCommands(await buildProgram());
    // 29 when this test was written: the walk finds them (a walk finding none would pass the check below).
    expect(all.length).toBeGreaterThanOrEqual(29);
    expect(all.filter((c) => !covered.has(c))).toEqual([]);
  }, 300_000);
});

describe('serve: JSON answers', () => {
  it('every JSON answer, errors included, has "schema_version": 1 first and instants as ISO-8601; /health/queues (keyed by queue) has ISO instants', async () => {
    const ws = tempWorkspace();
    const w = ['--workspace', ws];
    expect((await cliIn(['s1', 'run-local', ...w, '--date', '2026-01-15', '--run-id', 'good'])).code).toBe(0);
    expect((await cliIn(['queue', 'enqueue', 'contract', ...w, '--payload', '{"n":1}', '--id', 'c1'])).code).toBe(0);
    expect((await cliIn(['worker', 'run', spec('Contract'), ...w, '--once'])).code).toBe(20);
    expect((await cliIn(['queue', 'enqueue', 'flaky', ...w, '--payload', '{"fail":1}', '--id', 'f1'])).code).toBe(0);
    const s = await startServe(ws);
    try {
      const get = async (path: string, status = 200): Promise<Doc> => {
        const r = await http('GET', `${s.url}${path}`);
        expect(r.status, `${path}: ${r.text}`).toBe(status);
        const d = r.json as Doc;
        expect(Array.isArray(d), path).toBe(false);
        expect(Object.keys(d)[0], path).toBe('schema_version');
        expect(d.schema_version, path).toBe(1);
        expect(badInstants(d), path).toEqual([]);
        return d;
      };
      await get('/health');
      await get('/health/test');
      const queues = await get('/api/queues');
      expect((queues.queues as { queue: string }[]).map((q) => q.queue)).toEqual(expect.arrayContaining(['contract', 'flaky']));
      expect(await get('/api/queues/flaky')).toMatchObject({ queue: 'flaky', ready: 1, oldest_ready_at: expect.stringMatching(ISO) });
      const dead = await get('/api/queues/contract/deadletters');
      expect(dead).toMatchObject({ worker: 'contract' });
      expect((dead.dead_letters as { task: { id: string } }[]).map((d) => d.task.id)).toEqual(['c1']);
      expect(((await get('/api/runs')).runs as { run_id: string }[]).map((r) => r.run_id)).toEqual(['good']);
      await get('/api/runs/good');
      await get('/api/lock');
      await get('/api/locks');
      await get('/api/alerts');
      await get('/api/settings');
      expect(await get('/api/queues/no_such_queue', 404)).toMatchObject({ error: expect.any(String) });
      expect(await get('/api/runs/nope', 404)).toMatchObject({ error: expect.any(String) });
      // Keyed by queue name: no schema_version among the queues, the instants ISO-8601 all the same.
      const health = (await http('GET', `${s.url}/health/queues`)).json as Record<string, Record<string, unknown>>;
      expect(health.schema_version).toBeUndefined();
      expect(health.flaky).toMatchObject({ ready: 1, oldest_ready_at: expect.stringMatching(ISO) });
      expect(badInstants(health)).toEqual([]);
    } finally {
      await s.stop();
    }
  }, 120_000);
});
