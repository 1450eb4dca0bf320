import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgStores } from '../../src/backend/pg/stores.js';
import { createTestDatabase, pgAvailable, type TestDatabase } from '../queue/pg-db.js';
import { tempDir } from '../temp.js';
import { until } from '../wait.js';
import { cli, exampleWorkspace, ROOT, type CliResult } from './cli.js';
import { cliIn } from './in-process.js';

/**
 * The example pipeline (examples/daily-projections) through the real CLI with the PostgreSQL
 * backend selected (METASPN_DATABASE_URL): rows, manifests, the pointer, the ledger, the queues and
 * the run lock in the database, nothing of them in the workspace; the same identities and digests
 * as a run on files; a replay writes nothing.
 */
const up = await pgAvailable();
const NAME = 'daily-projections';
const STEPS = ['ingest', 'minutes', 'rates', 'sim', 'ownership', 'finalize'];
let db: TestDatabase;

interface RunReport {
  run_id: string;
  status: string;
  exit_code: number;
  identity: string | null;
  pointer: string | null;
  restatement_of: string | null;
  steps: { step: string; identity: string; manifest: string; outputs: { path: string; rows_written: number; rows_present: number; sha256: string }[] }[];
}

const example = exampleWorkspace;

// The CLI in this process where its process adds nothing (all but the run from the workspace's folder below).
const run = (dir: string, date: string, env: NodeJS.ProcessEnv, ...args: string[]): Promise<CliResult> => cliIn(['pipeline', 'run', NAME, '--date', date, '--workspace', dir, ...args], { env });
async function runJson(dir: string, date: string, env: NodeJS.ProcessEnv): Promise<RunReport> {
  const r = await run(dir, date, env, '--json');
  expect(r.stdout, r.stderr).toMatch(/^\{/);
  return JSON.parse(r.stdout) as RunReport;
}

const sql = <T extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<T[]> => db.query<T>(text, values);

describe.skipIf(!up)('the example pipeline on PostgreSQL', () => {
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('a run publishes into the database (rows, manifests, pointer, ledger, lock), as on files; a replay writes nothing', async () => {
    const env = { METASPN_DATABASE_URL: db.url };
    const dir = example();
    const first = await runJson(dir, '2026-03-04', env);
    expect(first).toMatchObject({ status: 'published', exit_code: 0, restatement_of: null });
    for (const s of first.steps) {
      expect(s.manifest).toBe(`pg:metaspn.manifest/${NAME}/${s.step}/date=2026-03-04/run=${first.run_id}`);
      expect(s.outputs[0]!.path).toBe(`pg:metaspn.artifact/${NAME}.${s.step}`);
    }
    // Nothing of what the runner persists is in the workspace.
    for (const p of ['ledger.jsonl', join('manifests', 'current'), join('store', `${NAME}.sim.jsonl`), join('locks', `${NAME}.lock`)]) expect(existsSync(join(dir, p)), p).toBe(false);

    const stores = new PgStores({ setting: { url: db.url, source: 'test' } });
    try {
      const ptr = await stores.pointers.read(NAME, '2026-03-04');
      expect(ptr).toMatchObject({ run_id: first.run_id, summary_id: first.identity });
      const ledger = await stores.readLedger();
      expect(ledger.problems).toEqual([]);
      expect(ledger.entries).toHaveLength(1);
      expect(ledger.entries[0]).toMatchObject({ seq: 1, kind: 'publish', run_id: first.run_id, detail: { date: '2026-03-04', pointer: ptr } });
      const manifests = await sql<{ step: string; n: number }>(`SELECT step, count(*)::int AS n FROM metaspn.manifest WHERE run_id = $1 GROUP BY step ORDER BY step`, [first.run_id]);
      expect(manifests.map((m) => m.step)).toEqual([...STEPS].sort());
      expect(await sql(`SELECT generation::int AS generation, active, reason FROM metaspn.run_lock WHERE name = $1`, [NAME])).toEqual([{ generation: 1, active: 0, reason: 'scheduled' }]);
      const tasks = await sql<{ n: number }>(`SELECT count(*)::int AS n FROM metaspn.task WHERE state = 3`);
      expect(tasks[0]!.n).toBeGreaterThan(0);

      // The same run on files: the same identities and the same digests of every step's rows.
      const filesDir = example();
      const onFiles = await runJson(filesDir, '2026-03-04', { METASPN_DATABASE_URL: '' });
      expect(onFiles.exit_code).toBe(0);
      expect(onFiles.identity).toBe(first.identity);
      expect(onFiles.steps.map((s) => [s.step, s.identity, s.outputs[0]!.sha256, s.outputs[0]!.rows_written]).sort()).toEqual(
        first.steps.map((s) => [s.step, s.identity, s.outputs[0]!.sha256, s.outputs[0]!.rows_written]).sort(),
      );

      // store export: on files, the store's own bytes; from the database, the same rows (in the
      // order this run wrote them: the runs' tasks finish in their own order, so compared sorted).
      const fromFiles = tempDir('metaspn-export-');
      const fromPg = tempDir('metaspn-export-');
      let x = await cliIn(['store', 'export', '--workspace', filesDir, '--out', fromFiles, '--pipeline', NAME], { env: { METASPN_DATABASE_URL: '' } });
      expect(x.code, x.stderr).toBe(0);
      expect(x.stdout).toMatch(new RegExp(`^exported \\d+ rows of 6 store\\(s\\) to ${fromFiles}/store$`, 'm'));
      x = await cliIn(['store', 'export', '--workspace', dir, '--out', fromPg, '--pipeline', NAME, '--json'], { env });
      expect(x.code, x.stderr).toBe(0);
      const exported = JSON.parse(x.stdout) as { backend: string; stores: { store: string; rows: number }[] };
      expect(exported.backend).toBe('postgres');
      expect(exported.stores.map((e) => e.store)).toEqual(STEPS.map((st) => `${NAME}.${st}`).sort());
      const lines = (path: string): string[] => readFileSync(path, 'utf8').split('\n').filter(Boolean).sort();
      for (const st of STEPS) {
        const f = `${NAME}.${st}.jsonl`;
        expect(readFileSync(join(fromFiles, 'store', f), 'utf8'), f).toBe(readFileSync(join(filesDir, 'store', f), 'utf8'));
        expect(lines(join(fromPg, 'store', f)), f).toEqual(lines(join(filesDir, 'store', f)));
      }
      // One partition: only its rows (here: all of them, from a run of that date alone).
      x = await cliIn(['store', 'export', '--workspace', dir, '--out', fromPg, '--pipeline', NAME, '--date', '2026-03-05', '--json'], { env });
      expect([x.code, JSON.parse(x.stdout).stores]).toEqual([0, []]);
      // Bad flags: one line, 64, nothing written.
      x = await cliIn(['store', 'export', '--workspace', dir, '--out', fromPg, '--date', '2026-02-30'], { env });
      expect([x.code, x.stdout, x.stderr.split('\n')[0]]).toEqual([64, '', 'error: --date must be YYYY-MM-DD, got "2026-02-30" (no such calendar date)']);
      x = await cliIn(['store', 'export', '--workspace', dir, '--out', dir], { env });
      expect([x.code, x.stderr.split('\n')[0]]).toEqual([64, `error: --out ${dir} is the workspace itself: exporting there would replace its store`]);

      // The replay: a new run id, the same identity, no row written, one more ledger entry.
      const rowsBefore = await sql<{ n: number }>(`SELECT count(*)::int AS n FROM metaspn.artifact`);
      const again = await runJson(dir, '2026-03-04', env);
      expect(again.exit_code).toBe(0);
      expect(again.run_id).not.toBe(first.run_id);
      expect(again.identity).toBe(first.identity);
      expect(again.steps.map((s) => s.outputs[0]!.rows_written)).toEqual([0, 0, 0, 0, 0, 0]);
      expect(await sql(`SELECT count(*)::int AS n FROM metaspn.artifact`)).toEqual(rowsBefore);
      expect((await stores.pointers.read(NAME, '2026-03-04'))?.run_id).toBe(again.run_id);
      const after = await stores.readLedger();
      expect(after.problems).toEqual([]);
      expect(after.entries.map((e) => e.seq)).toEqual([1, 2]);
      expect(after.entries[1]!.detail).toMatchObject({ date: '2026-03-04', replay_of: first.run_id });
      expect(await sql(`SELECT generation::int AS generation, active FROM metaspn.run_lock WHERE name = $1`, [NAME])).toEqual([{ generation: 2, active: 0 }]);

      // Rollback: the ledger entry and the pointer move in one transaction, in the database.
      let rb = await cliIn(['pipeline', 'rollback', NAME, '--workspace', dir, '--steps', '1', '--dry-run', '--json'], { env });
      expect(rb.code, rb.stderr).toBe(0);
      expect(JSON.parse(rb.stdout)).toMatchObject({ dry_run: true, changes: [{ date: '2026-03-04', from: { run_id: again.run_id }, to: { run_id: first.run_id } }], ledger_entry: null });
      expect((await stores.pointers.read(NAME, '2026-03-04'))?.run_id).toBe(again.run_id);
      rb = await cliIn(['pipeline', 'rollback', NAME, '--workspace', dir, '--steps', '1', '--reason', 'drill'], { env });
      expect(rb.code, rb.stderr).toBe(0);
      expect(rb.stdout).toMatch(new RegExp(`^  2026-03-04: ${again.run_id} -> ${first.run_id}\nmoved 1 pointer\\(s\\); ledger seq 3 hash [0-9a-f]{64}\n$`));
      expect((await stores.pointers.read(NAME, '2026-03-04'))?.run_id).toBe(first.run_id);
      const rolled = await stores.readLedger();
      expect(rolled.problems).toEqual([]);
      expect(rolled.entries[2]).toMatchObject({ seq: 3, kind: 'rollback', detail: { pipeline: NAME, reason: 'drill', steps: 1, target_hash: after.entries[0]!.hash } });
      // runs list and show read the database's manifests and pointers.
      const listed = await cliIn(['runs', 'list', '--workspace', dir, '--json'], { env });
      expect(listed.code, listed.stderr).toBe(0);
      expect((JSON.parse(listed.stdout) as { runs: { run_id: string; status: string; current: boolean }[] }).runs.map((x) => [x.run_id, x.status, x.current])).toEqual([
        [again.run_id, 'success', false],
        [first.run_id, 'success', true],
      ]);
      const shown = await cliIn(['runs', 'show', first.run_id, '--workspace', dir], { env });
      expect(shown.code, shown.stderr).toBe(0);
      expect(shown.stdout).toContain(`pg:metaspn.manifest/${NAME}/finalize/date=2026-03-04/run=${first.run_id}`);
      // Too far back: nothing moves.
      rb = await cliIn(['pipeline', 'rollback', NAME, '--workspace', dir, '--steps', '5', '--reason', 'drill'], { env });
      expect([rb.code, rb.stderr.split('\n')[0]]).toEqual([10, 'error: --steps 5: only 1 publish(es) in effect; nothing that far back']);
    } finally {
      await stores.close();
    }
  }, 180_000);

  it("a step's rows are committed with its tasks' acknowledgements: a row changed in the table under the same id makes the replay's task a conflict (30), nothing overwritten", async () => {
    const env = { METASPN_DATABASE_URL: db.url };
    const dir = example();
    const first = await runJson(dir, '2026-03-05', env);
    expect(first.exit_code).toBe(0);
    const finalize = first.steps.find((x) => x.step === 'finalize')!;
    const [row] = await sql<{ id: string; body: string }>(`SELECT id, body FROM metaspn.artifact WHERE store = $1 AND date = '2026-03-05' ORDER BY id LIMIT 1`, [`${NAME}.finalize`]);
    const tampered = row!.body.replace('"ownership":', '"ownership_changed_by_hand":1,"ownership":');
    await sql(`UPDATE metaspn.artifact SET body = $3 WHERE store = $1 AND id = $2`, [`${NAME}.finalize`, row!.id, tampered]);
    const again = await runJson(dir, '2026-03-05', env);
    expect(again.exit_code).toBe(30);
    const failed = again.steps.find((x) => x.step === 'finalize')!;
    expect(failed).toMatchObject({
      identity: finalize.identity,
      status: 'failed',
      error: {
        message: expect.stringMatching(/replay conflict: daily-projections\.finalize already holds row_\w+ with different content \(1 conflicting row\(s\)\); nothing of this task was written/),
      },
    });
    expect(await sql(`SELECT body FROM metaspn.artifact WHERE store = $1 AND id = $2`, [`${NAME}.finalize`, row!.id])).toEqual([{ body: tampered }]);
    const stores = new PgStores({ setting: { url: db.url, source: 'test' } });
    try {
      expect((await stores.pointers.read(NAME, '2026-03-05'))?.run_id).toBe(first.run_id);
    } finally {
      await stores.close();
    }
  }, 180_000);

  it('while another process holds the run lock in the database, a run exits 11 with one line and writes nothing', async () => {
    const dir = example();
    const holder = spawn(process.execPath, [join(ROOT, 'test', 'fixtures', 'hold-pg-run-lock.mjs'), db.url, 'metaspn', NAME], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      let out = '';
      holder.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      await until(() => out.includes('"acquired"'), 20_000, 'the holder to take the lock');
      const st = await cliIn(['lock', 'status', '--workspace', dir, '--name', NAME], { env: { METASPN_DATABASE_URL: db.url } });
      expect(st.code, st.stderr).toBe(0);
      expect(st.stdout).toMatch(
        new RegExp(`^lock ${NAME}: HELD  \\(pg:127\\.0\\.0\\.1:5432/${db.name}/metaspn\\.run_lock/${NAME}\\)\\n  active        1\\n  pid           ${holder.pid} \\(running\\)\\n`),
      );
      const r = cli(['pipeline', 'run', NAME, '--date', '2026-03-02', '--workspace', dir, '--database-url', db.url], { env: { METASPN_DATABASE_URL: '' }, cwd: dir });
      expect(r.code).toBe(11);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(new RegExp(`^error: run lock ${NAME} is held by pid ${holder.pid} on \\S+ since \\S+ \\(reason: fixture holding the lock, cmd: hold-pg-run-lock fixture\\)\\n`));
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(await sql(`SELECT run_id FROM metaspn.manifest WHERE date = '2026-03-02'`)).toEqual([]);
      expect(await sql(`SELECT count(*)::int AS n FROM metaspn.ledger WHERE body LIKE '%2026-03-02%'`)).toEqual([{ n: 0 }]);
      holder.kill('SIGKILL');
      await until(
        async () => !JSON.parse((await cliIn(['lock', 'status', '--workspace', dir, '--name', NAME, '--json'], { env: { METASPN_DATABASE_URL: db.url } })).stdout).held,
        10_000,
        "the killed holder's session to end",
      );
      const gone = await cliIn(['lock', 'status', '--workspace', dir, '--name', NAME], { env: { METASPN_DATABASE_URL: db.url } });
      expect(gone.stdout).toContain('  stale: its lock session ended; the next run takes it over\n');
    } finally {
      holder.kill('SIGKILL');
    }
  }, 60_000);
});
