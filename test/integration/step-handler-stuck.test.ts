import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exit, ROOT, start, tempWorkspace, waitFor } from './cli.js';

/**
 * A step handler that never returns and ignores its `ctx.signal` (a promise that never settles,
 * with a timer that keeps the process busy). A pipeline's steps run in the run's own process, so
 * nothing can stop such a handler: `pipeline run` waited for it forever and cron never got an exit
 * code. Now the attempt is given up 1 s after its timeout: the attempt is recorded (a retry
 * scheduled), the run ends with 50 and one line naming the task, nothing is published, and the
 * next run of the date, with the handler fixed, publishes.
 */

const MODULE = `import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { definePipeline, defineStep, defineWorker } from 'metaspn';
const stuck = process.env.STUCK === '1';
const s = defineStep({
  name: 'a',
  plan: () => [{ key: 'one', payload: {} }, { key: 'two', payload: {} }],
  worker: defineWorker({
    handle: (task, ctx) => {
      appendFileSync(join(ctx.workspace.root, 'starts.log'), ctx.step.key + '\\n');
      if (stuck && ctx.step.key === 'two') {
        setInterval(() => undefined, 1000);
        return new Promise(() => {});
      }
      return [{ key: ctx.step.key, v: 1 }];
    },
  }),
});
export default definePipeline({ name: 'p', partition: 'date', steps: [s] });
`;

describe('a step handler that never returns and ignores its signal', () => {
  it('is given up after its timeout: the run exits 50 naming the task, publishes nothing, and the next run publishes', async () => {
    const dir = tempWorkspace({ demo: false, config: { pipelines: { p: './pipe.mjs' }, queues: { defaults: { timeout_ms: 300, backoff_base_ms: 10, backoff_cap_ms: 10 } } } });
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(ROOT, join(dir, 'node_modules', 'metaspn'), 'dir');
    writeFileSync(join(dir, 'pipe.mjs'), MODULE);
    const args = ['pipeline', 'run', 'p', '--workspace', dir, '--date', '2026-01-05'];

    const stuck = await exit(start(args, { env: { STUCK: '1' } }), 60_000);
    expect(stuck.code, stuck.stdout + stuck.stderr).toBe(50);
    expect(stuck.stdout).toMatch(
      /^failed: a: task (\S+): its handler did not return within 1000 ms of being stopped \(task timed out after 300 ms\); the attempt was given up and nothing of it written$/m,
    );
    expect(stuck.stdout).toMatch(/^not published$/m);
    // The attempt is recorded: a retry is scheduled, which the next run takes.
    expect(stuck.stderr).toMatch(/^warning: task \S+ of p-a failed, attempt 1 of \d+: TaskTimeoutError: task timed out after 300 ms; retry at /m);
    expect(stuck.stdout + stuck.stderr).not.toMatch(/^\s+at /m);
    expect(existsSync(join(dir, 'manifests', 'current', 'p', 'date=2026-01-05.json'))).toBe(false);
    // No second attempt beside the one given up (its retry was due 10 ms later): the run stopped claiming.
    expect(readFileSync(join(dir, 'starts.log'), 'utf8').split('\n').filter(Boolean).sort()).toEqual(['one', 'two']);

    const fixed = await exit(start(args), 60_000);
    expect(fixed.code, fixed.stdout + fixed.stderr).toBe(0);
    const pointer = JSON.parse(readFileSync(join(dir, 'manifests', 'current', 'p', 'date=2026-01-05.json'), 'utf8')) as { run_id: string };
    expect(pointer.run_id).toBeTruthy();
    const store = readdirSync(join(dir, 'store')).filter((f) => f.startsWith('p.a'));
    const rows = store
      .flatMap((f) =>
        readFileSync(join(dir, 'store', f), 'utf8')
          .trim()
          .split('\n'),
      )
      .map((l) => JSON.parse(l) as { key: string });
    expect(rows.map((r) => r.key).sort()).toEqual(['one', 'two']);
  }, 120_000);
});

describe('a check that never settles', () => {
  it('SIGTERM ends the run with 11, the run is recorded as stopped and nothing is published; the next run publishes', async () => {
    const mod = `import { definePipeline, defineStep, defineWorker } from 'metaspn';
const s = defineStep({ name: 'a', plan: () => [{ key: 'one', payload: {} }], worker: defineWorker({ handle: (t, ctx) => [{ key: ctx.step.key }] }) });
const c = { name: 'never', run: () => process.env.STUCK === '1' ? new Promise(() => setInterval(() => {}, 1000)) : { status: 'pass', observed: 1, expected: 1 } };
export default definePipeline({ name: 'p', partition: 'date', steps: [s], checks: [c] });
`;
    const dir = tempWorkspace({ demo: false, config: { pipelines: { p: './pipe.mjs' } } });
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(ROOT, join(dir, 'node_modules', 'metaspn'), 'dir');
    writeFileSync(join(dir, 'pipe.mjs'), mod);
    const args = ['pipeline', 'run', 'p', '--workspace', dir, '--date', '2026-01-05'];
    const p = start(args, { env: { STUCK: '1' } });
    const log = join(dir, 'logs', 'metaspn.jsonl');
    await waitFor(() => existsSync(log) && readFileSync(log, 'utf8').includes('"event":"stage_end"'), 20_000, 'step a ended');
    p.child.kill('SIGTERM');
    const r = await exit(p, 20_000);
    expect(r.code, r.stdout + r.stderr).toBe(11);
    expect(r.stdout).toMatch(/^not published$/m);
    expect(r.stdout + r.stderr).toMatch(/the checks not finished \(stop requested\); re-run to continue/);
    expect(existsSync(join(dir, 'manifests', 'current', 'p', 'date=2026-01-05.json'))).toBe(false);
    const again = await exit(start(args), 60_000);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(existsSync(join(dir, 'manifests', 'current', 'p', 'date=2026-01-05.json'))).toBe(true);
  }, 120_000);
});
