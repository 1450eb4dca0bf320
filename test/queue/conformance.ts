import { describe, expect, it } from 'vitest';
import type { ClockReading, QueueClock } from '../../src/queue/clock.js';
import type { QueueOptions } from '../../src/queue/options.js';
import type { Owner, Queue, TaskError } from '../../src/queue/types.js';

/** Cases about what survives a reopen: registered only for a backend that keeps anything (not skipped). */
function onlyDurable(extras: BackendExtras): (name: string, fn: () => Promise<void>) => void {
  return (name, fn) => {
    if (extras.reopen) it(name, fn);
  };
}

/** A clock the tests move by hand. */
export class FakeClock {
  t = Date.UTC(2026, 0, 15, 12, 0, 0);
  now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

/**
 * Wall and monotonic clocks the tests move by hand, on a named boot: `advance` moves both (time
 * passes), `step` only the wall clock (NTP or an operator setting the time), `reboot` starts a new
 * boot whose monotonic clock starts again near zero.
 */
export class StepClock implements QueueClock {
  wall = Date.UTC(2026, 0, 15, 12, 0, 0);
  mono = 5_000_000;
  boot = 'boot-a';
  read = (): ClockReading => ({ wall: this.wall, mono: this.mono, boot: this.boot });
  advance(ms: number): void {
    this.wall += ms;
    this.mono += ms;
  }
  step(ms: number): void {
    this.wall += ms;
  }
  reboot(boot: string): void {
    this.boot = boot;
    this.mono = 1000;
  }
}

export type MakeQueue = (opts: QueueOptions) => Promise<Queue>;

/** What a backend can do beyond the interface, for the tests that need it. */
export interface BackendExtras {
  /**
   * Closes `q` and opens the same queue afresh (a new process's view: replayed from what is
   * durable), compacted first when `compact` is true. Absent for a backend that keeps nothing.
   */
  reopen?: (q: Queue, compact: boolean) => Promise<Queue>;
}

const ME: Owner = { id: 'me-1', pid: 1, host: 'test' };
const OTHER: Owner = { id: 'other-2', pid: 2, host: 'test' };
const err = (message: string, kind: TaskError['kind'] = 'transient'): Omit<TaskError, 'attempt'> => ({
  kind,
  class: 'Error',
  message,
  at: '2026-01-15T12:00:00.000Z',
});

interface Ctx {
  q: Queue;
  clock: FakeClock;
  alive: Set<string>;
}

/**
 * The behaviour every Queue backend must have. Each backend's test file calls this once.
 * `make` gets a fresh, empty queue each time.
 */
export function describeQueueBackend(backend: string, make: MakeQueue, extras: BackendExtras = {}): void {
  async function setup(max_attempts = 3): Promise<Ctx> {
    const clock = new FakeClock();
    const alive = new Set([ME.id, OTHER.id]);
    const q = await make({ name: 'jobs', max_attempts, now: clock.now, ownerAlive: (o) => alive.has(o.id) });
    return { q, clock, alive };
  }

  /** A task claimed and started (its handler runs), as a worker does it. */
  async function oneClaimed(c: Ctx, id = 'a', owner = ME) {
    await c.q.enqueue([{ id, payload: { n: 1 } }]);
    const [got] = await c.q.claim({ owner, max: 1, lease_ms: 1000, defer_start: true });
    if (!got) throw new Error('nothing claimed');
    if (!(await c.q.start(id, got.lease))) throw new Error('could not start');
    return got;
  }

  describe(`Queue conformance: ${backend}`, () => {
    it('enqueue is idempotent by id and reports what already existed', async () => {
      const { q } = await setup();
      expect(await q.enqueue([{ id: 'a', payload: 1 }, { id: 'b', payload: 2 }])).toEqual({ added: ['a', 'b'], existing: [], rerun: [] });
      expect(await q.enqueue([{ id: 'b', payload: 9 }, { id: 'c', payload: 3 }])).toEqual({ added: ['c'], existing: ['b'], rerun: [] });
      const claimed = await q.claim({ owner: ME, max: 10, lease_ms: 1000 });
      expect(claimed.map((c) => [c.task.id, c.task.payload])).toEqual([
        ['a', 1],
        ['b', 2],
        ['c', 3],
      ]);
      for (const c of claimed) expect(await q.complete(c.task.id, c.lease)).toBe(true);
      expect(await q.enqueue([{ id: 'a', payload: 1 }])).toEqual({ added: [], existing: ['a'], rerun: [] });
      await q.close();
    });

    it('with rerun_completed, completed tasks go back to ready with the rerun recorded', async () => {
      const c = await setup();
      const got = await oneClaimed(c, 'a');
      await c.q.complete('a', got.lease);
      await c.q.enqueue([{ id: 'b', payload: 2 }]);
      expect(await c.q.enqueue([{ id: 'a', payload: 1 }, { id: 'b', payload: 2 }, { id: 'c', payload: 3 }], { rerun_completed: true, by: 'replay' })).toEqual({
        added: ['c'],
        existing: ['b'],
        rerun: ['a'],
      });
      const claimed = await c.q.claim({ owner: ME, max: 5, lease_ms: 1000 });
      const a = claimed.find((x) => x.task.id === 'a')!;
      expect(a.task.retries).toEqual([{ at: new Date(c.clock.t).toISOString(), by: 'replay', attempt_count: 0 }]);
      expect(a.lease.fence).toBe(2);
      await c.q.close();
    });

    it('a duplicate id inside one batch is added once', async () => {
      const { q } = await setup();
      expect(await q.enqueue([{ id: 'x', payload: 1 }, { id: 'x', payload: 2 }])).toEqual({ added: ['x'], existing: ['x'], rerun: [] });
      expect((await q.stats()).ready).toBe(1);
      await q.close();
    });

    it('rejects task ids that are not safe file names', async () => {
      const { q } = await setup();
      await expect(q.enqueue([{ id: '../../etc/passwd', payload: 1 }])).rejects.toThrow(/task id/);
      expect((await q.stats()).ready).toBe(0);
      await q.close();
    });

    it('claims in order, at most max, each task once, with a fenced lease', async () => {
      const { q, clock } = await setup();
      await q.enqueue(['a', 'b', 'c'].map((id) => ({ id, payload: id })));
      const first = await q.claim({ owner: ME, max: 2, lease_ms: 5000 });
      expect(first.map((c) => c.task.id)).toEqual(['a', 'b']);
      expect(first[0]!.lease).toEqual({ owner: ME.id, fence: 1, expires_at: clock.t + 5000 });
      const second = await q.claim({ owner: OTHER, max: 5, lease_ms: 5000 });
      expect(second.map((c) => c.task.id)).toEqual(['c']);
      expect(await q.claim({ owner: OTHER, max: 5, lease_ms: 5000 })).toEqual([]);
      const s = await q.stats();
      expect([s.ready, s.leased]).toEqual([0, 3]);
      await q.close();
    });

    it('completes a held task; a second completion is refused', async () => {
      const c = await setup();
      const got = await oneClaimed(c);
      expect(got.task).toMatchObject({ id: 'a', queue: 'jobs', payload: { n: 1 }, attempt_count: 0, max_attempts: 3, errors: [] });
      expect(await c.q.complete('a', got.lease)).toBe(true);
      expect(await c.q.complete('a', got.lease)).toBe(false);
      const s = await c.q.stats();
      expect([s.ready, s.leased, s.completed]).toEqual([0, 0, 1]);
      await c.q.close();
    });

    it('fences off a stale holder after its lease expired and the task was handed out again', async () => {
      const c = await setup();
      const old = await oneClaimed(c);
      c.clock.advance(1001);
      expect(await c.q.reclaimExpired()).toEqual(['a']);
      const [fresh] = await c.q.claim({ owner: OTHER, max: 1, lease_ms: 1000 });
      expect(fresh!.lease.fence).toBe(old.lease.fence + 1);
      expect(fresh!.task.attempt_count).toBe(1);
      expect(fresh!.task.errors[0]).toMatchObject({ attempt: 1, kind: 'lease_expired' });
      expect(await c.q.complete('a', old.lease)).toBe(false);
      expect(await c.q.renewLease('a', old.lease, 1000)).toBe(false);
      expect(await c.q.fail('a', old.lease, err('late'), 0)).toBe('lease_lost');
      expect(await c.q.complete('a', fresh!.lease)).toBe(true);
      await c.q.close();
    });

    it('claim reclaims expired leases by itself', async () => {
      const c = await setup();
      await oneClaimed(c);
      c.clock.advance(999);
      expect(await c.q.claim({ owner: OTHER, max: 1, lease_ms: 1000 })).toEqual([]);
      c.clock.advance(2);
      const [again] = await c.q.claim({ owner: OTHER, max: 1, lease_ms: 1000 });
      expect(again!.task.id).toBe('a');
      await c.q.close();
    });

    it('hands a task out at once when its owner process is gone, counting the attempt', async () => {
      const c = await setup();
      await oneClaimed(c, 'a', OTHER);
      c.alive.delete(OTHER.id);
      const [got] = await c.q.claim({ owner: ME, max: 1, lease_ms: 1000 });
      expect(got!.task.id).toBe('a');
      expect(got!.task.attempt_count).toBe(1);
      expect(got!.task.errors[0]).toMatchObject({ kind: 'owner_gone', class: 'OwnerGone' });
      await c.q.close();
    });

    it('a lease lost before its handler started costs no attempt: owner gone or lease expired, the task is ready again as it was', async () => {
      const c = await setup(1);
      await c.q.enqueue([
        { id: 'a', payload: {} },
        { id: 'b', payload: {} },
        { id: 'c', payload: {} },
      ]);
      const got = await c.q.claim({ owner: OTHER, max: 3, lease_ms: 1000, defer_start: true });
      expect(got.map((t) => t.task.id)).toEqual(['a', 'b', 'c']);
      expect(await c.q.start('a', got[0]!.lease)).toBe(true);
      c.alive.delete(OTHER.id);
      expect((await c.q.reclaimExpired()).sort()).toEqual(['a', 'b', 'c']);
      // a started: its one attempt is spent (max_attempts 1), so it is dead; b and c never ran.
      expect(await c.q.states(['a', 'b', 'c'])).toEqual(['dead', 'ready', 'ready']);
      expect((await c.q.getDead('a'))?.reason?.kind).toBe('owner_gone');
      const again = await c.q.claim({ owner: ME, max: 2, lease_ms: 1000, defer_start: true });
      expect(again.map((t) => [t.task.id, t.task.attempt_count, t.task.errors.length])).toEqual([
        ['b', 0, 0],
        ['c', 0, 0],
      ]);
      expect(await c.q.start('b', again[0]!.lease)).toBe(true);
      c.clock.advance(1001);
      expect((await c.q.reclaimExpired()).sort()).toEqual(['b', 'c']);
      expect(await c.q.states(['b', 'c'])).toEqual(['dead', 'ready']);
      expect((await c.q.stats()).totals.failed).toBe(2);
      await c.q.close();
    });

    it('without defer_start a claim starts its leases at once: a lost lease costs an attempt', async () => {
      const c = await setup();
      await c.q.enqueue([{ id: 'a', payload: {} }]);
      await c.q.claim({ owner: OTHER, max: 1, lease_ms: 1000 });
      c.alive.delete(OTHER.id);
      const [got] = await c.q.claim({ owner: ME, max: 1, lease_ms: 1000 });
      expect(got!.task.attempt_count).toBe(1);
      await c.q.close();
    });

    it('start is fenced: a holder whose lease was handed out again cannot start it', async () => {
      const c = await setup();
      await c.q.enqueue([{ id: 'a', payload: {} }]);
      const [old] = await c.q.claim({ owner: ME, max: 1, lease_ms: 1000, defer_start: true });
      c.clock.advance(1001);
      const [fresh] = await c.q.claim({ owner: OTHER, max: 1, lease_ms: 1000, defer_start: true });
      expect(fresh!.task.attempt_count).toBe(0);
      expect(await c.q.start('a', old!.lease)).toBe(false);
      expect(await c.q.start('a', fresh!.lease)).toBe(true);
      expect(await c.q.complete('a', fresh!.lease)).toBe(true);
      expect(await c.q.start('a', fresh!.lease)).toBe(false);
      await c.q.close();
    });

    it('renewing a lease pushes its expiry out', async () => {
      const c = await setup();
      const got = await oneClaimed(c);
      c.clock.advance(800);
      expect(await c.q.renewLease('a', got.lease, 1000)).toBe(true);
      c.clock.advance(800);
      expect(await c.q.reclaimExpired()).toEqual([]);
      c.clock.advance(201);
      expect(await c.q.reclaimExpired()).toEqual(['a']);
      await c.q.close();
    });

    it('release gives a task back without counting an attempt', async () => {
      const c = await setup();
      const got = await oneClaimed(c);
      expect(await c.q.release('a', got.lease)).toBe(true);
      const [again] = await c.q.claim({ owner: OTHER, max: 1, lease_ms: 1000 });
      expect(again!.task.attempt_count).toBe(0);
      expect(again!.task.errors).toEqual([]);
      await c.q.close();
    });

    it('a failure schedules a retry that is not claimable before it is due', async () => {
      const c = await setup();
      const got = await oneClaimed(c);
      expect(await c.q.fail('a', got.lease, err('boom'), 1000)).toBe('scheduled');
      let s = await c.q.stats();
      expect([s.ready, s.scheduled, s.leased]).toEqual([0, 1, 0]);
      expect(s.next_due_at).toBe(c.clock.t + 1000);
      c.clock.advance(999);
      expect(await c.q.claim({ owner: ME, max: 1, lease_ms: 1000 })).toEqual([]);
      c.clock.advance(1);
      s = await c.q.stats();
      expect(s.oldest_ready_at).toBe(c.clock.t);
      const [again] = await c.q.claim({ owner: ME, max: 1, lease_ms: 1000 });
      expect(again!.task.attempt_count).toBe(1);
      expect(again!.task.errors).toEqual([{ ...err('boom'), attempt: 1 }]);
      await c.q.close();
    });

    it('due retries are claimed before newer ready tasks', async () => {
      const c = await setup();
      const got = await oneClaimed(c, 'old');
      await c.q.fail('old', got.lease, err('boom'), 10);
      await c.q.enqueue([{ id: 'new', payload: 0 }]);
      c.clock.advance(10);
      const claimed = await c.q.claim({ owner: ME, max: 2, lease_ms: 1000 });
      expect(claimed.map((x) => x.task.id)).toEqual(['old', 'new']);
      await c.q.close();
    });

    it('exhausted retries move the task to the dead letters with its whole history', async () => {
      const c = await setup(3);
      await c.q.enqueue([{ id: 'a', payload: { k: 'v' } }]);
      const outcomes: string[] = [];
      for (let i = 0; i < 3; i++) {
        const [got] = await c.q.claim({ owner: ME, max: 1, lease_ms: 1000 });
        outcomes.push(await c.q.fail('a', got!.lease, { ...err(`boom ${i + 1}`), at: new Date(c.clock.t).toISOString() }, 0));
        c.clock.advance(1000);
      }
      expect(outcomes).toEqual(['scheduled', 'scheduled', 'dead']);
      expect(await c.q.claim({ owner: ME, max: 1, lease_ms: 1000 })).toEqual([]);
      const dead = await c.q.listDead();
      expect(dead).toHaveLength(1);
      const d = dead[0]!;
      expect(d).toMatchObject({ worker: 'jobs', attempt_count: 3, first_failure_at: '2026-01-15T12:00:00.000Z', last_failure_at: '2026-01-15T12:00:02.000Z' });
      expect(d.task.payload).toEqual({ k: 'v' });
      expect(d.errors.map((e) => [e.attempt, e.message])).toEqual([
        [1, 'boom 1'],
        [2, 'boom 2'],
        [3, 'boom 3'],
      ]);
      expect(await c.q.getDead('a')).toEqual(d);
      expect((await c.q.stats()).dead).toBe(1);
      await c.q.close();
    });

    it('a contract error goes to the dead letters at once', async () => {
      const c = await setup(5);
      const got = await oneClaimed(c);
      expect(await c.q.deadLetter('a', got.lease, err('payload.n: expected string', 'contract'))).toBe(true);
      const d = await c.q.getDead('a');
      expect(d).toMatchObject({ attempt_count: 1, reason: { kind: 'contract', attempt: 1 } });
      await c.q.close();
    });

    it('retry moves dead letters back to ready, attempt count reset, history and the retry kept', async () => {
      const c = await setup(1);
      for (const id of ['a', 'b']) {
        const got = await oneClaimed(c, id);
        await c.q.fail(id, got.lease, err(`boom ${id}`), 0);
      }
      expect((await c.q.stats()).dead).toBe(2);
      expect(await c.q.retry({ ids: ['b', 'nope'], by: 'test one' })).toEqual(['b']);
      expect(await c.q.retry({ by: 'test all' })).toEqual(['a']);
      expect(await c.q.retry({ by: 'again' })).toEqual([]);
      expect(await c.q.listDead()).toEqual([]);
      const claimed = await c.q.claim({ owner: ME, max: 5, lease_ms: 1000 });
      expect(claimed.map((x) => x.task.id).sort()).toEqual(['a', 'b']);
      const b = claimed.find((x) => x.task.id === 'b')!.task;
      expect(b.attempt_count).toBe(0);
      expect(b.errors.map((e) => e.message)).toEqual(['boom b']);
      expect(b.retries).toEqual([{ at: new Date(c.clock.t).toISOString(), by: 'test one', attempt_count: 1 }]);
      await c.q.close();
    });

    it('a reclaim that exhausts the attempts dead-letters the task', async () => {
      const c = await setup(1);
      await oneClaimed(c);
      c.clock.advance(5000);
      await c.q.reclaimExpired();
      expect((await c.q.getDead('a'))?.reason?.kind).toBe('lease_expired');
      await c.q.close();
    });

    it('reports the state of each id, null for unknown ids', async () => {
      const c = await setup(1);
      const doomed = await oneClaimed(c, 'd');
      await c.q.fail('d', doomed.lease, err('x'), 0);
      const held = await oneClaimed(c, 'l');
      await c.q.enqueue([{ id: 'r', payload: 0 }]);
      expect(await c.q.states(['r', 'l', 'd', 'nope'])).toEqual(['ready', 'leased', 'dead', null]);
      await c.q.complete('l', held.lease);
      expect(await c.q.states(['l'])).toEqual(['completed']);
      await c.q.close();
    });

    it('getTask: one task in any state with its whole record (payload, errors, group), null for an unknown id', async () => {
      const c = await setup(3);
      await c.q.enqueue([{ id: 'g', payload: { n: 7 }, group: 'p/2026-01-02' }]);
      expect(await c.q.getTask('g')).toMatchObject({ state: 'ready', task: { id: 'g', payload: { n: 7 }, group: 'p/2026-01-02', attempt_count: 0, errors: [] } });
      const [got] = await c.q.claim({ owner: ME, max: 1, lease_ms: 1000 });
      expect((await c.q.getTask('g'))?.state).toBe('leased');
      await c.q.fail('g', got!.lease, err('boom'), 60_000);
      const failed = await c.q.getTask('g');
      expect(failed).toMatchObject({ state: 'scheduled', task: { attempt_count: 1, errors: [{ message: 'boom', attempt: 1 }] } });
      expect(await c.q.getTask('nope')).toBeNull();
      await c.q.close();
    });

    it('back-pressure: an enqueue past max_queue_size is refused whole, existing ids do not count', async () => {
      const clock = new FakeClock();
      const q = await make({ name: 'bp', max_queue_size: 3, now: clock.now, ownerAlive: () => true });
      await q.enqueue([{ id: 'a', payload: 1 }, { id: 'b', payload: 2 }]);
      await expect(q.enqueue([{ id: 'c', payload: 3 }, { id: 'd', payload: 4 }])).rejects.toMatchObject({ code: 'BUSINESS_SKIP' });
      expect((await q.stats()).ready).toBe(2);
      expect(await q.enqueue([{ id: 'a', payload: 1 }, { id: 'c', payload: 3 }])).toEqual({ added: ['c'], existing: ['a'], rerun: [] });
      const [got] = await q.claim({ owner: ME, max: 1, lease_ms: 1000 });
      await q.complete(got!.task.id, got!.lease);
      expect((await q.enqueue([{ id: 'd', payload: 4 }])).added).toEqual(['d']);
      await q.close();
    });

    it('counts failed attempts, arrivals in the dead letters and retries', async () => {
      const c = await setup(2);
      for (let i = 0; i < 2; i++) {
        const [got] = i === 0 ? [await oneClaimed(c, 'a')] : await c.q.claim({ owner: ME, max: 1, lease_ms: 1000 });
        await c.q.fail('a', got!.lease, err('x'), 0);
      }
      await c.q.retry({ by: 't' });
      expect((await c.q.stats()).totals).toEqual({ failed: 2, dead_lettered: 1, retried: 1 });
      await c.q.close();
    });

    it('a paused queue hands out nothing but still takes tasks', async () => {
      const c = await setup();
      await c.q.pause('test');
      await c.q.enqueue([{ id: 'a', payload: 1 }]);
      expect(await c.q.claim({ owner: ME, max: 1, lease_ms: 1000 })).toEqual([]);
      expect((await c.q.stats()).paused).toBe(true);
      await c.q.resume('test');
      expect(await c.q.claim({ owner: ME, max: 1, lease_ms: 1000 })).toHaveLength(1);
      await c.q.close();
    });

    it('stats report the oldest ready task and the counts by state', async () => {
      const c = await setup();
      await c.q.enqueue([{ id: 'a', payload: 1 }]);
      const t0 = c.clock.t;
      c.clock.advance(5000);
      await c.q.enqueue([{ id: 'b', payload: 1 }]);
      expect(await c.q.stats()).toMatchObject({ queue: 'jobs', ready: 2, scheduled: 0, leased: 0, completed: 0, dead: 0, paused: false, oldest_ready_at: t0, next_due_at: null });
      await c.q.close();
    });

    it('a task keeps its group; a bad group is refused and nothing is enqueued', async () => {
      const c = await setup();
      await c.q.enqueue([{ id: 'a', payload: 1, group: 's1/2026-01-02' }, { id: 'b', payload: 2 }]);
      for (const group of ['', 'x'.repeat(201), 'has space', 'semi;colon', 'ü']) {
        await expect(c.q.enqueue([{ id: 'z', payload: 0, group }])).rejects.toThrow(/group/);
      }
      const claimed = await c.q.claim({ owner: ME, max: 5, lease_ms: 1000 });
      expect(claimed.map((x) => [x.task.id, x.task.group])).toEqual([
        ['a', 's1/2026-01-02'],
        ['b', undefined],
      ]);
      expect('group' in claimed[1]!.task).toBe(false);
      expect(await c.q.states(['z'])).toEqual([null]);
      await c.q.close();
    });

    it('a claim with `only` takes only those tasks; the others stay ready, untouched', async () => {
      const c = await setup();
      await c.q.enqueue(['a', 'b', 'c', 'd', 'e'].map((id) => ({ id, payload: id })));
      const only = new Set(['b', 'd', 'nope']);
      const got = await c.q.claim({ owner: ME, max: 5, lease_ms: 1000, only });
      expect(got.map((x) => x.task.id)).toEqual(['b', 'd']);
      expect(await c.q.claim({ owner: ME, max: 5, lease_ms: 1000, only })).toEqual([]);
      expect(await c.q.states(['a', 'b', 'c', 'd', 'e'])).toEqual(['ready', 'leased', 'ready', 'leased', 'ready']);
      // The others were never leased: their first claim has fence 1 and no attempt.
      const rest = await c.q.claim({ owner: OTHER, max: 5, lease_ms: 1000 });
      expect(rest.map((x) => [x.task.id, x.lease.fence, x.task.attempt_count])).toEqual([
        ['a', 1, 0],
        ['c', 1, 0],
        ['e', 1, 0],
      ]);
      await c.q.close();
    });

    it('`only`, large or small against the claimable tasks: due retries first, ready ones in enqueue order, at most max', async () => {
      const c = await setup();
      await c.q.enqueue(Array.from({ length: 20 }, (_, i) => ({ id: `t${String(i).padStart(2, '0')}`, payload: i })));
      // t05 fails and waits for a retry; t07 fails later with a shorter wait: it is due first.
      for (const [id, delay] of [
        ['t05', 100],
        ['t07', 50],
      ] as const) {
        const [h] = await c.q.claim({ owner: ME, max: 1, lease_ms: 1000, only: new Set([id]) });
        expect(await c.q.fail(id, h!.lease, err('x'), delay)).toBe('scheduled');
      }
      c.clock.advance(100);
      // Small: 4 ids among 20 claimable tasks.
      const small = new Set(['t12', 't05', 't07', 't03']);
      expect((await c.q.claim({ owner: ME, max: 3, lease_ms: 1000, only: small })).map((x) => x.task.id)).toEqual(['t07', 't05', 't03']);
      expect((await c.q.claim({ owner: ME, max: 3, lease_ms: 1000, only: small })).map((x) => x.task.id)).toEqual(['t12']);
      // Large: every id and more, against the 16 claimable left.
      const large = new Set([...Array.from({ length: 40 }, (_, i) => `t${String(i).padStart(2, '0')}`)].filter((id) => id !== 't00' && id !== 't01'));
      const got = await c.q.claim({ owner: ME, max: 4, lease_ms: 1000, only: large });
      expect(got.map((x) => x.task.id)).toEqual(['t02', 't04', 't06', 't08']);
      expect(await c.q.states(['t00', 't01'])).toEqual(['ready', 'ready']);
      await c.q.close();
    });

    it('`only` on a paused queue hands out nothing', async () => {
      const c = await setup();
      await c.q.enqueue([{ id: 'a', payload: 1 }]);
      await c.q.pause('test');
      expect(await c.q.claim({ owner: ME, max: 1, lease_ms: 1000, only: new Set(['a']) })).toEqual([]);
      await c.q.close();
    });

    it('nextDueAt: the earliest retry due, among `only` when given', async () => {
      const c = await setup();
      await c.q.enqueue([{ id: 'a', payload: 1 }, { id: 'b', payload: 2 }, { id: 'c', payload: 3 }]);
      expect(await c.q.nextDueAt()).toBeNull();
      const got = await c.q.claim({ owner: ME, max: 2, lease_ms: 1000 });
      await c.q.fail('a', got[0]!.lease, err('x'), 500);
      await c.q.fail('b', got[1]!.lease, err('x'), 2000);
      expect(await c.q.nextDueAt()).toBe(c.clock.t + 500);
      expect(await c.q.nextDueAt(new Set(['b', 'c']))).toBe(c.clock.t + 2000);
      expect(await c.q.nextDueAt(new Set(['c', 'nope']))).toBeNull();
      await c.q.close();
    });

    it('cancel: the ready and scheduled tasks of a group, not leased ones, not `keep`, not other groups; recorded and counted', async () => {
      const c = await setup();
      const g = 'p/2026-01-01';
      await c.q.enqueue([
        { id: 'r1', payload: 1, group: g },
        { id: 's1', payload: 2, group: g },
        { id: 'l1', payload: 3, group: g },
        { id: 'k1', payload: 4, group: g },
        { id: 'o1', payload: 5, group: 'p/2026-01-02' },
        { id: 'n1', payload: 6 },
      ]);
      const [s1] = await c.q.claim({ owner: ME, max: 1, lease_ms: 1000, only: new Set(['s1']) });
      expect(await c.q.fail('s1', s1!.lease, err('x'), 60_000)).toBe('scheduled');
      const [l1] = await c.q.claim({ owner: OTHER, max: 1, lease_ms: 1000, only: new Set(['l1']) });
      c.clock.advance(10);
      expect(await c.q.cancel({ group: g, keep: new Set(['k1']), by: 'run r2', reason: 'superseded by run r2' })).toEqual(['r1', 's1']);
      expect(await c.q.states(['r1', 's1', 'l1', 'k1', 'o1', 'n1'])).toEqual(['cancelled', 'cancelled', 'leased', 'ready', 'ready', 'ready']);
      const s = await c.q.stats();
      expect(s).toMatchObject({ ready: 3, scheduled: 0, leased: 1, cancelled: 2, completed: 0, dead: 0, next_due_at: null });
      // Cancelled tasks are never handed out; a second cancel finds nothing new; unknown groups are nothing.
      expect((await c.q.claim({ owner: ME, max: 10, lease_ms: 1000 })).map((x) => x.task.id)).toEqual(['k1', 'o1', 'n1']);
      expect(await c.q.cancel({ group: g, by: 'again', reason: 'again' })).toEqual([]);
      expect(await c.q.cancel({ group: 'never/used', by: 'x', reason: 'x' })).toEqual([]);
      await expect(c.q.cancel({ group: 'bad group', by: 'x', reason: 'x' })).rejects.toThrow(/group/);
      // The leased one is its holder's: it completes; a later cancel leaves a completed task alone.
      expect(await c.q.complete('l1', l1!.lease)).toBe(true);
      expect(await c.q.cancel({ group: g, by: 'x', reason: 'x' })).toEqual([]);
      expect(await c.q.states(['l1'])).toEqual(['completed']);
      await c.q.close();
    });

    it('a cancelled task is `existing` to a plain enqueue; with rerun_completed it is ready again, the cancellation kept as history', async () => {
      const c = await setup();
      await c.q.enqueue([{ id: 'a', payload: { n: 1 }, group: 'g1' }]);
      const [h] = await c.q.claim({ owner: ME, max: 1, lease_ms: 1000 });
      await c.q.fail('a', h!.lease, err('boom'), 1000);
      const at = new Date(c.clock.t).toISOString();
      expect(await c.q.cancel({ group: 'g1', by: 'run r2', reason: 'superseded' })).toEqual(['a']);
      expect(await c.q.enqueue([{ id: 'a', payload: { n: 1 }, group: 'g1' }])).toEqual({ added: [], existing: ['a'], rerun: [] });
      expect(await c.q.states(['a'])).toEqual(['cancelled']);
      expect(await c.q.enqueue([{ id: 'a', payload: { n: 1 }, group: 'g1' }], { rerun_completed: true, by: 'run r3' })).toEqual({ added: [], existing: [], rerun: ['a'] });
      expect((await c.q.stats()).cancelled).toBe(0);
      const [again] = await c.q.claim({ owner: ME, max: 1, lease_ms: 1000 });
      expect(again!.task).toMatchObject({ id: 'a', group: 'g1', attempt_count: 0, cancelled: { at, by: 'run r2', reason: 'superseded' } });
      expect(again!.task.errors.map((e) => e.message)).toEqual(['boom']);
      expect(again!.task.retries).toEqual([{ at, by: 'run r3', attempt_count: 1 }]);
      expect(again!.lease.fence).toBe(2);
      await c.q.close();
    });

    onlyDurable(extras)('group, cancellation and its record survive a reopen and a compaction', async () => {
      const c = await setup();
      await c.q.enqueue([
        { id: 'a', payload: 1, group: 'g/1' },
        { id: 'b', payload: 2, group: 'g/1' },
        { id: 'c', payload: 3, group: 'g/2' },
      ]);
      expect(await c.q.cancel({ group: 'g/1', keep: new Set(['b']), by: 'op', reason: 'why' })).toEqual(['a']);
      for (const compact of [false, true]) {
        c.q = await extras.reopen!(c.q, compact);
        expect(await c.q.states(['a', 'b', 'c'])).toEqual(['cancelled', 'ready', 'ready']);
        expect((await c.q.stats()).cancelled).toBe(1);
        // The groups are still known: a second cancel of g/1 finds b, of g/2 finds c (then they are put back).
        const r = await c.q.enqueue([{ id: 'a', payload: 1 }], { rerun_completed: true, by: 'rerun' });
        expect(r.rerun).toEqual(['a']);
        expect(await c.q.cancel({ group: 'g/1', keep: new Set(['b']), by: 'op', reason: 'why' })).toEqual(['a']);
      }
      c.q = await extras.reopen!(c.q, false);
      expect(await c.q.cancel({ group: 'g/1', by: 'op2', reason: 'all of it' })).toEqual(['b']);
      expect(await c.q.cancel({ group: 'g/2', by: 'op2', reason: 'all of it' })).toEqual(['c']);
      expect(await c.q.enqueue([{ id: 'b', payload: 2 }], { rerun_completed: true, by: 'r' })).toMatchObject({ rerun: ['b'] });
      const [b] = await c.q.claim({ owner: ME, max: 5, lease_ms: 1000 });
      expect(b!.task).toMatchObject({ id: 'b', group: 'g/1', cancelled: { by: 'op2', reason: 'all of it' } });
      await c.q.close();
    });

    /** Dead letters `ids` (one attempt each), in this order; the clock moves 10 ms after each. */
    async function deadLetters(c: Ctx, ids: string[]): Promise<void> {
      for (const id of ids) {
        const got = await oneClaimed(c, id);
        expect(await c.q.fail(id, got.lease, err(`boom ${id}`), 0)).toBe('dead');
        c.clock.advance(10);
      }
    }

    it('discard: the named dead letters leave them for cancelled, recorded on the task; other ids and states are left alone', async () => {
      const c = await setup(1);
      await deadLetters(c, ['a', 'b', 'c']);
      await c.q.enqueue([{ id: 'r', payload: 1 }]);
      const at = new Date(c.clock.t).toISOString();
      // Unknown ids and tasks that are not dead letters are not discarded; a repeated id counts once.
      expect(await c.q.discard({ ids: ['c', 'nope', 'r', 'a', 'c'], by: 'op@host: metaspn queue deadletter discard', reason: 'bad data, fixed upstream' })).toEqual(['c', 'a']);
      expect(await c.q.states(['a', 'b', 'c', 'r'])).toEqual(['cancelled', 'dead', 'cancelled', 'ready']);
      expect((await c.q.listDead()).map((d) => d.task.id)).toEqual(['b']);
      expect(await c.q.getDead('a')).toBeNull();
      expect(await c.q.stats()).toMatchObject({ ready: 1, dead: 1, cancelled: 2, completed: 0 });
      // Discarded tasks are never handed out, nor taken back by a retry; a second discard finds nothing.
      expect((await c.q.claim({ owner: ME, max: 10, lease_ms: 1000 })).map((x) => x.task.id)).toEqual(['r']);
      expect(await c.q.retry({ ids: ['a'], by: 'x' })).toEqual([]);
      expect(await c.q.discard({ ids: ['a', 'c'], by: 'again', reason: 'again' })).toEqual([]);
      // Without ids: every dead letter, in enqueue order.
      expect(await c.q.discard({ by: 'op', reason: 'all of it' })).toEqual(['b']);
      expect(await c.q.discard({ by: 'op', reason: 'nothing left' })).toEqual([]);
      expect(await c.q.listDead()).toEqual([]);
      expect((await c.q.stats()).dead).toBe(0);
      // The task keeps its history; an enqueue with rerun_completed runs it again, like any cancelled task.
      expect(await c.q.enqueue([{ id: 'a', payload: { n: 1 } }])).toEqual({ added: [], existing: ['a'], rerun: [] });
      expect(await c.q.enqueue([{ id: 'a', payload: { n: 1 } }], { rerun_completed: true, by: 'replay' })).toEqual({ added: [], existing: [], rerun: ['a'] });
      const [again] = await c.q.claim({ owner: ME, max: 1, lease_ms: 1000 });
      expect(again!.task).toMatchObject({ id: 'a', attempt_count: 0, cancelled: { at, by: 'op@host: metaspn queue deadletter discard', reason: 'bad data, fixed upstream', discarded: true } });
      expect(again!.task.errors.map((e) => e.message)).toEqual(['boom a']);
      await c.q.close();
    });

    it('a discarded dead letter that is retried first is not discarded: retry and discard each take a dead letter once', async () => {
      const c = await setup(1);
      await deadLetters(c, ['a']);
      expect(await c.q.retry({ ids: ['a'], by: 'x' })).toEqual(['a']);
      expect(await c.q.discard({ ids: ['a'], by: 'y', reason: 'late' })).toEqual([]);
      expect(await c.q.states(['a'])).toEqual(['ready']);
      await c.q.close();
    });

    onlyDurable(extras)('a discard and its record survive a reopen and a compaction', async () => {
      const c = await setup(1);
      await deadLetters(c, ['a', 'b']);
      expect(await c.q.discard({ ids: ['a'], by: 'op', reason: 'why' })).toEqual(['a']);
      for (const compact of [false, true]) {
        c.q = await extras.reopen!(c.q, compact);
        expect(await c.q.states(['a', 'b'])).toEqual(['cancelled', 'dead']);
        expect((await c.q.listDead()).map((d) => d.task.id)).toEqual(['b']);
        expect(await c.q.stats()).toMatchObject({ dead: 1, cancelled: 1 });
      }
      expect(await c.q.enqueue([{ id: 'a', payload: 1 }], { rerun_completed: true, by: 'r' })).toMatchObject({ rerun: ['a'] });
      const [a] = await c.q.claim({ owner: ME, max: 1, lease_ms: 1000 });
      expect(a!.task).toMatchObject({ id: 'a', cancelled: { by: 'op', reason: 'why', discarded: true } });
      await c.q.close();
    });

    describe('wall-clock steps: leases and retry waits are measured on the monotonic clock', () => {
      const H2 = 2 * 3_600_000;
      async function stepping(max_attempts = 3): Promise<{ q: Queue; clock: StepClock; alive: Set<string> }> {
        const clock = new StepClock();
        const alive = new Set([ME.id, OTHER.id]);
        const q = await make({ name: 'jobs', max_attempts, clock, ownerAlive: (o) => alive.has(o.id) });
        return { q, clock, alive };
      }

      it('a +2 h step expires no lease; the lease expires after its own duration; expires_at is a wall-clock time', async () => {
        const { q, clock } = await stepping();
        await q.enqueue([{ id: 'a', payload: 1 }]);
        const [held] = await q.claim({ owner: ME, max: 1, lease_ms: 1000 });
        expect(held!.lease.expires_at).toBe(clock.wall + 1000);
        clock.step(H2);
        expect(await q.reclaimExpired()).toEqual([]);
        expect(await q.claim({ owner: OTHER, max: 1, lease_ms: 1000 })).toEqual([]);
        expect(await q.renewLease('a', held!.lease, 1000)).toBe(true);
        clock.advance(999);
        expect(await q.claim({ owner: OTHER, max: 1, lease_ms: 1000 })).toEqual([]);
        clock.step(-H2 - 60_000);
        clock.advance(2);
        const [again] = await q.claim({ owner: OTHER, max: 1, lease_ms: 1000 });
        expect(again!.task.errors.map((e) => e.kind)).toEqual(['lease_expired']);
        expect(await q.complete('a', held!.lease)).toBe(false);
        await q.close();
      });

      it('a retry scheduled during a +2 h step is due after its delay once the clock is stepped back; next_due_at shows the remainder', async () => {
        const { q, clock } = await stepping();
        await q.enqueue([{ id: 'a', payload: 1 }]);
        clock.step(H2);
        const [held] = await q.claim({ owner: ME, max: 1, lease_ms: 60_000 });
        expect(await q.fail('a', held!.lease, err('boom'), 5000)).toBe('scheduled');
        expect((await q.stats()).next_due_at).toBe(clock.wall + 5000);
        clock.step(-H2);
        const s = await q.stats();
        expect(s.next_due_at).toBe(clock.wall + 5000);
        expect(await q.nextDueAt()).toBe(clock.wall + 5000);
        clock.advance(4999);
        expect(await q.claim({ owner: ME, max: 1, lease_ms: 1000 })).toEqual([]);
        clock.advance(1);
        const [again] = await q.claim({ owner: ME, max: 1, lease_ms: 1000 });
        // Its record's times are the wall clock's (+2 h at the failure): what the operator's logs say too.
        expect(again!.task).toMatchObject({ id: 'a', attempt_count: 1, updated_at: new Date(clock.wall - 5000 + H2).toISOString() });
        await q.close();
      });

      it('the age of the oldest ready task is monotonic too', async () => {
        const { q, clock } = await stepping();
        await q.enqueue([{ id: 'a', payload: 1 }]);
        clock.advance(3000);
        clock.step(-H2);
        expect((await q.stats()).oldest_ready_at).toBe(clock.wall - 3000);
        await q.close();
      });

      onlyDurable(extras)('another process on the same boot measures the same during a step, through a reopen and a compaction', async () => {
        const made = await stepping();
        const clock = made.clock;
        let q = made.q;
        await q.enqueue([{ id: 'a', payload: 1 }, { id: 'b', payload: 2 }]);
        const [held] = await q.claim({ owner: ME, max: 1, lease_ms: 10_000, only: new Set(['a']) });
        const [b] = await q.claim({ owner: ME, max: 1, lease_ms: 10_000, only: new Set(['b']) });
        await q.fail('b', b!.lease, err('x'), 20_000);
        clock.step(H2);
        for (const compact of [false, true]) {
          q = await extras.reopen!(q, compact);
          expect(await q.reclaimExpired()).toEqual([]);
          expect(await q.states(['a', 'b'])).toEqual(['leased', 'scheduled']);
          expect(await q.nextDueAt()).toBe(clock.wall + 20_000);
        }
        clock.step(-H2);
        clock.advance(10_001);
        q = await extras.reopen!(q, false);
        expect(await q.complete('a', held!.lease)).toBe(true);
        expect(await q.nextDueAt()).toBe(clock.wall + 9_999);
        await q.close();
      });

      onlyDurable(extras)('after a reboot the monotonic times of the old boot mean nothing: waits fall back to the wall clock', async () => {
        const made = await stepping();
        const clock = made.clock;
        let q = made.q;
        await q.enqueue([{ id: 'a', payload: 1 }]);
        const [held] = await q.claim({ owner: ME, max: 1, lease_ms: 60_000 });
        await q.fail('a', held!.lease, err('x'), 30_000);
        clock.advance(10_000);
        clock.reboot('boot-b');
        q = await extras.reopen!(q, false);
        expect(await q.nextDueAt()).toBe(clock.wall + 20_000);
        clock.advance(20_000);
        expect(await q.claim({ owner: ME, max: 1, lease_ms: 1000 })).toHaveLength(1);
        await q.close();
      });
    });
  });
}
