import { execFileSync } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, ROOT, tempWorkspace } from './cli.js';

/**
 * The repository root is itself a workspace (README): what a run writes there must be ignored by
 * git, so that the README's first command (and the runbook's) on a fresh clone leaves `git status`
 * as it was. A workspace with the repository's .gitignore, in a git repository of its own.
 */
describe('the repository root as a workspace', () => {
  it("the README's first run and the runbook's commands leave nothing that git does not ignore", { timeout: 120_000 }, () => {
    const ws = tempWorkspace();
    copyFileSync(join(ROOT, '.gitignore'), join(ws, '.gitignore'));
    const git = (...args: string[]): string => execFileSync('git', args, { cwd: ws, encoding: 'utf8' });
    git('init', '-q');
    const commands = [
      ['s1', 'run-local', '--workspace', '.', '--date', '2026-01-15'],
      ['queue', 'stats', 'project_rewards', '--workspace', '.'],
      ['queue', 'deadletter', 'list', 'project_rewards', '--workspace', '.'],
      ['worker', 'run', 'metaspn_ops.workers.s1:ProjectRewardsWorker', '--workspace', '.', '--once', '--max-tasks', '1'],
      ['queue', 'retry', 'project_rewards', '--workspace', '.'],
    ];
    for (const args of commands) {
      const r = cli(args, { cwd: ws });
      expect(r.code, `${args.join(' ')}\n${r.stderr}`).toBe(0);
    }
    const untracked = git('status', '--porcelain', '--untracked-files=all').split('\n').filter(Boolean).sort();
    expect(untracked).toEqual(['?? .gitignore', '?? inputs/s1_signals.jsonl']);
  });
});
