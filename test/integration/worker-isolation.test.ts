// Handlers that block the event loop or ignore their signal past their timeout cannot break the
// worker's guarantees, in each isolation mode where the guarantee applies: `worker run` driven as a
// real subprocess (test/integration/misbehaving.ts has the helpers).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exit, start, tempWorkspace, waitFor } from './cli.js';
import { deadLetters, enqueue, expectNoHandlerProcessLeft, expectOneAtATime, type Mode, spans, spec, stats, worker } from './misbehaving.js';

describe.each(['thread', 'process'] as const)('a handler that blocks the event loop (isolation %s)', (mode) => {
  it('is stopped by its timeout: the attempt fails as a timeout, the step never finishes, no handler outlives the worker', async () => {
    const ws = tempWorkspace({ demo: false });
    await enqueue(ws, 'busy', [{ id: 'cpu-a', payload: { ms: 4000 }, max_attempts: 1 }]);
    const w = start(['worker', 'run', spec('Busy'), '--workspace', ws, '--once', '--isolation', mode], { cwd: ws, env: { METASPN_QUEUE_TIMEOUT_MS: '300' } });
    const r = await exit(w, 60_000);
    expect(r.code, r.stderr).toBe(50);
    expect(r.stdout).toMatch(/claimed 1, completed 0, dead-lettered 1 \(contract 0\)/);
    const [dl] = await deadLetters(ws, 'busy');
    expect(dl!.reason).toMatchObject({ attempt: 1, kind: 'timeout', class: 'TaskTimeoutError' });
    const [only, ...more] = spans(ws);
    expect(more).toEqual([]);
    // Killed mid-loop: the 4 s of work never finished.
    expect(only!.ended).toBe(false);
    expect(only!.to - only!.from).toBeLessThan(4000);
    expectNoHandlerProcessLeft(ws, w.child.pid);
  });

  it('keeps its lease: a 2.5 s step with a 1 s lease runs once and completes (exit 0)', async () => {
    const ws = tempWorkspace({ demo: false });
    await enqueue(ws, 'busy', [{ id: 'cpu-b', payload: { ms: 2500 } }]);
    const r = await worker(ws, 'Busy', ['--once', '--isolation', mode], { METASPN_QUEUE_LEASE_MS: '1000' });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^worker busy: claimed 1, completed 1 in /);
    const s = spans(ws);
    expect(s.map((x) => [x.attempt, x.ended])).toEqual([['cpu-b#1', true]]);
    expect(await stats(ws, 'busy')).toMatchObject({ completed: 1, dead: 0, leased: 0 });
  });
});

describe.each(['none', 'thread', 'process'] as const)('a handler that ignores its signal past its timeout (isolation %s)', (mode: Mode) => {
  it('concurrency 1: one handler at a time, and --once exits only when none runs', async () => {
    const ws = tempWorkspace({ demo: false });
    await enqueue(
      ws,
      'overstay',
      ['o1', 'o2', 'o3'].map((id) => ({ id, payload: { ms: 800 }, max_attempts: 1 })),
    );
    const w = start(['worker', 'run', spec('Overstay'), '--workspace', ws, '--once', '--concurrency', '1', '--isolation', mode], { cwd: ws, env: { METASPN_QUEUE_STOP_FAILURE_RATIO: '0' } });
    const r = await exit(w, 60_000);
    // Read at the exit: nothing a handler writes later can be counted.
    const s = spans(ws);
    expect(r.code, r.stderr).toBe(50);
    expect(r.stdout).toMatch(/claimed 3, completed 0, dead-lettered 3 \(contract 0\)/);
    expect(s.map((x) => x.attempt)).toEqual(['o1#1', 'o2#1', 'o3#1']);
    expectOneAtATime(ws);
    // In process a timed-out handler runs to its end before its slot is free; an isolate is killed.
    expect(s.every((x) => x.ended)).toBe(mode === 'none');
    expectNoHandlerProcessLeft(ws, w.child.pid);
    for (const dl of await deadLetters(ws, 'overstay')) expect(dl.reason).toMatchObject({ kind: 'timeout', message: 'task timed out after 200 ms' });
  });

  it('a retry never starts while an earlier attempt of the task still runs', async () => {
    const ws = tempWorkspace({ demo: false });
    await enqueue(ws, 'overstay', [{ id: 'sync-42', payload: { ms: 800 }, max_attempts: 3 }]);
    const w = start(['worker', 'run', spec('Overstay'), '--workspace', ws, '--poll-ms', '50', '--isolation', mode, '--json'], { cwd: ws, env: { METASPN_QUEUE_STOP_FAILURE_RATIO: '0' } });
    await waitFor(() => existsSync(join(ws, 'deadletter', 'overstay', 'sync-42.json')), 60_000, 'the third timeout to dead-letter the task');
    w.child.kill('SIGTERM');
    const r = await exit(w, 60_000);
    expect(r.code, r.stderr).toBe(50);
    expect(JSON.parse(r.stdout)).toMatchObject({ claimed: 3, retry_scheduled: 2, dead: 1, forced: false });
    expect(spans(ws).map((x) => x.attempt)).toEqual(['sync-42#1', 'sync-42#2', 'sync-42#3']);
    expectOneAtATime(ws);
    expectNoHandlerProcessLeft(ws, w.child.pid);
    const [dl] = await deadLetters(ws, 'overstay');
    expect(dl!.errors.map((e) => `${e.attempt} ${e.kind}`)).toEqual(['1 timeout', '2 timeout', '3 timeout']);
  });
});
