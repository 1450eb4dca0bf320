// Handlers that throw what is not an Error, end their own isolate or hit permission errors; the
// stop condition; how the isolation is chosen. `worker run` driven as a real subprocess
// (test/integration/misbehaving.ts has the helpers).
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { exit, start, tempWorkspace, waitFor } from './cli.js';
import { activity, deadLetters, enqueue, errorHistory, type Mode, NO_STACK, spans, spec, stats, worker } from './misbehaving.js';

describe.each(['none', 'thread', 'process'] as const)('a handler that throws what is not an Error (isolation %s)', (mode: Mode) => {
  it('each attempt fails with a readable description; the worker and the healthy tasks beside it are unharmed', async () => {
    const ws = tempWorkspace({ demo: false });
    const expected: Record<string, [string, string]> = {
      null: ['NonError', 'threw null'],
      undefined: ['NonError', 'threw undefined'],
      string: ['NonError', 'threw a string: "boom"'],
      number: ['NonError', 'threw a number: 42'],
      nullproto: ['NonError', 'threw an object: [Object: null prototype] { a: 1 }'],
      getters: ['Error', '(no readable message)'],
      proxy: ['NonError', 'threw a Proxy: {}'],
      circular: ['NonError', "threw an object: <ref *1> { name: 'loop', self: [Circular *1] }"],
    };
    const bad = Object.keys(expected).map((what) => ({ id: `bad-${what}`, payload: { what }, max_attempts: 1 }));
    const good = ['ok-1', 'ok-2'].map((id) => ({ id, payload: { what: 'ok', ms: 300 } }));
    await enqueue(ws, 'throws', [...good, ...bad]);
    const r = await worker(ws, 'Throws', ['--once', '--concurrency', '4', '--isolation', mode], { METASPN_QUEUE_STOP_FAILURE_RATIO: '0' });
    expect(r.code, r.stderr).toBe(50);
    expect(r.stdout).toMatch(/claimed 10, completed 2, dead-lettered 8 \(contract 0\)/);
    expect(r.stderr).not.toMatch(NO_STACK);
    const dls = await deadLetters(ws, 'throws');
    const got = Object.fromEntries(dls.map((d) => [d.task.id.slice(4), [d.reason.class, d.reason.message]]));
    expect(got).toEqual(expected);
    expect(await stats(ws, 'throws')).toMatchObject({ completed: 2, dead: 8, leased: 0 });
  });
});

describe.each(['thread', 'process'] as const)('a handler that ends its own isolate (isolation %s)', (mode) => {
  it('fails only its own attempt: the worker replaces the isolate, retries the task and completes it beside a healthy one', async () => {
    const ws = tempWorkspace({ demo: false });
    const how = mode === 'process' ? ['exit', 'throw', 'kill'] : ['exit', 'throw'];
    await enqueue(ws, 'crashes', [...how.map((h) => ({ id: `c-${h}`, payload: { how: h } })), { id: 'healthy', payload: { how: 'none', ms: 500 } }]);
    const w = start(['worker', 'run', spec('Crashes'), '--workspace', ws, '--poll-ms', '50', '--concurrency', '2', '--isolation', mode, '--json'], { cwd: ws });
    const ended = (): number => activity(ws).filter((a) => a.event === 'end').length;
    await waitFor(() => ended() === how.length + 1, 60_000, 'every task to end');
    w.child.kill('SIGTERM');
    const r = await exit(w, 60_000);
    expect(r.signal).toBeNull();
    expect(JSON.parse(r.stdout)).toMatchObject({ completed: how.length + 1, retry_scheduled: how.length, dead: 0 });
    expect(await stats(ws, 'crashes')).toMatchObject({ completed: how.length + 1, leased: 0, dead: 0 });
    const messages: Record<string, RegExp> = {
      exit: /isolate \((thread \d+|pid \d+)\) exited with code 3/,
      throw: /isolate \((thread \d+|pid \d+)\) exited with code 1 after TypeError: thrown from a timer/,
      kill: /isolate \(pid \d+\) killed by SIGKILL/,
    };
    for (const h of how) {
      const [first, ...rest] = errorHistory(ws, 'crashes', `c-${h}`);
      expect(rest).toEqual([]);
      expect(first).toMatchObject({ attempt: 1, kind: 'transient', class: 'IsolateExitError' });
      expect(first!.message).toMatch(messages[h]!);
    }
    expect(errorHistory(ws, 'crashes', 'healthy')).toEqual([]);
  });
});

describe.each([
  ['none', 'EROFS'],
  ['thread', 'EACCES'],
  ['process', 'EPERM'],
] as const)('a permission error (isolation %s, %s)', (mode, code) => {
  it('stops the worker with one message naming the path; no attempt is spent, nothing is dead-lettered', async () => {
    const ws = tempWorkspace({ demo: false });
    await enqueue(
      ws,
      'denied',
      ['d0', 'd1', 'd2'].map((id) => ({ id, payload: { code } })),
    );
    const r = await worker(ws, 'Denied', ['--once', '--isolation', mode]);
    expect(r.code, r.stderr).toBe(50);
    const path = join(ws, 'out', 'd0.json');
    expect(r.stderr).toBe(
      `error: permission denied: ${path} (${code}, open) in task d0 of denied\nhint: fix the owner or mode of ${path} (or the read-only mount), then re-run; the task was given back with no attempt spent\n`,
    );
    expect(spans(ws).map((s) => s.attempt)).toEqual(['d0#1']);
    expect(await stats(ws, 'denied')).toMatchObject({ ready: 3, scheduled: 0, leased: 0, dead: 0 });
    expect(errorHistory(ws, 'denied', 'd0')).toEqual([]);
  });
});

describe('worker stop condition', () => {
  it('stops within its window: 20 failures of 300 failing tasks, queue paused, exit 60', async () => {
    const ws = tempWorkspace({ demo: false });
    await enqueue(
      ws,
      'always_fails',
      Array.from({ length: 300 }, (_, i) => ({ id: `f${i}`, payload: { i } })),
    );
    const r = await worker(ws, 'AlwaysFails', ['--once', '--concurrency', '4', '--json']);
    expect(r.code, r.stderr).toBe(60);
    const sum = JSON.parse(r.stdout) as { claimed: number; retry_scheduled: number; released: number; halted: string };
    expect(sum.halted).toMatch(/^20 of the last 20 tasks failed/);
    const ran = spans(ws).length;
    // The window, plus what was running when it tripped (concurrency 4).
    expect(ran).toBeGreaterThanOrEqual(20);
    expect(ran).toBeLessThanOrEqual(23);
    expect(sum.retry_scheduled).toBe(ran);
    // Nothing claimed ahead stays leased: what did not run went back.
    expect(sum.claimed).toBe(ran + sum.released);
    const st = await stats(ws, 'always_fails');
    expect(st).toMatchObject({ paused: true, leased: 0, completed: 0, dead: 0 });
    expect(st.ready + st.scheduled).toBe(300);
  });
});

describe('choosing the isolation', () => {
  it('the default is a thread; config queues.<worker>.isolation and then --isolation win; a bad value is refused', async () => {
    const ws = tempWorkspace({ demo: false, config: { queues: { throws: { isolation: 'process' } } } });
    await enqueue(
      ws,
      'throws',
      ['a', 'b', 'c'].map((id) => ({ id, payload: { what: 'ok' } })),
    );
    const byConfig = start(['worker', 'run', spec('Throws'), '--workspace', ws, '--once', '--max-tasks', '1'], { cwd: ws });
    expect((await exit(byConfig, 60_000)).code).toBe(0);
    const byFlag = start(['worker', 'run', spec('Throws'), '--workspace', ws, '--once', '--max-tasks', '1', '--isolation', 'none'], { cwd: ws });
    expect((await exit(byFlag, 60_000)).code).toBe(0);
    writeFileSync(join(ws, 'metaspn.config.json'), '{}');
    const byDefault = start(['worker', 'run', spec('Throws'), '--workspace', ws, '--once', '--max-tasks', '1'], { cwd: ws });
    expect((await exit(byDefault, 60_000)).code).toBe(0);
    const [p, n, t] = activity(ws).filter((a) => a.event === 'start');
    // A child process of the worker; the worker's own main thread; a worker thread of the worker.
    expect([p!.pid !== byConfig.child.pid, p!.thread]).toEqual([true, 0]);
    expect([n!.pid, n!.thread]).toEqual([byFlag.child.pid, 0]);
    expect(t!.pid).toBe(byDefault.child.pid);
    expect(t!.thread).toBeGreaterThan(0);

    const flag = await worker(ws, 'Throws', ['--once', '--isolation', 'fork']);
    expect(flag.code).toBe(64);
    expect(flag.stderr).toMatch(/--isolation.*fork.*none, thread, process/);
    writeFileSync(join(ws, 'metaspn.config.json'), JSON.stringify({ queues: { throws: { isolation: 'fork' } } }));
    const config = await worker(ws, 'Throws', ['--once']);
    expect(config.code).toBe(20);
    expect(config.stderr).toMatch(/isolation/);
    expect(config.stderr).not.toMatch(NO_STACK);
  });
});
