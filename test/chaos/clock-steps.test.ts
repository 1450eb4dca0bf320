// Wall-clock steps (NTP-like): real CLI workers under libfaketime, which fakes CLOCK_REALTIME only
// (FAKETIME_DONT_FAKE_MONOTONIC=1) and reads its offset from one file, so every worker sees a step at
// once. Leases and retry waits are measured on CLOCK_MONOTONIC: a +2 h step must not make live
// leases look expired (tasks run twice), and a retry scheduled during the step must be due on time
// after the clock is stepped back (not 2 h later). Case: ../shared/cases/clock-steps.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { report, runIn, scale } from '../../chaos/lib.js';
import { readStats } from '../../src/queue/file/stats-file.js';
import { assertNoChildren, cleanWorkspaces, cli, exit, ROOT, start, tempWorkspace, waitFor, type Proc } from '../integration/cli.js';

const s = scale();
const WORKER = `${join(ROOT, 'test', 'fixtures', 'clock-workers.mjs')}:ClockRec`;
const QUEUE = 'clockq';
const H2_S = 7200;

/** libfaketime's multi-threaded library, where Debian and others install it (`apt-get install -y faketime`). */
const FAKETIME = ['x86_64-linux-gnu', 'aarch64-linux-gnu', 'arm-linux-gnueabihf', 'i386-linux-gnu']
  .map((arch) => `/usr/lib/${arch}/faketime/libfaketimeMT.so.1`)
  .concat(['/usr/lib/faketime/libfaketimeMT.so.1', '/usr/local/lib/faketime/libfaketimeMT.so.1'])
  .find((p) => existsSync(p));

/** The environment of a process whose wall clock is shifted by what `file` says (`+0`, `+7200`), re-read on every call. */
const faked = (file: string): NodeJS.ProcessEnv => ({
  LD_PRELOAD: FAKETIME!,
  FAKETIME_TIMESTAMP_FILE: file,
  FAKETIME_NO_CACHE: '1',
  FAKETIME_DONT_FAKE_MONOTONIC: '1',
});

const lines = (ws: string, file: string): string[][] => {
  const p = join(ws, file);
  return existsSync(p)
    ? readFileSync(p, 'utf8')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split(' '))
    : [];
};
/** How many times each task id occurs in a log. */
const countById = (rows: string[][]): Map<string, number> => {
  const m = new Map<string, number>();
  for (const r of rows) m.set(r[1]!, (m.get(r[1]!) ?? 0) + 1);
  return m;
};

afterEach(() => {
  assertNoChildren();
  cleanWorkspaces();
});

describe('chaos: wall-clock steps', () => {
  if (!FAKETIME) {
    it.skip('skipped: libfaketime is not installed (apt-get install -y faketime); it fakes the wall clock of the worker processes', () => undefined);
    return;
  }

  it('a +2 h step under three running workers makes no task run twice; a step back strands no retry', async () => {
    const N = s.full ? 600 : 240;
    const MS = s.full ? 300 : 150;
    const ws = tempWorkspace({ demo: false });
    const rc = join(ws, 'faketime.rc');
    writeFileSync(rc, '+0\n');
    // Every tenth task fails its first attempt: its retry is scheduled around the steps.
    const tasks = Array.from({ length: N }, (_, i) => JSON.stringify({ id: `c${i}`, payload: { ms: MS, flaky: i % 10 === 0 } }));
    writeFileSync(join(ws, 'tasks.jsonl'), `${tasks.join('\n')}\n`);
    // Enqueues and stats in this process (runIn); the workers whose clock is faked stay processes.
    expect((await runIn(['queue', 'enqueue', QUEUE, '--workspace', ws, '--file', join(ws, 'tasks.jsonl')])).code).toBe(0);
    const env = { ...faked(rc), METASPN_QUEUE_BACKOFF_BASE_MS: '500', METASPN_QUEUE_BACKOFF_CAP_MS: '500' };
    const workers: Proc[] = [1, 2, 3].map(() => start(['worker', 'run', WORKER, '--workspace', ws, '--concurrency', '4', '--poll-ms', '100', '--json'], { env }));
    const started = (): number => lines(ws, 'executions.log').length;

    await waitFor(() => started() >= N / 5, 60_000, 'a fifth of the tasks to start');
    writeFileSync(rc, `+${H2_S}\n`);
    const stepAt = started();
    await waitFor(() => started() >= stepAt + N / 4, 60_000, 'a quarter more to start during the +2 h step');
    writeFileSync(rc, '+0\n');
    const dir = join(ws, 'queue', QUEUE);
    await waitFor(() => readStats(dir, QUEUE, Date.now()).completed === N, 120_000, 'every task to complete');
    for (const w of workers) w.child.kill('SIGTERM');
    const runs = await Promise.all(workers.map((w) => exit(w, 30_000)));
    // Stopped by SIGTERM once the queue was drained, each with its summary: 11 when it scheduled a
    // retry, gave a task back or lost a lease, else 0 (docs/EXIT-CODES.md, worker run). A worker
    // that a loaded machine left without a flaky task did nothing of the kind.
    const sums = runs.map((r) => JSON.parse(r.stdout) as { lease_lost: number; retry_scheduled: number; released: number; abandoned: number; completed: number });
    for (const [i, r] of runs.entries()) {
      const x = sums[i]!;
      expect(r.code, r.stderr).toBe(x.retry_scheduled + x.released + x.lease_lost + x.abandoned > 0 ? 11 : 0);
    }
    expect(runs.some((r) => r.code === 11)).toBe(true);

    const stats = JSON.parse((await runIn(['queue', 'stats', QUEUE, '--workspace', ws, '--json'])).stdout) as {
      completed: number;
      dead: number;
      ready: number;
      scheduled: number;
      leased: number;
      totals: { failed: number };
    };
    const flaky = Math.ceil(N / 10);
    const starts = countById(lines(ws, 'executions.log'));
    const effects = countById(lines(ws, 'effects.log'));
    const twice = [...effects.values()].filter((n) => n > 1).length;
    const extraStarts = [...starts].filter(([id, n]) => n !== (Number(id.slice(1)) % 10 === 0 ? 2 : 1)).map(([id]) => id);
    report('clock-steps', {
      tasks: N,
      work_ms: MS,
      step: '+2h then back',
      executions: [...starts.values()].reduce((a, b) => a + b, 0),
      tasks_run_twice: twice,
      extra_starts: extraStarts.length,
      failed_attempts: stats.totals.failed,
      lease_lost: sums.reduce((a, x) => a + x.lease_lost, 0),
    });
    expect(stats).toMatchObject({ completed: N, dead: 0, ready: 0, scheduled: 0, leased: 0 });
    // Only the real failures were charged: no lease looked expired after the step.
    expect(stats.totals.failed).toBe(flaky);
    expect(sums.reduce((a, x) => a + x.lease_lost, 0)).toBe(0);
    expect(effects.size).toBe(N);
    expect(twice).toBe(0);
    // Each task started once, a flaky one twice (its failure, then its retry): nothing more.
    expect(extraStarts).toEqual([]);
  }, 300_000);

  it('a retry scheduled while the wall clock is 2 h ahead is due after its backoff once the clock is back, not 2 h later', async () => {
    const ws = tempWorkspace({ demo: false });
    const env = { METASPN_QUEUE_BACKOFF_BASE_MS: '2000', METASPN_QUEUE_BACKOFF_CAP_MS: '2000', METASPN_QUEUE_BACKOFF_JITTER: '0' };
    expect((await runIn(['queue', 'enqueue', QUEUE, '--workspace', ws, '--id', 'f1', '--payload', '{"flaky":true}'])).code).toBe(0);
    const rc = join(ws, 'faketime.rc');
    writeFileSync(rc, `+${H2_S}\n`);
    const ahead = cli(['worker', 'run', WORKER, '--workspace', ws, '--once', '--max-tasks', '1', '--json'], { env: { ...env, ...faked(rc) } });
    expect(ahead.code, ahead.stderr).toBe(11);
    expect(JSON.parse(ahead.stdout)).toMatchObject({ claimed: 1, retry_scheduled: 1 });

    // The clock is back (this process and the CLI below read the real one).
    const stats = await runIn(['queue', 'stats', QUEUE, '--workspace', ws, '--json']);
    const due = Date.parse((JSON.parse(stats.stdout) as { next_due_at: string; scheduled: number }).next_due_at);
    expect(due - Date.now()).toBeLessThan(2500);
    expect((await runIn(['queue', 'stats', QUEUE, '--workspace', ws])).stdout).toMatch(/scheduled +1 +next retry \S+ \((due now|in [0-9]s)\)/);
    await waitFor(() => Date.now() > due, 10_000, 'the retry to be due');
    const back = await runIn(['worker', 'run', WORKER, '--workspace', ws, '--once', '--json'], { env });
    expect(back.code, back.stderr).toBe(0);
    expect(JSON.parse(back.stdout)).toMatchObject({ claimed: 1, completed: 1 });
    expect(lines(ws, 'executions.log').map((l) => `${l[1]}#${l[2]}`)).toEqual(['f1#1', 'f1#2']);
  }, 120_000);
});
