import { appendFileSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, pgAvailable, type TestDatabase } from '../queue/pg-db.js';
import { tempDir } from '../temp.js';
import { until } from '../wait.js';
import { assertNoChildren, exit, start, tempWorkspace, type CliResult } from './cli.js';
import { cliIn as cli } from './in-process.js';

/**
 * Season 1 whole on PostgreSQL: the same commands on a workspace on files and on one whose backend
 * is a database (`--database-url`, `pipeline … s1`, METASPN_DATABASE_URL). Rows, manifests,
 * pointers, the ledger, the queues and the run lock are in the database, nothing of them in the
 * workspace; `store export` gives back store/s1_*.jsonl equal byte for byte, in the same order, to
 * the file backend's store.
 */
const up = await pgAvailable();
const STORE = ['s1_attention_scores.jsonl', 's1_reward_projections.jsonl', 's1_settlements.jsonl', 's1_summaries.jsonl'];
const FILES = { METASPN_DATABASE_URL: '' };
let db: TestDatabase;

interface Report {
  run_id: string;
  status: string;
  exit_code: number;
  restatement_of?: string;
  params: Record<string, string>;
  stages: { step: string; manifest: string; outputs: { path: string; rows_written: number; rows_present: number; sha256: string }[] }[];
}

interface Pointer {
  run_id: string;
  summary_id: string;
  params: Record<string, string>;
}

const sql = <T extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<T[]> => db.query<T>(text, values);

function json<T>(r: CliResult): T {
  expect(r.stdout, r.stderr).toMatch(/^\{/);
  return JSON.parse(r.stdout) as T;
}

/** What a run report says of its stages, without what differs between backends (where the manifests are). */
const stagesOf = (r: Report): unknown[] => r.stages.map((s) => [s.step, s.outputs[0]!.rows_written, s.outputs[0]!.rows_present, s.outputs[0]!.sha256]);

const filePointers = (ws: string): Record<string, Pointer> =>
  Object.fromEntries(
    readdirSync(join(ws, 'manifests', 'current', 's1'))
      .sort()
      .map((f) => [f.slice(5, 15), JSON.parse(readFileSync(join(ws, 'manifests', 'current', 's1', f), 'utf8')) as Pointer]),
  );
const pgPointers = async (): Promise<Record<string, Pointer>> =>
  Object.fromEntries(
    (await sql<{ date: string; body: string }>(`SELECT date, body FROM metaspn.current_pointer WHERE pipeline = 's1' ORDER BY date`)).map((x) => [x.date, JSON.parse(x.body) as Pointer]),
  );
const sameAs = (p: Record<string, Pointer>): Record<string, unknown> => Object.fromEntries(Object.entries(p).map(([d, x]) => [d, [x.summary_id, x.params]]));

describe.skipIf(!up)('Season 1 on PostgreSQL', () => {
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });
  afterEach(() => assertNoChildren());

  it('run-local, a restatement, a backfill --max-parallel 3 and a rollback: the same reports, pointers and ledger as on files, and store export equal byte for byte and in order', async () => {
    const files = tempWorkspace();
    const base = tempWorkspace();
    const url = ['--database-url', db.url];
    // The same command on both workspaces, one after the other, in this process (a process of their own adds nothing here).
    const both = async (args: string[], ws: string): Promise<[CliResult, CliResult]> => [
      await cli([...args, '--workspace', files], { env: FILES }),
      await cli([...args, '--workspace', ws, ...url], { env: FILES }),
    ];

    // One date, then another while a `worker run` of stage 1 (another host, in effect) drains the same queue.
    let [f, p] = await both(['s1', 'run-local', '--date', '2026-01-15', '--run-id', 'a1', '--json'], base);
    const first = [json<Report>(f), json<Report>(p)];
    expect(first.map((r) => [r.status, r.exit_code])).toEqual([
      ['published', 0],
      ['published', 0],
    ]);
    expect(stagesOf(first[1]!)).toEqual(stagesOf(first[0]!));
    expect(first[1]!.stages.map((s) => [s.outputs[0]!.path, s.manifest])).toEqual(
      ['update_attention_scores', 'project_rewards', 'settle_season', 'publish_season_summary'].map((s) => [`pg:metaspn.artifact/s1.${s}`, `pg:metaspn.manifest/s1/${s}/date=2026-01-15/run=a1`]),
    );
    const worker = start(['worker', 'run', 'metaspn_ops.workers.s1:UpdateAttentionScoresWorker', '--workspace', base, '--poll-ms', '50', ...url]);
    // Running by the time the run-locals below start (in this process they take a second or two,
    // less than the worker's own start): its first claim, made with its SIGTERM handled, names its pid.
    await until(async () => (await sql(`SELECT 1 FROM metaspn.worker WHERE pid = $1`, [worker.child.pid])).length > 0, 60_000, 'the worker to make its first claim');
    [f, p] = await both(['s1', 'run-local', '--date', '2026-01-16', '--run-id', 'a2', '--json'], base);
    expect(stagesOf(json<Report>(p))).toEqual(stagesOf(json<Report>(f)));
    worker.child.kill('SIGTERM');
    const w = await exit(worker);
    expect([w.code, w.stdout], w.stderr).toEqual([0, expect.stringMatching(/^worker update_attention_scores: claimed (\d+), completed \1 in [\d.]+s \(exit 0\)\n$/)]);

    // A late signal of the 15th: re-running it restates run a1 (new params, new rows beside the old).
    const late = `${JSON.stringify({ signal_id: 'late-1', ts: '2026-01-15T22:00:00Z', subject_ref: 'creator:c0007', kind: 'share', value: 3 })}\n`;
    for (const ws of [files, base]) appendFileSync(join(ws, 'inputs', 's1_signals.jsonl'), late);
    [f, p] = await both(['pipeline', 'run', 's1', '--date', '2026-01-15', '--run-id', 'a3', '--json'], base);
    const restated = [json<Report>(f), json<Report>(p)];
    expect(restated.map((r) => [r.exit_code, r.restatement_of])).toEqual([
      [0, 'a1'],
      [0, 'a1'],
    ]);
    expect(stagesOf(restated[1]!)).toEqual(stagesOf(restated[0]!));

    // Five dates, three at once: the 15th and 16th again (counted anew), three new ones.
    [f, p] = await both(['pipeline', 'backfill', 's1', '--start', '2026-01-13', '--end', '2026-01-17', '--max-parallel', '3', '--json'], base);
    const bf = [json<{ exit_code: number; dates: Record<string, { status: string }> }>(f), json<{ exit_code: number; dates: Record<string, { status: string }> }>(p)];
    for (const r of bf) expect([r.exit_code, Object.values(r.dates).map((d) => d.status)]).toEqual([0, ['published', 'published', 'published', 'published', 'published']]);

    // A replay writes nothing.
    for (const r of await both(['s1', 'run-local', '--date', '2026-01-17', '--json'], base)) {
      const replay = json<Report>(r);
      expect([replay.exit_code, replay.stages.map((s) => s.outputs[0]!.rows_written)]).toEqual([0, [0, 0, 0, 0]]);
    }

    // The rows: exported from the database, the file backend's bytes in the file backend's order.
    const out = tempDir('metaspn-export-');
    const x = await cli(['store', 'export', '--workspace', base, '--out', out, '--json'], { env: { METASPN_DATABASE_URL: db.url } });
    expect(x.code, x.stderr).toBe(0);
    expect(JSON.parse(x.stdout)).toMatchObject({ backend: 'postgres', stores: STORE.map((s) => ({ store: s.slice(0, -6) })) });
    for (const s of STORE) expect(readFileSync(join(out, 'store', s), 'utf8'), s).toBe(readFileSync(join(files, 'store', s), 'utf8'));
    expect((await sql<{ n: number }>(`SELECT count(*)::int AS n FROM metaspn.artifact WHERE store LIKE 's1.%'`))[0]!.n).toBe(
      STORE.reduce((n, s) => n + readFileSync(join(files, 'store', s), 'utf8').split('\n').length - 1, 0),
    );
    // The pointers (their summaries and params) and the ledger's entries, as on files; nothing of them in the workspace.
    expect(sameAs(await pgPointers())).toEqual(sameAs(filePointers(files)));
    type Entry = { kind: string; detail: { date?: string; restatement_of?: string } };
    const kinds = (es: Entry[]): unknown[] => es.map((e) => [e.kind, e.detail.date, e.detail.restatement_of ?? null]);
    const fileLedger = readFileSync(join(files, 'ledger.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Entry);
    const pgLedger = (await sql<{ body: string }>(`SELECT body FROM metaspn.ledger ORDER BY seq`)).map((r) => JSON.parse(r.body) as Entry);
    expect(kinds(pgLedger)).toEqual(kinds(fileLedger));
    expect(kinds(pgLedger)).toHaveLength(9);
    for (const path of ['store', 'ledger.jsonl', join('manifests', 'current'), join('manifests', 'update_attention_scores'), join('locks', 's1.lock')])
      expect(existsSync(join(base, path)), path).toBe(false);

    // Rollback in the database: one publish back, as on files.
    [f, p] = await both(['s1', 'rollback', '--steps', '1', '--reason', 'test', '--json'], base);
    const rb = [json<{ changes: { date: string; to: Pointer | null }[] }>(f), json<{ changes: { date: string; to: Pointer | null }[] }>(p)];
    expect(rb[1]!.changes.map((c) => [c.date, c.to?.summary_id])).toEqual(rb[0]!.changes.map((c) => [c.date, c.to?.summary_id]));
    expect(sameAs(await pgPointers())).toEqual(sameAs(filePointers(files)));
    expect((await sql<{ kind: string }>(`SELECT kind FROM metaspn.ledger ORDER BY seq DESC LIMIT 1`))[0]!.kind).toBe('rollback');
  }, 240_000);

  it('doctor reads Season 1 in the database: a late signal makes the published dates stale; backfill --resume restates them, then skips them', async () => {
    const ws = tempWorkspace({ config: { backend: { schema: 's1_stale' } } });
    const env = { METASPN_DATABASE_URL: db.url };
    for (const date of ['2026-01-20', '2026-01-21']) {
      const r = await cli(['s1', 'run-local', '--workspace', ws, '--date', date], { env });
      expect(r.code, r.stderr).toBe(0);
    }
    const doctor = async (): Promise<{ code: number | null; findings: { severity: string; area: string; path: string; message: string }[] }> => {
      const r = await cli(['doctor', '--workspace', ws, '--json'], { env });
      return { code: r.code, findings: (JSON.parse(r.stdout) as { findings: { severity: string; area: string; path: string; message: string }[] }).findings.filter((x) => x.severity !== 'info') };
    };
    expect(await doctor()).toEqual({ code: 0, findings: [] });

    appendFileSync(join(ws, 'inputs', 's1_signals.jsonl'), `${JSON.stringify({ signal_id: 'late-2', ts: '2026-01-20T23:00:00Z', subject_ref: 'creator:c0003', kind: 'follow' })}\n`);
    const stale = await doctor();
    expect(stale.code).toBe(0);
    expect(stale.findings.map((x) => [x.severity, x.area, x.path])).toEqual([
      ['warning', 'stale', 'pg:s1_stale.current_pointer/s1/date=2026-01-20'],
      ['warning', 'stale', 'pg:s1_stale.current_pointer/s1/date=2026-01-21'],
    ]);
    expect(stale.findings[0]!.message).toMatch(
      /^s1 2026-01-20 is stale \(published by run \S+\): inputs changed: inputs digest [0-9a-f]{16} was published, inputs\/s1_signals\.jsonl gives [0-9a-f]{16} now$/,
    );

    let bf = json<{ exit_code: number; dates: Record<string, { status: string; stale?: string }> }>(
      await cli(['s1', 'backfill', '--workspace', ws, '--start', '2026-01-20', '--end', '2026-01-21', '--resume', '--json'], { env }),
    );
    expect([bf.exit_code, Object.values(bf.dates).map((d) => [d.status, !!d.stale])]).toEqual([
      0,
      [
        ['published', true],
        ['published', true],
      ],
    ]);
    expect(await doctor()).toEqual({ code: 0, findings: [] });
    bf = json(await cli(['s1', 'backfill', '--workspace', ws, '--start', '2026-01-20', '--end', '2026-01-21', '--resume', '--json'], { env }));
    expect([bf.exit_code, Object.values(bf.dates).map((d) => d.status)]).toEqual([0, ['skipped', 'skipped']]);

    // A published run whose rows changed in the table: doctor names its manifest (30).
    await sql(
      `UPDATE s1_stale.artifact SET body = replace(body, '"score":', '"score":1') WHERE id = (SELECT id FROM s1_stale.artifact WHERE store = 's1.publish_season_summary' ORDER BY seq DESC LIMIT 1)`,
    );
    const bad = await doctor();
    expect(bad.code).toBe(30);
    expect(bad.findings.map((x) => [x.severity, x.area, x.message])).toEqual([['error', 'manifest', 'its recorded output hash no longer matches the publish_season_summary rows of 2026-01-21']]);
    expect(bad.findings[0]!.path).toMatch(/^pg:s1_stale\.manifest\/s1\/publish_season_summary\/date=2026-01-21\/run=bf-\S+\.2026-01-21$/);
  }, 180_000);

  it('a row changed in the table under its id: the replay writes nothing, reports an incident and exits 30', async () => {
    // A schema of its own: this database already holds the other tests' rows.
    const ws = tempWorkspace({ config: { backend: { schema: 's1_conflict' } } });
    const url = ['--database-url', db.url, '--workspace', ws];
    const env = { METASPN_DATABASE_URL: '' };
    let r = await cli(['s1', 'run-local', '--date', '2026-01-20', '--run-id', 'c1', ...url], { env });
    expect(r.code, r.stderr).toBe(0);
    const [row] = await sql<{ id: string; body: string }>(`SELECT id, body FROM s1_conflict.artifact WHERE store = 's1.update_attention_scores' ORDER BY seq LIMIT 1`);
    const tampered = row!.body.replace(/"score":[\d.]+/, '"score":1234.5');
    await sql(`UPDATE s1_conflict.artifact SET body = $2 WHERE store = 's1.update_attention_scores' AND id = $1`, [row!.id, tampered]);

    r = await cli(['s1', 'run-local', '--date', '2026-01-20', '--run-id', 'c2', ...url], { env });
    expect(r.code, r.stderr).toBe(30);
    expect(r.stdout).toMatch(
      new RegExp(
        `^failed: update_attention_scores: 1 task\\(s\\) of update_attention_scores in the dead letters \\(first ${row!.id}: ReplayConflictError: replay conflict: s1_attention_scores\\.jsonl already holds ${row!.id} with different content\\)`,
        'm',
      ),
    );
    expect(r.stdout).toMatch(/^not published$/m);
    const incidents = readdirSync(join(ws, 'reports', 'incidents')).filter((n) => n.includes('replay_conflict'));
    expect(incidents).toHaveLength(1);
    const incident = JSON.parse(readFileSync(join(ws, 'reports', 'incidents', incidents[0]!), 'utf8')) as Record<string, unknown>;
    expect(incident).toMatchObject({
      store: 'pg:s1_conflict.artifact/s1.update_attention_scores',
      id: row!.id,
      date: '2026-01-20',
      run_id: 'c2',
      existing: JSON.parse(tampered),
      incoming: JSON.parse(row!.body),
    });
    // Nothing overwritten, and the pointer still names the first run.
    expect(await sql(`SELECT body FROM s1_conflict.artifact WHERE store = 's1.update_attention_scores' AND id = $1`, [row!.id])).toEqual([{ body: tampered }]);
    expect((await sql<{ run_id: string }>(`SELECT run_id FROM s1_conflict.current_pointer WHERE pipeline = 's1'`)).map((x) => x.run_id)).toEqual(['c1']);
  }, 120_000);
});
