// Start marks ahead of their turn (RunnerDeps.startAhead, PostgreSQL's start_ahead): marks go in
// batches, a handler runs only once its own mark is written, at most `ahead` buffered tasks beyond
// the free slots are marked, and marks the claim wrote itself (ClaimedTask.started) are not written again.
import { describe, expect, it } from 'vitest';
import type { ClaimOptions, TaskRecord } from '../../src/queue/types.js';
import { runWorker, type RunnerDeps, type RunSummary } from '../../src/runtime/runner.js';
import type { WorkerDefinition } from '../../src/runtime/worker-api.js';
import { failureRatioGuard } from '../../src/runtime/stop-condition.js';
import { setup } from './runner-setup.js';

const CONCURRENCY = 2;

/** A memory queue whose start marks are recorded, and a runner draining `n` tasks from it. */
function harness(n: number, extra: Partial<RunnerDeps>, claimMarks = false) {
  const marked: string[] = [];
  /** Marks written, by the runner or the claim, when each handler started. */
  const markedAtRun: number[] = [];
  const ran: string[] = [];
  const written = new Set<string>();
  const worker: WorkerDefinition = {
    name: 'q',
    handle: async (t) => {
      // Its own mark is written before its handler runs.
      expect(written.has(t.id)).toBe(true);
      ran.push(t.id);
      markedAtRun.push(written.size);
      await new Promise((r) => setImmediate(r));
    },
  };
  const { queue, deps, stop } = setup(worker, { concurrency: CONCURRENCY }, extra);
  const start = queue.start.bind(queue);
  queue.start = async (id, lease) => {
    marked.push(id);
    const ok = await start(id, lease);
    if (ok) written.add(id);
    return ok;
  };
  if (claimMarks) {
    // As PostgreSQL does: the claim marks its first `start_first` tasks in its own transaction.
    const claim = queue.claim.bind(queue);
    queue.claim = async (o: ClaimOptions) => {
      const got = await claim(o);
      for (const c of got.slice(0, o.start_first ?? 0)) {
        await start(c.task.id, c.lease);
        written.add(c.task.id);
        c.started = true;
      }
      return got;
    };
  }
  const enqueue = () => queue.enqueue(Array.from({ length: n }, (_, i) => ({ id: `t${String(i).padStart(3, '0')}`, payload: null })));
  /** Drains with `after` called once each handler has run (it may throw: the attempt fails). */
  const drainWith = (after: (t: TaskRecord) => void): Promise<RunSummary> =>
    runWorker({
      ...deps,
      worker: {
        ...worker,
        handle: async (t, ctx) => {
          await worker.handle(t, ctx);
          after(t);
        },
      },
    });
  return { queue, deps, stop, marked, markedAtRun, ran, written, enqueue, drainWith };
}

describe('worker runner: start marks ahead of their turn', () => {
  it('marks buffered tasks in batches, never more than `ahead` beyond the slots, each before its handler runs', async () => {
    const s = harness(100, { prefetch: 100, startAhead: 10 });
    await s.enqueue();
    expect(await runWorker(s.deps)).toMatchObject({ claimed: 100, completed: 100, lease_lost: 0 });
    expect(new Set(s.marked).size).toBe(100);
    // Marked ahead: when a handler started, up to `ahead` + the slots were marked and not yet run.
    s.markedAtRun.forEach((m, i) => expect(m - i).toBeLessThanOrEqual(10 + CONCURRENCY));
    expect(Math.max(...s.markedAtRun.map((m, i) => m - i))).toBeGreaterThan(CONCURRENCY);
    // Every task ran once, in claim order.
    expect(s.ran).toEqual([...s.ran].sort());
  });

  it('without marks ahead (files), a task is marked only as its handler is about to run', async () => {
    const s = harness(30, { prefetch: 30 });
    await s.enqueue();
    expect(await runWorker(s.deps)).toMatchObject({ completed: 30 });
    s.markedAtRun.forEach((m, i) => expect(m - i).toBeLessThanOrEqual(CONCURRENCY));
  });

  it('marks the claim wrote itself are not written again', async () => {
    const s = harness(40, { prefetch: 40, startAhead: 8 }, true);
    await s.enqueue();
    expect(await runWorker(s.deps)).toMatchObject({ completed: 40 });
    // The first claim marked the slots' worth plus `ahead` (10); the runner marked the rest.
    expect(s.marked).not.toContain('t000');
    expect(s.marked).not.toContain('t009');
    expect(s.marked).toContain('t010');
    expect(s.written.size).toBe(40);
    s.markedAtRun.forEach((m, i) => expect(m - i).toBeLessThanOrEqual(8 + CONCURRENCY));
  });

  it('the failures of tasks marked ahead count once recorded: a database gone meanwhile costs lost leases, not a paused queue', async () => {
    const s = harness(40, { prefetch: 40, startAhead: 20, haltWhen: failureRatioGuard({ stop_failure_ratio: 1, stop_window: 3 }) });
    await s.enqueue();
    let down = false;
    // From t005 on the database is gone: handlers fail (their own writes refused), and no failure is recorded.
    const fail = s.queue.fail.bind(s.queue);
    s.queue.fail = async (...a) => (down ? 'lease_lost' : fail(...a));
    const start = s.queue.start.bind(s.queue);
    s.queue.start = async (id, lease) => (down ? false : start(id, lease));
    const sum = await s.drainWith((t) => {
      if (t.id >= 't005') down = true;
      if (down) throw new Error('connection refused');
    });
    // The tasks marked ahead ran and failed; none of those failures was recorded, so none counted.
    expect(sum.halted).toBeUndefined();
    expect(s.ran.length).toBeGreaterThan(5 + 3);
    expect(sum.retry_scheduled).toBe(0);
    expect(sum.completed).toBe(5);
    expect(sum.lease_lost).toBe(sum.claimed - 5);
  });

  it('the failures of tasks marked ahead before a server restart pause nothing, even when the restarted server records them', async () => {
    const s = harness(40, { prefetch: 40, startAhead: 20, haltWhen: failureRatioGuard({ stop_failure_ratio: 1, stop_window: 3 }) });
    await s.enqueue();
    // The queue counts the connections it lost (PgQueue.outages): the restart after t004 is one.
    let outages = 0;
    Object.assign(s.queue, { outages: () => outages });
    let markedBefore: Set<string> | null = null;
    const sum = await s.drainWith((t) => {
      if (t.id === 't004') {
        outages++;
        markedBefore = new Set(s.written);
        return;
      }
      // Marked before the restart, run after it: the handler's own writes are refused (first attempt
      // only). The failures are recorded: the server was back before their records were written.
      if (markedBefore?.has(t.id) && t.attempt_count === 0) throw new Error('connection terminated');
    });
    const failedOnce = [...markedBefore!].filter((id) => id > 't004').length;
    expect(failedOnce).toBeGreaterThan(3);
    expect(sum.halted).toBeUndefined();
    expect(sum.retry_scheduled).toBe(failedOnce);
    expect(sum.completed).toBe(40);
    expect((await s.queue.stats()).paused).toBe(false);
  });

  it('the failures of tasks marked ahead still stop the worker once recorded', async () => {
    const s = harness(40, { prefetch: 40, startAhead: 20, haltWhen: failureRatioGuard({ stop_failure_ratio: 1, stop_window: 3 }) });
    await s.enqueue();
    const sum = await s.drainWith(() => {
      throw new Error('the service is down');
    });
    expect(sum.halted).toMatch(/^3 of the last 3 tasks failed/);
    // Heard one acknowledgement later than on files: the slots' worth and what started meanwhile.
    expect(sum.retry_scheduled).toBeLessThanOrEqual(3 + 2 * CONCURRENCY);
  });

  it('a graceful stop gives marked, never-run tasks back without charging them an attempt', async () => {
    const s = harness(50, { prefetch: 50, startAhead: 20 });
    await s.enqueue();
    const sum = await s.drainWith(() => {
      if (s.ran.length === 5) s.stop.abort();
    });
    expect(sum.completed).toBeGreaterThanOrEqual(5);
    expect(sum.released).toBe(50 - sum.completed);
    // Marked ahead, then given back: no attempt charged, no error recorded.
    const back = await s.queue.claim({ owner: { id: 'w2', pid: 2, host: 'h' }, max: 50, lease_ms: 1000 });
    expect(back.length).toBe(sum.released);
    expect(back.filter((c) => s.written.has(c.task.id)).length).toBeGreaterThan(0);
    for (const c of back) expect(c.task).toMatchObject({ attempt_count: 0, errors: [] });
  });
});
