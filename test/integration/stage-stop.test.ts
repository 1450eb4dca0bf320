// A stop while a pipeline stage waits out a retry is a deliberate stop: exit 11, not a failure.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exit, ROOT, run, start, tempWorkspace, waitFor } from './cli.js';

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
    const st = await run(['queue', 'stats', 'project_rewards', '--workspace', ws, '--json']);
    expect(JSON.parse(st.stdout)).toMatchObject({ scheduled: 1, leased: 0, dead: 0 });
  });
});
