import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { HandlerHost } from '../../src/runtime/isolation/host.js';
import { runWorker } from '../../src/runtime/runner.js';
import { ContractError, type WorkerDefinition } from '../../src/runtime/worker-api.js';
import { FakeClock } from '../queue/conformance.js';
import { waitFor } from '../wait.js';
import { setup } from './runner-setup.js';

const tasks = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `t${i}`, payload: { i } }));

describe('worker runner', () => {
  it('drains every ready task and reports what it did', async () => {
    const seen: number[] = [];
    const w: WorkerDefinition<{ i: number }> = { name: 'q', handle: (t) => void seen.push(t.payload.i) };
    const { queue, deps } = setup(w as WorkerDefinition);
    await queue.enqueue(tasks(20));
    const sum = await runWorker(deps);
    expect(sum).toMatchObject({ claimed: 20, completed: 20, retry_scheduled: 0, dead: 0 });
    expect(seen).toEqual([...Array(20).keys()]);
    expect((await queue.stats()).completed).toBe(20);
  });

  it('retries a task that fails twice with exponential backoff, then completes it', async () => {
    const attempts: number[] = [];
    const { queue, deps, clock } = setup({
      name: 'q',
      handle: (_t, ctx) => {
        attempts.push(clock.t);
        if (ctx.attempt < 3) throw new Error(`flaky ${ctx.attempt}`);
      },
    });
    await queue.enqueue(tasks(1));
    const sum = await runWorker(deps);
    expect(sum).toMatchObject({ completed: 1, retry_scheduled: 2 });
    // random 0.5 means no jitter: 1000 ms after the first failure, 2000 after the second.
    expect(attempts.map((t) => t - attempts[0]!)).toEqual([0, 1000, 3000]);
  });

  it('dead-letters a task once its attempts run out, with every error kept', async () => {
    const { queue, deps } = setup({
      name: 'q',
      handle: () => {
        throw new TypeError('always');
      },
    });
    await queue.enqueue(tasks(1));
    const sum = await runWorker(deps);
    expect(sum).toMatchObject({ completed: 0, retry_scheduled: 2, dead: 1 });
    const [dead] = await queue.listDead();
    expect(dead!.errors.map((e) => [e.attempt, e.class, e.kind])).toEqual([
      [1, 'TypeError', 'transient'],
      [2, 'TypeError', 'transient'],
      [3, 'TypeError', 'transient'],
    ]);
    expect(dead!.errors[0]!.stack?.[0]).toMatch(/^at /);
  });

  it('sends a contract error to the dead letters at once', async () => {
    const { queue, deps } = setup({
      name: 'q',
      handle: () => {
        throw new ContractError('missing column score');
      },
    });
    await queue.enqueue(tasks(1));
    expect(await runWorker(deps)).toMatchObject({ dead_contract: 1, retry_scheduled: 0 });
    expect((await queue.getDead('t0'))?.reason).toMatchObject({ kind: 'contract', attempt: 1, message: 'missing column score' });
  });

  it('a payload failing the schema is a contract error and the handler never runs', async () => {
    let ran = false;
    const w: WorkerDefinition = { name: 'q', payload: z.object({ date: z.string() }), handle: () => void (ran = true) };
    const { queue, deps } = setup(w);
    await queue.enqueue([{ id: 'bad', payload: { date: 7 } }]);
    expect(await runWorker(deps)).toMatchObject({ dead_contract: 1 });
    expect(ran).toBe(false);
    expect((await queue.getDead('bad'))?.reason?.message).toMatch(/^payload invalid: date: /);
  });

  it('a task past its timeout is aborted and scheduled for another try', async () => {
    let sawAbort = false;
    const { queue, deps, clock } = setup(
      {
        name: 'q',
        handle: (_t, ctx) => {
          // The task runs past its timeout (the watchdog reads the injected clock).
          clock.advance(31);
          return new Promise<void>((r) =>
            ctx.signal.addEventListener('abort', () => {
              sawAbort = true;
              r();
            }),
          );
        },
      },
      { timeout_ms: 30, max_attempts: 1 },
    );
    await queue.enqueue(tasks(1));
    expect(await runWorker(deps)).toMatchObject({ dead: 1 });
    expect(sawAbort).toBe(true);
    expect((await queue.getDead('t0'))?.reason).toMatchObject({ kind: 'timeout', class: 'TaskTimeoutError' });
  });

  it('never runs more than `concurrency` tasks at once', async () => {
    let now = 0;
    let peak = 0;
    const { queue, deps } = setup(
      {
        name: 'q',
        handle: async () => {
          peak = Math.max(peak, ++now);
          await new Promise((r) => setTimeout(r, 2));
          now--;
        },
      },
      { concurrency: 4 },
    );
    await queue.enqueue(tasks(40));
    expect(await runWorker(deps)).toMatchObject({ completed: 40 });
    expect(peak).toBe(4);
  });

  it('--max-tasks bounds the claims', async () => {
    const { queue, deps } = setup({ name: 'q', handle: () => undefined }, {}, { maxTasks: 1 });
    await queue.enqueue(tasks(5));
    expect(await runWorker(deps)).toMatchObject({ claimed: 1, completed: 1 });
    expect((await queue.stats()).ready).toBe(4);
  });

  it('a graceful stop finishes running tasks and gives buffered ones back', async () => {
    const stop = new AbortController();
    let started = 0;
    const { queue, deps } = setup(
      {
        name: 'q',
        handle: async () => {
          if (++started === 1) stop.abort();
          await new Promise((r) => setTimeout(r, 5));
        },
      },
      { concurrency: 1 },
      { stop: stop.signal, once: false },
    );
    await queue.enqueue(tasks(10));
    const sum = await runWorker(deps);
    expect(sum.completed).toBe(1);
    expect(sum.released).toBe(sum.claimed - 1);
    const s = await queue.stats();
    expect([s.completed, s.ready, s.leased]).toEqual([1, 9, 0]);
  });

  it('a forced stop abandons a hung task to its lease', async () => {
    const stop = new AbortController();
    const force = new AbortController();
    const { queue, deps } = setup(
      {
        name: 'q',
        handle: () => {
          stop.abort();
          setTimeout(() => force.abort(), 5);
          return new Promise(() => undefined);
        },
      },
      {},
      { stop: stop.signal, force: force.signal, once: false },
    );
    await queue.enqueue(tasks(1));
    expect(await runWorker(deps)).toMatchObject({ forced: true, completed: 0 });
    expect((await queue.stats()).leased).toBe(1);
  });
});

describe('worker runner: handlers that misbehave', () => {
  it('in process, a timed-out handler that ignores its signal keeps its slot until it returns; its retry waits for it', async () => {
    const events: string[] = [];
    const { queue, deps, clock } = setup(
      {
        name: 'q',
        handle: async (t, ctx) => {
          events.push(`start ${t.id}#${ctx.attempt}`);
          if (t.id === 't0' && ctx.attempt === 1) {
            clock.advance(31);
            // Told to stop, it goes on for a while all the same.
            await new Promise<void>((r) => ctx.signal.addEventListener('abort', () => (events.push('aborted'), setTimeout(r, 30))));
          }
          events.push(`end ${t.id}#${ctx.attempt}`);
        },
      },
      { timeout_ms: 30, max_attempts: 2, concurrency: 1 },
    );
    await queue.enqueue(tasks(2));
    expect(await runWorker(deps)).toMatchObject({ completed: 2, retry_scheduled: 1 });
    expect(events).toEqual(['start t0#1', 'aborted', 'end t0#1', 'start t1#1', 'end t1#1', 'start t0#2', 'end t0#2']);
  });

  it('runs handlers through the injected host; a timeout asks it to stop, and the slot is held until it has', async () => {
    const calls: string[] = [];
    const ref: { clock?: FakeClock } = {};
    const host: HandlerHost = {
      isolation: 'thread',
      run: (a) =>
        new Promise<void>((_resolve, reject) => {
          calls.push(`run ${a.task.id}#${a.ctx.attempt}`);
          a.started();
          ref.clock!.advance(31);
          a.onStop((reason, now) => {
            calls.push(`stop ${a.task.id} ${reason.name} now=${now}`);
            // The isolate takes a moment to die; the attempt settles only then.
            setTimeout(() => (calls.push(`gone ${a.task.id}`), reject(new Error('isolate killed'))), 20);
          });
        }),
      close: async () => undefined,
    };
    const w: WorkerDefinition = {
      name: 'q',
      handle: () => {
        throw new Error('never called in process');
      },
    };
    const { queue, deps, clock } = setup(w, { timeout_ms: 30, max_attempts: 1, concurrency: 1 }, { host });
    ref.clock = clock;
    await queue.enqueue(tasks(2));
    expect(await runWorker(deps)).toMatchObject({ dead: 2 });
    expect(calls).toEqual(['run t0#1', 'stop t0 TaskTimeoutError now=false', 'gone t0', 'run t1#1', 'stop t1 TaskTimeoutError now=false', 'gone t1']);
    expect((await queue.getDead('t0'))?.reason).toMatchObject({ kind: 'timeout', class: 'TaskTimeoutError' });
  });

  it('whatever a handler throws is recorded with a readable description, and the runner carries on', async () => {
    const trap = (): never => {
      throw new Error('trap');
    };
    const circular: Record<string, unknown> = { name: 'loop' };
    circular.self = circular;
    class Unreadable extends Error {
      override get message(): string {
        throw new Error('getter');
      }
    }
    const values: [unknown, string, string][] = [
      [null, 'NonError', 'threw null'],
      [undefined, 'NonError', 'threw undefined'],
      ['boom', 'NonError', 'threw a string: "boom"'],
      [42, 'NonError', 'threw a number: 42'],
      [Object.create(null), 'NonError', 'threw an object: [Object: null prototype] {}'],
      [new Unreadable(), 'Error', '(no readable message)'],
      [new Proxy({}, { get: trap, getPrototypeOf: trap, has: trap, ownKeys: trap, getOwnPropertyDescriptor: trap }), 'NonError', 'threw a Proxy: {}'],
      [circular, 'NonError', "threw an object: <ref *1> { name: 'loop', self: [Circular *1] }"],
      [Object.assign(new ContractError('bad row'), {}), 'ContractError', 'bad row'],
    ];
    const { queue, deps } = setup(
      {
        name: 'q',
        handle: (t) => {
          throw values[(t.payload as { i: number }).i]![0];
        },
      },
      { max_attempts: 1 },
    );
    await queue.enqueue(tasks(values.length));
    expect(await runWorker(deps)).toMatchObject({ dead: values.length - 1, dead_contract: 1 });
    const dead = await queue.listDead();
    expect(Object.fromEntries(dead.map((d) => [d.task.id, [d.reason?.class, d.reason?.message]]))).toEqual(Object.fromEntries(values.map(([, cls, msg], i) => [`t${i}`, [cls, msg]])));
  });

  it('a permission error stops the worker with the path named; the task goes back with no attempt spent', async () => {
    let calls = 0;
    const { queue, deps } = setup({
      name: 'q',
      handle: () => {
        calls++;
        throw Object.assign(new Error("EACCES: permission denied, open '/srv/out.json'"), { code: 'EACCES', syscall: 'open', path: '/srv/out.json' });
      },
    });
    await queue.enqueue(tasks(3));
    await expect(runWorker(deps)).rejects.toThrow('permission denied: /srv/out.json (EACCES, open) in task t0 of q');
    expect(calls).toBe(1);
    expect(await queue.stats()).toMatchObject({ ready: 3, leased: 0, scheduled: 0, dead: 0 });
    const again = await queue.claim({ owner: { id: 'w2', pid: 2, host: 'h' }, max: 3, lease_ms: 1000 });
    expect(again.find((c) => c.task.id === 't0')?.task).toMatchObject({ attempt_count: 0, errors: [] });
  });

  it('tasks claimed ahead keep their leases while they wait for a slot', async () => {
    const renewed: string[] = [];
    const { queue, deps, clock } = setup(
      {
        name: 'q',
        handle: async (t) => {
          if (t.id !== 't0') return;
          clock.advance(250);
          // The watchdog renews t1 (claimed with t0, still waiting) before its lease runs out.
          await waitFor(() => renewed.includes('t1'), 5_000, 'the watchdog to renew t1', 5);
          clock.advance(250);
        },
      },
      { lease_ms: 300, concurrency: 1 },
    );
    const renew = queue.renewLease.bind(queue);
    queue.renewLease = (id, lease, ms) => (renewed.push(id), renew(id, lease, ms));
    await queue.enqueue(tasks(2));
    expect(await runWorker({ ...deps, prefetch: 2 })).toMatchObject({ completed: 2, lease_lost: 0 });
    expect(await queue.stats()).toMatchObject({ completed: 2, leased: 0, ready: 0 });
  });

  it('a lease renewal that fails (the queue unreachable for a moment) reaches the log, and the task still completes', async () => {
    const warned: { event?: string; task_id?: string }[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void warned.push(JSON.parse(line) as { event?: string; task_id?: string }) });
    let failures = 0;
    const { queue, deps, clock } = setup(
      {
        name: 'q',
        handle: async () => {
          clock.advance(150);
          // Wait for the watchdog to try (and fail) a renewal.
          while (failures === 0) await new Promise((r) => setImmediate(r));
        },
      },
      { lease_ms: 300, concurrency: 1 },
    );
    queue.renewLease = async () => {
      failures++;
      throw new Error('connection reset');
    };
    await queue.enqueue(tasks(1));
    expect(await runWorker({ ...deps, init: { ...deps.init, logger } })).toMatchObject({ completed: 1 });
    expect(warned.find((w) => w.event === 'lease_renewal_failed')).toMatchObject({ task_id: 't0', error: 'connection reset' });
  });

  it('a lease lost while the handler runs stops the attempt; nothing is recorded for it', async () => {
    let why = '';
    const { queue, deps, clock } = setup(
      {
        name: 'q',
        handle: async (_t, ctx) => {
          clock.advance(51);
          await new Promise<void>((r) => ctx.signal.addEventListener('abort', () => ((why = (ctx.signal.reason as Error).name), r())));
        },
      },
      { lease_ms: 150, concurrency: 1 },
    );
    // Another worker took the task over: renewals are refused.
    queue.renewLease = async () => false;
    await queue.enqueue(tasks(1));
    expect(await runWorker({ ...deps, prefetch: 1 })).toMatchObject({ lease_lost: 1, completed: 0, retry_scheduled: 0 });
    expect(why).toBe('LeaseLostError');
  });
});

describe('stop condition', () => {
  it('halts within the window even while acknowledgements lag behind the handlers', async () => {
    const { failureRatioGuard } = await import('../../src/runtime/stop-condition.js');
    let ran = 0;
    const { queue, deps } = setup(
      {
        name: 'q',
        handle: () => {
          ran++;
          throw new Error('dependency down');
        },
      },
      { max_attempts: 5, concurrency: 1 },
    );
    const fail = queue.fail.bind(queue);
    // Each failure takes a while to be committed; the handlers do not.
    queue.fail = async (...a) => (await new Promise((r) => setTimeout(r, 20)), fail(...a));
    await queue.enqueue(tasks(200));
    const sum = await runWorker({ ...deps, haltWhen: failureRatioGuard({ stop_failure_ratio: 1, stop_window: 5 }) });
    expect(sum.halted).toMatch(/^5 of the last 5 tasks failed/);
    expect(ran).toBe(5);
    expect(sum.retry_scheduled).toBe(5);
    expect((await queue.stats()).leased).toBe(0);
  });

  it('halts claiming once the failure ratio over the window is reached', async () => {
    const { failureRatioGuard } = await import('../../src/runtime/stop-condition.js');
    const { queue, deps } = setup(
      {
        name: 'q',
        handle: () => {
          throw new Error('dependency down');
        },
      },
      { max_attempts: 5, concurrency: 1 },
      { haltWhen: failureRatioGuard({ stop_failure_ratio: 1, stop_window: 5 }) },
    );
    await queue.enqueue(tasks(50));
    const sum = await runWorker(deps);
    expect(sum.halted).toMatch(/^5 of the last 5 tasks failed/);
    // No retry storm: it stopped after the window, buffered tasks went back.
    expect(sum.retry_scheduled).toBeLessThanOrEqual(6);
    expect((await queue.stats()).leased).toBe(0);
  });

  it('never halts a healthy worker, nor with the ratio at 0', async () => {
    const { failureRatioGuard } = await import('../../src/runtime/stop-condition.js');
    const guard = failureRatioGuard({ stop_failure_ratio: 0, stop_window: 1 });
    expect(guard({ id: 'a', kind: 'dead', attempt: 1, duration_ms: 0 })).toBeNull();
    const g2 = failureRatioGuard({ stop_failure_ratio: 0.5, stop_window: 4 });
    const kinds = ['completed', 'retry_scheduled', 'completed', 'completed', 'dead'] as const;
    expect(kinds.map((k) => g2({ id: 'a', kind: k, attempt: 1, duration_ms: 0 }))).toEqual([null, null, null, null, expect.stringMatching(/^2 of the last 4/)]);
  });
});
