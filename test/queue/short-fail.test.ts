// The short `fail` record (docs/QUEUE-FORMAT.md): a failed attempt writes what it changes (task id,
// attempt, error, delay), and every reader of the log rebuilds the task from the record before it.
import { readFileSync, readdirSync, rmSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../temp.js';
import { workspaceWithLog } from './log-fixture.js';
import { FileQueue, type FileQueueOptions } from '../../src/queue/file/file-queue.js';
import { QueueLogConflictError } from '../../src/queue/file/loader.js';
import { listGens, logPath } from '../../src/queue/file/log-io.js';
import { failedTask, type LogRecord, type ShortFail } from '../../src/queue/file/records.js';
import { newRecord, recordAfterFailure } from '../../src/queue/record.js';
import type { Owner, TaskError } from '../../src/queue/types.js';

const T0 = 1_768_478_400_000;
const ME: Owner = { id: 'me', pid: process.pid, host: 'h' };
const open = (workspace: string, extra: Partial<FileQueueOptions> = {}): FileQueue => new FileQueue({ name: 'jobs', workspace, ownerAlive: () => true, warn: () => undefined, ...extra });
const dir = (w: string): string => join(w, 'queue', 'jobs');
const currentLog = (w: string): string => logPath(dir(w), listGens(dir(w)).at(-1)!);
/** The records of the current log generation, in order. */
const records = (w: string): Record<string, unknown>[] =>
  readFileSync(currentLog(w), 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => (JSON.parse(l) as { r: Record<string, unknown> }).r);
const error = (message: string, at = '2026-11-30T12:00:00.000Z'): Omit<TaskError, 'attempt'> => ({
  kind: 'transient',
  class: 'Error',
  message,
  stack: ['at handle (file:///w/worker.js:3:11)', 'at run (file:///w/runner.js:40:7)'],
  at,
});
const payload = { to: 'ada@example.com', lines: [1, 2, 3] };

describe('short fail records', () => {
  it('a failure is written short (no task record) and reads back as the whole task, in this process and in a fresh one', async () => {
    const w = tempDir('metaspn-sf-');
    const q = open(w, { max_attempts: 3 });
    await q.enqueue([{ id: 'a', payload }]);
    const [c] = await q.claim({ owner: ME, max: 1, lease_ms: 60_000 });
    const before = c!.task;
    expect(await q.fail('a', c!.lease, error('boom'), 0)).toBe('scheduled');
    const fail = records(w).find((r) => r.t === 'fail')!;
    expect(fail).toMatchObject({ n: 0, f: 1, ms: 0, id: 'a', a: 1, e: error('boom') });
    expect(fail).not.toHaveProperty('task');
    const view = await q.getTask('a');
    const expected = { ...recordAfterFailure(before, error('boom'), fail.at as number) };
    expect(view?.task).toEqual(expected);
    // The retry's claim reads the task back from the enq and the short fail.
    const [again] = await q.claim({ owner: ME, max: 1, lease_ms: 60_000 });
    expect(again!.task).toEqual(expected);
    await q.close();
    const fresh = open(w, { max_attempts: 3 });
    expect((await fresh.getTask('a'))?.task).toEqual(expected);
    await fresh.close();
  });

  it('the rebuilt task is byte for byte the one a long fail would carry', () => {
    const before = newRecord('jobs', { id: 'a', payload }, 3, T0);
    const r: ShortFail = { t: 'fail', at: T0 + 5, o: 'w', n: 0, f: 1, ms: 10, id: 'a', a: 1, e: error('boom') };
    expect(JSON.stringify(failedTask(before, r))).toBe(JSON.stringify(recordAfterFailure(before, error('boom'), T0 + 5)));
  });

  it('a log of long fail records (older versions) reads as before, and the next failure is short onto it, the one after long again', async () => {
    const task = newRecord('jobs', { id: 'a', payload }, 3, T0);
    const failed = recordAfterFailure(task, error('old'), T0 + 1);
    const { w } = workspaceWithLog([
      { t: 'enq', n: 0, at: T0, task },
      { t: 'claim', at: T0, o: 'w', pid: 1, host: 'h', ms: 60_000, st: 1, l: [[0, 1]] },
      { t: 'fail', at: T0 + 1, o: 'w', n: 0, f: 1, ms: 0, task: failed },
    ]);
    const q = open(w);
    expect(await q.getTask('a')).toEqual({ state: 'ready', task: failed });
    let [c] = await q.claim({ owner: ME, max: 1, lease_ms: 60_000 });
    expect(c!.task).toEqual(failed);
    expect(await q.fail('a', c!.lease, error('second'), 0)).toBe('scheduled');
    [c] = await q.claim({ owner: ME, max: 1, lease_ms: 60_000 });
    expect(c!.task.errors.map((e) => [e.attempt, e.message])).toEqual([
      [1, 'old'],
      [2, 'second'],
    ]);
    expect(await q.fail('a', c!.lease, error('third'), 0)).toBe('dead');
    const fails = records(w).filter((r) => r.t === 'fail');
    expect(fails.map((r) => ('task' in r ? 'long' : 'short'))).toEqual(['long', 'short', 'long']);
    const dead = await q.getDead('a');
    expect(dead?.task.payload).toEqual(payload);
    expect(dead?.errors.map((e) => e.message)).toEqual(['old', 'second', 'third']);
    await q.close();
  });

  it('a compaction folds the short fail into the snap of the whole task', async () => {
    const w = tempDir('metaspn-sf-');
    const q = open(w, { max_attempts: 3 });
    await q.enqueue([
      { id: 'a', payload },
      { id: 'b', payload: 2 },
    ]);
    const [c] = await q.claim({ owner: ME, max: 1, lease_ms: 60_000 });
    await q.fail('a', c!.lease, error('boom'), 60_000);
    const before = await q.getTask('a');
    await q.compact();
    const after = records(w);
    expect(after.filter((r) => r.t === 'fail')).toEqual([]);
    expect(after.find((r) => r.t === 'snap' && (r.task as { id: string }).id === 'a')).toMatchObject({ s: 'scheduled', task: before!.task });
    expect(await q.getTask('a')).toEqual(before);
    await q.close();
    const fresh = open(w, { max_attempts: 3 });
    expect(await fresh.getTask('a')).toEqual(before);
    await fresh.close();
  });

  it('a short fail torn at the end of the log (its write never returned) is set aside; the lease still holds and the failure can be recorded again', async () => {
    const w = tempDir('metaspn-sf-');
    const q = open(w, { max_attempts: 3 });
    await q.enqueue([{ id: 'a', payload }]);
    const [c] = await q.claim({ owner: ME, max: 1, lease_ms: 60_000 });
    await q.fail('a', c!.lease, error('boom'), 0);
    await q.close();
    const text = readFileSync(currentLog(w), 'utf8');
    const last = text.lastIndexOf('\n', text.length - 2) + 1;
    expect(JSON.parse(text.slice(last)).r).toMatchObject({ t: 'fail', id: 'a' });
    truncateSync(currentLog(w), last + 60);
    const warnings: string[] = [];
    const b = open(w, { max_attempts: 3, warn: (m) => warnings.push(m) });
    expect(await b.getTask('a')).toMatchObject({ state: 'leased', task: { attempt_count: 0, errors: [] } });
    expect(warnings).toContain('torn last line set aside');
    expect(await b.fail('a', c!.lease, error('again'), 0)).toBe('scheduled');
    expect((await b.getTask('a'))?.task.errors.map((e) => e.message)).toEqual(['again']);
    await b.close();
    const quarantined = readFileSync(join(dir(w), 'quarantine', 'corrupt.jsonl'), 'utf8');
    expect(JSON.parse(quarantined)).toMatchObject({ reason: 'torn tail (no newline)', length: 60 });
  });

  it('a task that exhausts its attempts on a short fail is a dead letter with its payload and its last error whole, rewritten the same from the log', async () => {
    const w = tempDir('metaspn-sf-');
    const q = open(w, { max_attempts: 1 });
    await q.enqueue([{ id: 'a', payload }]);
    const [c] = await q.claim({ owner: ME, max: 1, lease_ms: 60_000 });
    expect(await q.fail('a', c!.lease, error('last'), 0)).toBe('dead');
    expect(records(w).find((r) => r.t === 'fail')).not.toHaveProperty('task');
    await q.close();
    const file = join(w, 'deadletter', 'jobs', 'a.json');
    const first = readFileSync(file, 'utf8');
    const d = JSON.parse(first) as { task: { payload: unknown; attempt_count: number }; reason: TaskError; errors: TaskError[] };
    expect(d.task.payload).toEqual(payload);
    expect(d.task.attempt_count).toBe(1);
    expect(d.reason).toEqual({ ...error('last'), attempt: 1 });
    expect(d.errors).toEqual([{ ...error('last'), attempt: 1 }]);
    // A loader rewrites a missing dead-letter file from the log: the same bytes.
    rmSync(file);
    const b = open(w, { max_attempts: 1 });
    expect(await b.stats()).toMatchObject({ dead: 1 });
    expect((await b.listDead()).map((x) => x.task.id)).toEqual(['a']);
    await b.close();
    expect(readFileSync(file, 'utf8')).toBe(first);
  });

  it('a worker that dies during the retry of a short-failed task: the reclaim counts the attempt and keeps both errors, the last failure dead-letters it whole', async () => {
    const w = tempDir('metaspn-sf-');
    const a = open(w, { max_attempts: 3 });
    const A: Owner = { id: 'A', pid: 1, host: 'h' };
    await a.enqueue([{ id: 'a', payload }]);
    let [c] = await a.claim({ owner: A, max: 1, lease_ms: 60_000 });
    await a.fail('a', c!.lease, error('first'), 0);
    // The retry is claimed and its handler starts; then the process dies (nothing more of it runs).
    [c] = await a.claim({ owner: A, max: 1, lease_ms: 60_000 });
    expect(c!.task.attempt_count).toBe(1);
    await a.close();
    const b = open(w, { max_attempts: 3, ownerAlive: (o) => o.id !== 'A' });
    const [again] = await b.claim({ owner: ME, max: 1, lease_ms: 60_000 });
    expect(again!.task.attempt_count).toBe(2);
    expect(again!.task.payload).toEqual(payload);
    expect(again!.task.errors.map((e) => [e.attempt, e.kind])).toEqual([
      [1, 'transient'],
      [2, 'owner_gone'],
    ]);
    expect(await b.fail('a', again!.lease, error('third'), 0)).toBe('dead');
    // The reclaim wrote the task long; the failure after it is short again.
    expect(records(w).filter((r) => r.t === 'fail' || r.t === 'reclaim').map((r) => `${r.t as string} ${'task' in r ? 'long' : 'short'}`)).toEqual(['fail short', 'reclaim long', 'fail short']);
    const dead = await b.getDead('a');
    expect(dead?.task.payload).toEqual(payload);
    expect(dead?.errors.map((e) => [e.attempt, e.kind, e.kind === 'owner_gone' ? '' : e.message])).toEqual([
      [1, 'transient', 'first'],
      [2, 'owner_gone', ''],
      [3, 'transient', 'third'],
    ]);
    expect(dead?.errors[0]?.stack).toEqual(error('first').stack);
    expect(dead?.reason?.message).toBe('third');
    await b.close();
    expect(readdirSync(join(w, 'deadletter', 'jobs'))).toEqual(['a.json']);
  });
});

describe('short fail records no writer writes: corrupt (30), salvaged by repair', () => {
  const task = newRecord('jobs', { id: 'a', payload }, 3, T0);
  const enq = (n: number, id: string): LogRecord => ({ t: 'enq', n, at: T0, task: newRecord('jobs', { id, payload: id }, 3, T0) });
  const claim = (l: [number, number][]): LogRecord => ({ t: 'claim', at: T0, o: 'w', pid: 1, host: 'h', ms: 60_000, st: 1, l });
  const short = (n: number, id: string, a: number, f = 1): LogRecord => ({ t: 'fail', at: T0 + 1, o: 'w', n, f, ms: 0, id, a, e: error('boom') });

  const refused = async (w: string, offset: number, reason: RegExp): Promise<void> => {
    const q = open(w);
    const err = await q.stats().then(
      () => null,
      (e: unknown) => e,
    );
    await q.close();
    expect(err).toBeInstanceOf(QueueLogConflictError);
    expect((err as QueueLogConflictError).conflict).toMatchObject({ offset, record: 'fail' });
    expect((err as QueueLogConflictError).conflict.reason).toMatch(reason);
  };

  it('an attempt count that is not the one the failure gives, a second short fail onto the same record, another task id', async () => {
    let l = workspaceWithLog([{ t: 'enq', n: 0, at: T0, task }, claim([[0, 1]]), short(0, 'a', 2)]);
    await refused(l.w, l.offsets[2]!, /short fail of slot 0 gives attempt 2, but the task had 0/);
    l = workspaceWithLog([{ t: 'enq', n: 0, at: T0, task }, claim([[0, 1]]), short(0, 'a', 1), claim([[0, 2]]), short(0, 'a', 2, 2)]);
    await refused(l.w, l.offsets[4]!, /follows another one/);
    l = workspaceWithLog([enq(0, 'a'), enq(1, 'b'), claim([[0, 1]]), short(0, 'b', 1)]);
    await refused(l.w, l.offsets[3]!, /names task b, which is not in that slot/);
    l = workspaceWithLog([enq(0, 'a'), claim([[0, 1]]), { ...short(0, 'a', 1), e: { ...error('x'), kind: 'cosmic' } } as unknown as LogRecord]);
    await refused(l.w, l.offsets[2]!, /unknown error kind "cosmic"/);
  });

  it('repair routes a short fail by its task id and keeps the error on the task', async () => {
    // c is placed in b's slot (a second writer): a conflict; b's short fail before it still belongs to b.
    const { w } = workspaceWithLog([enq(0, 'a'), enq(1, 'b'), claim([[1, 1]]), short(1, 'b', 1), enq(1, 'c')]);
    const q = open(w);
    const r = await q.repair();
    expect(r.conflict?.salvage.relocated).toEqual([expect.objectContaining({ id: 'c', slot: 1, displaced: 'b', new_slot: 2 })]);
    const b = await q.getTask('b');
    expect(b?.task).toMatchObject({ payload: 'b', attempt_count: 1, errors: [{ ...error('boom'), attempt: 1 }] });
    expect(records(w).filter((x) => x.t === 'fail')).toEqual([]);
    await q.close();
  });
});
