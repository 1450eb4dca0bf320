// Replay refuses what cannot happen in a log written under the queue's lock: such a log is
// STATE_CORRUPT (30) naming the byte offset, and `repair` salvages it keeping every task.
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../temp.js';
import { StateCorruptError } from '../../src/guard/errors.js';
import { encodeLine } from '../../src/queue/file/codec.js';
import { FileQueue, type FileQueueOptions } from '../../src/queue/file/file-queue.js';
import { QueueLogConflictError } from '../../src/queue/file/loader.js';
import { listGens, logPath } from '../../src/queue/file/log-io.js';
import type { LogRecord } from '../../src/queue/file/records.js';
import { readStats } from '../../src/queue/file/stats-file.js';
import { newRecord } from '../../src/queue/record.js';
import type { Owner } from '../../src/queue/types.js';

const ME: Owner = { id: 'me', pid: process.pid, host: 'h' };
const T0 = 1_768_478_400_000;
type Rec<T extends LogRecord['t']> = Extract<LogRecord, { t: T }>;
const enq = (n: number, id: string): Rec<'enq'> => ({ t: 'enq', n, at: T0, task: newRecord('jobs', { id, payload: { id } }, 3, T0) });
const claim = (l: [number, number][]): Rec<'claim'> => ({ t: 'claim', at: T0, o: 'w', pid: 1, host: 'h', ms: 60_000, l });
const done = (l: [number, number][]): Rec<'done'> => ({ t: 'done', at: T0, o: 'w', l });

/** A workspace whose queue `jobs` holds exactly these lines; returns it, the log's path and each line's offset. */
function workspaceWith(lines: (LogRecord | string)[]): { w: string; file: string; offsets: number[] } {
  const w = tempDir('metaspn-rc-');
  const dir = join(w, 'queue', 'jobs');
  mkdirSync(dir, { recursive: true });
  const file = logPath(dir, 1);
  const text = lines.map((l) => (typeof l === 'string' ? `${l}\n` : encodeLine(l)));
  const offsets: number[] = [];
  let at = 0;
  for (const t of text) {
    offsets.push(at);
    at += Buffer.byteLength(t);
  }
  writeFileSync(file, text.join(''));
  return { w, file, offsets };
}

const open = (w: string, extra: Partial<FileQueueOptions> = {}): FileQueue => new FileQueue({ name: 'jobs', workspace: w, ownerAlive: () => true, ...extra });

async function corruptAt(w: string, file: string, offset: number): Promise<QueueLogConflictError> {
  const q = open(w);
  try {
    const err = await q.stats().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StateCorruptError);
    expect(err).toBeInstanceOf(QueueLogConflictError);
    const e = err as QueueLogConflictError;
    expect(e.exitCode).toBe(30);
    expect(e.message).toContain(file);
    expect(e.message).toContain(`byte ${offset}`);
    expect(e.hint).toContain(`metaspn doctor --workspace ${w} --repair`);
    expect(e.conflict.offset).toBe(offset);
    return e;
  } finally {
    await q.close();
  }
}

describe('file queue replay: conflicts are STATE_CORRUPT, refusals are not', () => {
  it('an enq into a taken slot names the offset and both tasks, and every operation fails without writing', async () => {
    const { w, file, offsets } = workspaceWith([enq(0, 'a'), enq(1, 'b'), enq(1, 'c')]);
    const e = await corruptAt(w, file, offsets[2]!);
    expect(e.conflict).toMatchObject({ record: 'enq', slot: 1, ids: ['c', 'b'] });
    const size = statSync(file).size;
    const q = open(w);
    await expect(q.enqueue([{ id: 'd', payload: 1 }])).rejects.toThrow(QueueLogConflictError);
    await expect(q.claim({ owner: ME, max: 5, lease_ms: 1000 })).rejects.toThrow(`byte ${offsets[2]}`);
    await expect(q.retry({ by: 'test' })).rejects.toThrow(StateCorruptError);
    // Still corrupt on the next round: the conflict is not forgotten once reported.
    await expect(q.stats()).rejects.toThrow(StateCorruptError);
    await q.close();
    expect(statSync(file).size).toBe(size);
    // The lock-free read `queue stats` uses fails the same way.
    expect(() => readStats(join(w, 'queue', 'jobs'), 'jobs', T0)).toThrow(`byte ${offsets[2]}`);
  });

  it('an enq into a gap (not the next slot) is corrupt', async () => {
    const { w, file, offsets } = workspaceWith([enq(0, 'a'), enq(2, 'b')]);
    const e = await corruptAt(w, file, offsets[1]!);
    expect(e.conflict).toMatchObject({ record: 'enq', slot: 2, ids: ['b'] });
    expect(e.conflict.reason).toContain('next slot was 1');
  });

  it('an id enqueued twice is corrupt (enqueue checks ids first, so no writer does it)', async () => {
    const { w, file, offsets } = workspaceWith([enq(0, 'a'), enq(1, 'a')]);
    const e = await corruptAt(w, file, offsets[1]!);
    expect(e.conflict.reason).toContain('already in slot 0');
  });

  it('a claim or a done of a slot that does not exist is corrupt', async () => {
    const a = workspaceWith([enq(0, 'a'), claim([[0, 1], [5, 1]])]);
    expect((await corruptAt(a.w, a.file, a.offsets[1]!)).conflict).toMatchObject({ record: 'claim', slot: 5 });
    const b = workspaceWith([enq(0, 'a'), claim([[0, 1]]), done([[0, 1]]), done([[1, 1]])]);
    expect((await corruptAt(b.w, b.file, b.offsets[3]!)).conflict).toMatchObject({ record: 'done', slot: 1 });
  });

  it('a snap in a state no writer names is corrupt (it would throw the counts off), and repair keeps its task as ready', async () => {
    const task = newRecord('jobs', { id: 'a', payload: null }, 3, T0);
    const { w, file, offsets } = workspaceWith([{ t: 'snap', n: 0, s: 'nonsense' as never, f: 0, tm: T0, task }]);
    expect(statSync(file).size).toBeGreaterThan(0);
    const e = await corruptAt(w, file, offsets[0]!);
    expect(e.conflict).toMatchObject({ record: 'snap', slot: 0, ids: ['a'] });
    expect(e.conflict.reason).toBe('impossible value: snap: unknown state "nonsense"');
    const q = open(w);
    expect((await q.repair()).conflict?.salvage.made_ready).toEqual([{ id: 'a', was: 'ready' }]);
    expect(await q.stats()).toMatchObject({ ready: 1 });
    await q.close();
  });

  it('records a log may legitimately hold are refused, not corrupt: a stale fence, a claim lost to another', async () => {
    const { w } = workspaceWith([
      enq(0, 'a'),
      enq(1, 'b'),
      claim([[0, 1]]),
      { ...claim([[0, 1]]), o: 'other' },
      done([[0, 7]]),
      { t: 'fail', at: T0, o: 'w', n: 1, f: 3, ms: 0, task: newRecord('jobs', { id: 'b', payload: null }, 3, T0) },
    ]);
    const q = open(w);
    expect(await q.stats()).toMatchObject({ ready: 1, leased: 1, completed: 0 });
    await q.close();
  });

  it('a gap left by an enq line that failed its checksum is explained, and records on that slot are refused', async () => {
    const rotted = encodeLine(enq(1, 'b')).replace('"b"', '"B"').trimEnd();
    const { w } = workspaceWith([enq(0, 'a'), rotted, enq(2, 'c'), claim([[1, 1]]), claim([[2, 1]])]);
    const q = open(w, { warn: () => undefined });
    expect(await q.stats()).toMatchObject({ ready: 1, leased: 1, corrupt_records: 1 });
    await q.close();
  });

  it('a rerun written over a completed task kept only as a tombstone replays with exact counts', async () => {
    const w = tempDir('metaspn-rc-');
    const q = open(w, { compact_min_bytes: 1 });
    await q.enqueue([{ id: 'a', payload: 1 }, { id: 'b', payload: 2 }]);
    const got = await q.claim({ owner: ME, max: 2, lease_ms: 60_000 });
    for (const g of got) await q.complete(g.task.id, g.lease);
    const dir = join(w, 'queue', 'jobs');
    expect(listGens(dir).at(-1)).toBeGreaterThan(1);
    expect(readFileSync(logPath(dir, listGens(dir).at(-1)!), 'utf8')).toContain('"t":"kept"');
    expect(await q.enqueue([{ id: 'a', payload: 1 }], { rerun_completed: true })).toMatchObject({ rerun: ['a'] });
    await q.close();
    const again = open(w);
    expect(await again.stats()).toMatchObject({ ready: 1, completed: 1 });
    await again.close();
  });
});

describe('file queue repair of a conflicted log', () => {
  it('keeps both tasks of a taken slot, makes the ones involved ready, and writes a clean generation', async () => {
    // a and b enqueued by one writer; c and d by another that numbered from slot 1 too.
    const { w, file } = workspaceWith([enq(0, 'a'), enq(1, 'b'), claim([[1, 1]]), done([[1, 1]]), enq(1, 'c'), enq(2, 'd'), { ...claim([[2, 1]]), at: Date.now() }]);
    const q = open(w, { warn: () => undefined });
    const r = await q.repair();
    expect(r.conflict?.file).toBe(file);
    expect(r.conflict?.conflict).toMatchObject({ record: 'enq', slot: 1 });
    expect(r.conflict?.salvage.relocated).toEqual([expect.objectContaining({ id: 'c', slot: 1, displaced: 'b', new_slot: 2 })]);
    // b (completed, its slot taken) and c are both ready again; d's lease is not in doubt and is kept.
    expect(r.conflict?.salvage.made_ready.map((x) => [x.id, x.was])).toEqual([
      ['b', 'completed'],
      ['c', 'ready'],
    ]);
    expect(await q.stats()).toMatchObject({ ready: 3, leased: 1, completed: 0, dead: 0 });
    await q.close();
    const dir = join(w, 'queue', 'jobs');
    expect(listGens(dir)).toEqual([2]);
    const fresh = open(w);
    expect(await fresh.stats()).toMatchObject({ ready: 3, leased: 1, completed: 0 });
    const got = await fresh.claim({ owner: ME, max: 10, lease_ms: 60_000 });
    expect(got.map((g) => g.task.id).sort()).toEqual(['a', 'b', 'c']);
    expect(await fresh.states(['a', 'b', 'c', 'd'])).toEqual(['leased', 'leased', 'leased', 'leased']);
    await fresh.close();
  });

  it('the shape of a lock taken from a live holder: every acknowledged task of both writers is there once', async () => {
    // B enqueued 5 tasks from slot 1 on; A, which had numbered its 10 from slot 1 too, appended after.
    const b = Array.from({ length: 5 }, (_, i) => enq(1 + i, `B${i}`));
    const a = Array.from({ length: 10 }, (_, i) => enq(1 + i, `A${i}`));
    const { w } = workspaceWith([enq(0, 'x'), ...b, ...a]);
    const q = open(w, { warn: () => undefined });
    const r = await q.repair();
    expect(r.conflict?.salvage.relocated.map((x) => x.id)).toEqual(['A0', 'A1', 'A2', 'A3', 'A4']);
    expect(await q.stats()).toMatchObject({ ready: 16, leased: 0, completed: 0 });
    const got = await q.claim({ owner: ME, max: 100, lease_ms: 60_000 });
    const ids = got.map((g) => g.task.id);
    expect(new Set(ids).size).toBe(16);
    expect(ids.sort()).toEqual(['x', ...a.map((x) => x.task.id), ...b.map((x) => x.task.id)].sort());
    await q.close();
  });

  it('keeps an id placed twice once, and leaves a dead-lettered task in the dead letters', async () => {
    const b = newRecord('jobs', { id: 'b', payload: null }, 1, T0);
    const { w } = workspaceWith([
      enq(0, 'a'),
      { ...enq(1, 'b'), task: b },
      claim([[1, 1]]),
      { t: 'dead', at: T0, o: 'w', n: 1, f: 1, task: { ...b, attempt_count: 1 } },
      enq(1, 'a'),
    ]);
    const q = open(w, { warn: () => undefined });
    const r = await q.repair();
    expect(r.conflict?.salvage.duplicates).toEqual([expect.objectContaining({ id: 'a', slot: 1 })]);
    // b's slot number was taken by the duplicate: b is involved, but dead-lettered, so it stays there.
    expect(r.conflict?.salvage.left).toEqual([{ id: 'b', state: 'dead' }]);
    expect(await q.stats()).toMatchObject({ ready: 1, dead: 1 });
    expect((await q.listDead()).map((d) => d.task.id)).toEqual(['b']);
    await q.close();
  });

  it('leaves a clean log as it is', async () => {
    const { w, file } = workspaceWith([enq(0, 'a')]);
    const before = readFileSync(file);
    const q = open(w);
    expect((await q.repair()).conflict).toBeUndefined();
    await q.close();
    expect(readFileSync(file).equals(before)).toBe(true);
  });
});
