// A stop while a pipeline stage waits out a retry is a deliberate stop: exit 11, not a failure.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exit, ROOT, start, tempWorkspace, waitFor } from './cli.js';
import { cliIn } from './in-process.js';

const FAILING_STAGE = join(ROOT, 'test', 'fixtures', 's1-failing-stage.mjs');

describe.each(['SIGINT', 'SIGTERM'] as const)('s1 run-local stopped by %s while a stage waits out a retry', (signal) => {
  it('exits 11 naming the stop; the task stays scheduled with its attempt counted', async () => {
    const ws = tempWorkspace();
    // project_rewards fails; its retry is a minute away, so the stage is surely waiting when the signal comes.
    const env = { NODE_OPTIONS: `--import ${FAILING_STAGE}`, METASPN_QUEUE_BACKOFF_BASE_MS: '60000', METASPN_QUEUE_BACKOFF_CAP_MS: '60000' };
    const p = start(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15', '--run-id', 'r1'], { cwd: ws, env });
    const attempts = join(ws, 'stage-attempts.log');
    await waitFor(() => existsSync(attempts), 60_000, 'the first failed attempt of project_rewards');
    p.child.kill(signal);
    const r = await exit(p, 60_000);
    expect(r.signal).toBeNull();
    expect(r.code, `stdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(11);
    expect(r.stdout).toMatch(/failed: project_rewards: 1 task\(s\) of project_rewards not finished \(stop requested\); re-run to continue/);
    expect(r.stdout).toContain('not published');
    expect(readFileSync(attempts, 'utf8').split('\n').filter(Boolean)).toHaveLength(1);
    const m = JSON.parse(readFileSync(join(ws, 'manifests', 'project_rewards', 'date=2026-01-15', 'run=r1', 'manifest.json'), 'utf8'));
    expect(m).toMatchObject({ status: 'failed', exit_code: 11, error: { class: 'Stopped' } });
    // What the stopped stage left, read in this process.
    const st = await cliIn(['queue', 'stats', 'project_rewards', '--workspace', ws, '--json']);
    expect(JSON.parse(st.stdout)).toMatchObject({ scheduled: 1, leased: 0, dead: 0 });
  });
});

describe('s1 run-local stopped while a stage waits out a retry of a store it cannot write', () => {
  it('exits 11 (a stop), not 50: the output that cannot be read back is not what ended the stage', async () => {
    const ws = tempWorkspace();
    // The projections file is a folder: every project_rewards attempt fails with EISDIR, and the retry is a minute away.
    mkdirSync(join(ws, 'store', 's1_reward_projections.jsonl'), { recursive: true });
    const env = { METASPN_QUEUE_BACKOFF_BASE_MS: '60000', METASPN_QUEUE_BACKOFF_CAP_MS: '60000' };
    const p = start(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15', '--run-id', 'r1'], { cwd: ws, env });
    const log = join(ws, 'logs', 'metaspn.jsonl');
    await waitFor(() => existsSync(log) && /"queue":"project_rewards"[^\n]*"next":"retry"/.test(readFileSync(log, 'utf8')), 60_000, 'the first failed attempt of project_rewards in the log');
    p.child.kill('SIGINT');
    const r = await exit(p, 60_000);
    expect(r.code, `stdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(11);
    expect(r.stdout).toMatch(/failed: project_rewards: 1 task\(s\) of project_rewards not finished \(stop requested\)/);
    const m = JSON.parse(readFileSync(join(ws, 'manifests', 'project_rewards', 'date=2026-01-15', 'run=r1', 'manifest.json'), 'utf8'));
    expect(m).toMatchObject({ status: 'failed', exit_code: 11, error: { class: 'Stopped' } });
  });
});
