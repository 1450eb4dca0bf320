// Records that pass their checksum but hold values no writer writes are corrupt like a replay
// conflict (QueueLogConflictError, exit 30), and `repair` salvages the log keeping every task.
import { describe, expect, it } from 'vitest';
import { workspaceWithLog } from './log-fixture.js';
import { Findings } from '../../src/doctor/finding.js';
import { checkQueue } from '../../src/doctor/queues.js';
import { FileQueue } from '../../src/queue/file/file-queue.js';
import { impossibleTask, impossibleValue, salvageable } from '../../src/queue/file/impossible.js';
import { QueueLogConflictError } from '../../src/queue/file/loader.js';
import type { LogRecord } from '../../src/queue/file/records.js';
import { newRecord } from '../../src/queue/record.js';
import { workspacePaths } from '../../src/storage/paths.js';

const T0 = 1_768_478_400_000;
const task = (id: string, extra: Record<string, unknown> = {}) => ({ ...newRecord('jobs', { id, payload: { id } }, 3, T0), ...extra });
const enq = (n: number, id: string, extra: Record<string, unknown> = {}): LogRecord => ({ t: 'enq', n, at: T0, task: task(id, extra) });
const claim = (l: [number, number][], st = true): LogRecord => ({ t: 'claim', at: T0, o: 'w', pid: 1, host: 'h', ms: 60_000, ...(st ? { st: 1 as const } : {}), l });
const rec = (r: Record<string, unknown>): LogRecord => r as unknown as LogRecord;

const workspaceWith = (lines: LogRecord[]): { w: string; offsets: number[] } => workspaceWithLog(lines, 'metaspn-imp-');

const open = (w: string): FileQueue => new FileQueue({ name: 'jobs', workspace: w, ownerAlive: () => true, warn: () => undefined });

/** The queue refuses the log (30) at the record at `offset`, with the reason; doctor reports it too. */
async function refusedAt(w: string, offset: number, reason: RegExp): Promise<void> {
  const q = open(w);
  const err = await q.stats().then(
    () => null,
    (e: unknown) => e,
  );
  await q.close();
  expect(err).toBeInstanceOf(QueueLogConflictError);
  const e = err as QueueLogConflictError;
  expect(e.exitCode).toBe(30);
  expect(e.conflict.offset).toBe(offset);
  expect(e.conflict.reason).toMatch(/^impossible value: /);
  expect(e.conflict.reason).toMatch(reason);
  const f = new Findings();
  expect(checkQueue(workspacePaths(w), 'jobs', f)).toBe(true);
  expect(f.list.map((x) => `${x.severity} ${x.message}`)).toEqual([expect.stringMatching(new RegExp(`^error replay conflict at byte ${offset} .*impossible value`))]);
}

describe('impossible values (pure rules)', () => {
  it('an attempt count past max_attempts, or counts that are not whole numbers in range', () => {
    expect(impossibleTask(task('a', { attempt_count: 4 }))).toBe('task a: attempt_count 4 is more than max_attempts 3');
    expect(impossibleTask(task('a', { attempt_count: 3 }))).toBeNull();
    expect(impossibleTask(task('a', { attempt_count: -1 }))).toMatch(/attempt_count -1 is not a whole number/);
    expect(impossibleTask(task('a', { attempt_count: 1.5 }))).toMatch(/attempt_count 1.5/);
    expect(impossibleTask(task('a', { max_attempts: 70_000 }))).toMatch(/max_attempts 70000/);
    expect(impossibleTask(task('a', { max_attempts: null }))).toMatch(/max_attempts null/);
    expect(impossibleTask({ payload: 1 })).toBe('its task has no id');
    expect(impossibleValue(rec({ t: 'fail', at: T0, o: 'w', n: 0, f: 1, ms: 0, task: task('a', { attempt_count: 9 }) }))).toMatch(/attempt_count 9 is more than max_attempts 3/);
  });

  it('negative or non-finite times (JSON writes NaN and Infinity as null) and durations', () => {
    expect(impossibleValue(rec({ ...claim([[0, 1]]), at: -1 }))).toMatch(/^claim: time at -1 is not a time/);
    expect(impossibleValue(rec({ ...claim([[0, 1]]), at: null }))).toMatch(/time at null/);
    expect(impossibleValue(rec({ ...claim([[0, 1]]), ms: -5 }))).toMatch(/lease ms -5/);
    expect(impossibleValue(rec({ ...enq(0, 'a'), m: 'x' }))).toMatch(/monotonic time m "x"/);
    expect(impossibleValue(rec({ t: 'fail', at: T0, o: 'w', n: 0, f: 1, ms: null, task: task('a') }))).toMatch(/delay ms null/);
    expect(impossibleValue(rec({ t: 'snap', n: 0, s: 'ready', f: 0, tm: -3, task: task('a') }))).toMatch(/time tm -3/);
    expect(impossibleValue(rec({ t: 'clk', at: T0, m: -1, b: 'x' }))).toMatch(/^clk: monotonic time/);
    // A state time on the monotonic timeline may be negative (a wall time older than the boot).
    expect(impossibleValue(rec({ t: 'snap', n: 0, s: 'ready', f: 0, tm: T0, mt: -5000, task: task('a') }))).toBeNull();
  });

  it('unknown record types, states and error kinds', () => {
    expect(impossibleValue(rec({ t: 'zap', at: T0 }))).toBe('unknown record type "zap"');
    expect(impossibleValue(rec({ t: 'snap', n: 0, s: 'nonsense', f: 0, tm: T0, task: task('a') }))).toBe('snap: unknown state "nonsense"');
    expect(impossibleValue(enq(0, 'a', { errors: [{ attempt: 1, kind: 'weird', class: 'E', message: 'm', at: 'x' }] }))).toBe('task a: unknown error kind "weird"');
    expect(impossibleValue(rec({ t: 'snap', n: 0, s: 'leased', f: 0, tm: T0, task: task('a') }))).toMatch(/a leased task with no lease/);
  });

  it('fences no lease has: 0 or less in a lease record, a fence that is not a whole number', () => {
    expect(impossibleValue(rec({ t: 'start', at: T0, o: 'w', l: [[0, 0]] }))).toMatch(/^start: fence 0 of slot 0 names no lease/);
    expect(impossibleValue(rec({ t: 'done', at: T0, o: 'w', l: [[0, -2]] }))).toMatch(/fence -2/);
    expect(impossibleValue(rec({ t: 'dead', at: T0, o: 'w', n: 0, f: 0.5, task: task('a') }))).toMatch(/fence 0.5/);
    expect(impossibleValue(rec({ t: 'renew', at: T0, o: 'w', ms: 1, l: [[0]] }))).toMatch(/not a \[slot, fence\] pair/);
    expect(impossibleValue(rec({ t: 'kept', n: 0, id: 'a', f: -1, tm: T0 }))).toMatch(/kept: fence -1/);
  });

  it('what every writer writes passes', () => {
    for (const r of [enq(0, 'a'), claim([[0, 1]]), rec({ t: 'clk', at: T0, m: 5, b: 'boot' }), rec({ t: 'head', gen: 2, at: T0, completed_dropped: 4, paused: false }), rec({ t: 'pause', at: T0, by: 'x' })]) {
      expect(impossibleValue(r)).toBeNull();
    }
  });

  it('a salvage keeps the task of a record that places one, as ready, within range', () => {
    const fixed = salvageable(enq(3, 'a', { attempt_count: 9, errors: [{ attempt: 1, kind: 'weird' }] }), T0 + 5);
    expect(fixed).toMatchObject({ t: 'snap', n: 3, s: 'ready', f: 0, tm: T0 + 5, task: { id: 'a', attempt_count: 3, max_attempts: 3, errors: [{ attempt: 1, kind: 'transient' }] } });
    expect(impossibleValue(fixed!)).toBeNull();
    expect(salvageable(rec({ t: 'kept', n: 1, id: 'k', f: -4, tm: -1 }), T0)).toEqual({ t: 'kept', n: 1, id: 'k', f: 0, tm: T0 });
    expect(salvageable(rec({ t: 'enq', n: 0, at: -1, task: { payload: 1 } }), T0)).toBeNull();
    expect(salvageable(claim([[0, 1]]), T0)).toBeNull();
  });
});

describe('impossible values in a queue log: corrupt (30), reported by doctor, salvaged by repair', () => {
  it('an attempt count past max_attempts', async () => {
    const { w, offsets } = workspaceWith([enq(0, 'a'), claim([[0, 1]]), rec({ t: 'fail', at: T0, o: 'w', n: 0, f: 1, ms: 0, task: task('a', { attempt_count: 7 }) })]);
    await refusedAt(w, offsets[2]!, /attempt_count 7 is more than max_attempts 3/);
  });

  it('a negative time', async () => {
    const { w, offsets } = workspaceWith([enq(0, 'a'), rec({ ...claim([[0, 1]]), at: -60_000 })]);
    await refusedAt(w, offsets[1]!, /time at -60000/);
  });

  it('an unknown record type', async () => {
    const { w, offsets } = workspaceWith([enq(0, 'a'), rec({ t: 'teleport', at: T0, n: 0 })]);
    await refusedAt(w, offsets[1]!, /unknown record type "teleport"/);
  });

  it('an unknown error kind', async () => {
    const { w, offsets } = workspaceWith([enq(0, 'a', { errors: [{ attempt: 1, kind: 'cosmic', class: 'E', message: 'm', at: 'x' }], attempt_count: 1 })]);
    await refusedAt(w, offsets[0]!, /unknown error kind "cosmic"/);
  });

  it('a fence that goes backwards: a claim of a claimable task that does not give the next fence', async () => {
    const { w, offsets } = workspaceWith([enq(0, 'a'), claim([[0, 1]]), rec({ t: 'rel', at: T0, o: 'w', l: [[0, 1]] }), claim([[0, 1]])]);
    await refusedAt(w, offsets[3]!, /claim of slot 0 gives fence 1, but its fence is 1/);
  });

  it('a start of a lease never granted: an unleased slot, a fence no claim gave', async () => {
    let ws = workspaceWith([enq(0, 'a'), rec({ t: 'start', at: T0, o: 'w', l: [[0, 1]] })]);
    await refusedAt(ws.w, ws.offsets[1]!, /start of slot 0 with fence 1, but no claim gave it \(its fence is 0\)/);
    ws = workspaceWith([enq(0, 'a'), claim([[0, 1]], false), rec({ t: 'start', at: T0, o: 'w', l: [[0, 5]] })]);
    await refusedAt(ws.w, ws.offsets[2]!, /start of slot 0 with fence 5/);
  });

  it('what a log may legitimately hold is still only refused: a start whose lease a reclaim in the same round gave back, a claim lost to another', async () => {
    const { w } = workspaceWith([enq(0, 'a'), claim([[0, 1]], false), rec({ t: 'rel', at: T0, o: 'w', l: [[0, 1]] }), rec({ t: 'start', at: T0, o: 'w', l: [[0, 1]] }), claim([[0, 2]]), rec({ ...claim([[0, 2]]), o: 'other' })]);
    const q = open(w);
    expect(await q.stats()).toMatchObject({ leased: 1, ready: 0 });
    await q.close();
  });

  it('repair keeps every task: a task placed with impossible values is kept as ready within range, a record acting on one is skipped and the task made ready', async () => {
    const { w, offsets } = workspaceWith([
      enq(0, 'a'),
      enq(1, 'b', { attempt_count: 9 }),
      enq(2, 'c'),
      claim([[0, 1]]),
      rec({ t: 'fail', at: T0, o: 'w', n: 0, f: 1, ms: -1, task: task('a', { attempt_count: 1 }) }),
      // c's lease is live (claimed now): not in doubt, it is kept.
      rec({ ...claim([[2, 1]]), at: Date.now() }),
    ]);
    const q = open(w);
    const r = await q.repair();
    expect(r.conflict?.conflict).toMatchObject({ offset: offsets[1], record: 'enq', ids: ['b'] });
    expect(r.conflict?.salvage.impossible).toEqual([
      { offset: offsets[1], record: 'enq', reason: 'task b: attempt_count 9 is more than max_attempts 3', kept: true },
      { offset: offsets[4], record: 'fail', reason: 'fail: delay ms -1 is not a duration', kept: false },
    ]);
    expect(r.conflict?.salvage.made_ready.map((x) => [x.id, x.was]).sort()).toEqual([
      ['a', 'leased'],
      ['b', 'ready'],
    ]);
    expect(await q.states(['a', 'b', 'c'])).toEqual(['ready', 'ready', 'leased']);
    await q.close();
    // The new generation replays strictly: nothing impossible was copied into it.
    const fresh = open(w);
    const got = await fresh.claim({ owner: { id: 'me', pid: process.pid, host: 'h' }, max: 5, lease_ms: 60_000 });
    expect(got.map((g) => [g.task.id, g.task.attempt_count]).sort()).toEqual([
      ['a', 0],
      ['b', 3],
    ]);
    await fresh.close();
    const f = new Findings();
    checkQueue(workspacePaths(w), 'jobs', f);
    expect(f.list.filter((x) => x.severity === 'error')).toEqual([]);
  });
});
