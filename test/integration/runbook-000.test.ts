import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, ROOT, tempWorkspace } from './cli.js';

/**
 * Every command of the Season 1 operations runbook (seed 000), run verbatim as a subprocess from
 * a workspace root. The runbook is read from ../shared when it is there; the copy in
 * test/fixtures must match it.
 */
const SHARED = join(ROOT, '..', 'shared', 'seeds', '000_ca37633f59414a32.txt');
const COPY = join(ROOT, 'test', 'fixtures', 'runbook-000.txt');
const RUNBOOK = readFileSync(existsSync(SHARED) ? SHARED : COPY, 'utf8');

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

  it('every command works as written, from the workspace root', () => {
    const ws = tempWorkspace();
    const vars: Record<string, string> = { 'YYYY-MM-DD': '2026-01-15' };
    const seen: string[] = [];
    for (const line of runbookCommands(RUNBOOK)) {
      if (line.includes('<task_id>')) {
        // Give the runbook a dead letter to requeue by id: a task whose payload breaks the contract.
        const bad = cli(['queue', 'enqueue', 'project_rewards', '--workspace', '.', '--payload', '{"date":"not-a-date"}', '--id', 'bad-task'], { cwd: ws });
        expect(bad.code).toBe(0);
        const run = cli(['worker', 'run', 'metaspn_ops.workers.s1:ProjectRewardsWorker', '--workspace', '.', '--once'], { cwd: ws });
        expect(run.code).toBe(20);
        const list = cli(['queue', 'deadletter', 'list', 'project_rewards', '--workspace', '.', '--json'], { cwd: ws });
        vars['<task_id>'] = JSON.parse(list.stdout).dead_letters[0].task.id;
      }
      const r = cli(argv(line, vars), { cwd: ws });
      expect(r.code, `${line}\n${r.stderr}`).toBe(0);
      expect(r.stderr, line).not.toMatch(/^error:/m);
      seen.push(line);
      if (line.includes('queue stats')) expect(r.stdout).toMatch(/^queue \w+\n\s+ready\s+\d+/);
      if (line.includes('deadletter list')) expect(r.stdout).toMatch(/no dead letters for|dead letter\(s\) in/);
      if (line.includes('s1 run-local')) expect(r.stdout).toContain('published: manifests/current/s1/date=2026-01-15.json');
      if (line.includes('--task-id')) expect(r.stdout).toContain('moved 1 task(s) of project_rewards back to ready');
    }
    expect(seen).toHaveLength(13);
    for (const f of ['s1_attention_scores.jsonl', 's1_reward_projections.jsonl', 's1_settlements.jsonl', 's1_summaries.jsonl']) {
      expect(existsSync(join(ws, 'store', f)), f).toBe(true);
    }
  });
});
