import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTestDatabase, pgAvailable } from '../queue/pg-db.js';
import { tempDir } from '../temp.js';
import { cli, ROOT, tempWorkspace, type CliResult } from './cli.js';
import { cliIn } from './in-process.js';

/**
 * Every command of the Season 1 operations runbook (seed 000), run verbatim as a subprocess from
 * a workspace root: on files, then with the backend set by the environment (METASPN_DATABASE_URL),
 * as an operator who moved to PostgreSQL types them. The runbook is read from ../shared when it is there; the copy in
 * test/fixtures must match it.
 */
const SHARED = join(ROOT, '..', 'shared', 'seeds', '000_ca37633f59414a32.txt');
const COPY = join(ROOT, 'test', 'fixtures', 'runbook-000.txt');
const RUNBOOK = readFileSync(existsSync(SHARED) ? SHARED : COPY, 'utf8');
const up = await pgAvailable();

/** The runbook's commands: each line of each bash block, continuation lines joined. */
function runbookCommands(text: string): string[] {
  const blocks = [...text.matchAll(/```bash\n([\s\S]*?)```/g)].map((m) => m[1]!);
  return blocks.flatMap((b) =>
    b
      .replace(/\\\n\s*/g, ' ')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.startsWith('metaspn ')),
  );
}

/** Splits a command line like a shell would for these simple commands (no quotes needed). */
function argv(line: string, vars: Record<string, string>): string[] {
  let l = line;
  for (const [k, v] of Object.entries(vars)) l = l.replaceAll(k, v);
  return l.split(/\s+/).slice(1);
}

describe('runbook 000, verbatim', () => {
  it('the fixture copy matches the shared runbook', () => {
    if (existsSync(SHARED)) expect(readFileSync(COPY, 'utf8')).toBe(readFileSync(SHARED, 'utf8'));
    expect(runbookCommands(RUNBOOK)).toHaveLength(13);
  });

  // 13 CLI processes (the runbook lines), one after the other: over 45 s at load 20-28, like its PostgreSQL twin below.
  it('every command works as written, from the workspace root', { timeout: 180_000 }, async () => {
    const ws = await runbook({}, (line, r) => {
      if (line.includes('deadletter list')) expect(r.stdout).toMatch(/no dead letters for|dead letter\(s\) in/);
      if (line.includes('s1 run-local')) expect(r.stdout).toContain('published: manifests/current/s1/date=2026-01-15.json');
    });
    for (const f of STORE) expect(existsSync(join(ws, 'store', f)), f).toBe(true);
    onFiles = Object.fromEntries(STORE.map((f) => [f, readFileSync(join(ws, 'store', f), 'utf8')]));
  });

  // After the test above: its store is what the database's must export to. 14 CLI processes, about 12 s on a quiet machine.
  it.skipIf(!up)(
    'on PostgreSQL (METASPN_DATABASE_URL set): every command works as written; the rows are in the database, and store export equals the store on files',
    { timeout: 180_000 },
    async () => {
      const db = await createTestDatabase();
      try {
        const env = { METASPN_DATABASE_URL: db.url };
        const ws = await runbook(env, (line, r) => {
          if (line.includes('s1 run-local')) expect(r.stdout).toContain('published: pg:metaspn.current_pointer/s1/date=2026-01-15');
        });
        for (const f of STORE) expect(existsSync(join(ws, 'store', f)), f).toBe(false);
        const out = tempDir('metaspn-rb-export-');
        const x = cli(['store', 'export', '--workspace', ws, '--out', out], { env });
        expect(x.code, x.stderr).toBe(0);
        expect(onFiles, 'the runbook on files ran first').toBeTruthy();
        for (const f of STORE) expect(readFileSync(join(out, 'store', f), 'utf8'), f).toBe(onFiles![f]);
      } finally {
        await db.drop();
      }
    },
  );
});

const STORE = ['s1_attention_scores.jsonl', 's1_reward_projections.jsonl', 's1_settlements.jsonl', 's1_summaries.jsonl'];
/** The store files the runbook left on files, by name. */
let onFiles: Record<string, string> | undefined;

/**
 * Runs every runbook command verbatim from the root of a fresh workspace, with `env` (a dead letter
 * made for the command that requeues one by id); `check` sees each command's result. Returns the workspace.
 */
async function runbook(env: Record<string, string>, check: (line: string, r: CliResult) => void): Promise<string> {
  const ws = tempWorkspace();
  const run = (args: string[]): CliResult => cli(args, { cwd: ws, env });
  const vars: Record<string, string> = { 'YYYY-MM-DD': '2026-01-15' };
  const seen: string[] = [];
  for (const line of runbookCommands(RUNBOOK)) {
    if (line.includes('<task_id>')) {
      // Give the runbook a dead letter to requeue by id: a task whose payload breaks the contract.
      // Not runbook lines: made in this process (the runbook's own lines stay processes).
      const setup = (args: string[]): ReturnType<typeof cliIn> => cliIn([...args, '--workspace', ws], { env });
      expect((await setup(['queue', 'enqueue', 'project_rewards', '--payload', '{"date":"not-a-date"}', '--id', 'bad-task'])).code).toBe(0);
      expect((await setup(['worker', 'run', 'metaspn_ops.workers.s1:ProjectRewardsWorker', '--once'])).code).toBe(20);
      vars['<task_id>'] = JSON.parse((await setup(['queue', 'deadletter', 'list', 'project_rewards', '--json'])).stdout).dead_letters[0].task.id;
    }
    const r = run(argv(line, vars));
    expect(r.code, `${line}\n${r.stderr}`).toBe(0);
    expect(r.stderr, line).not.toMatch(/^error:/m);
    seen.push(line);
    if (line.includes('queue stats')) expect(r.stdout).toMatch(/^queue \w+\n\s+ready\s+\d+/);
    if (line.includes('--task-id')) expect(r.stdout).toContain('moved 1 task(s) of project_rewards back to ready');
    check(line, r);
  }
  expect(seen).toHaveLength(13);
  return ws;
}
