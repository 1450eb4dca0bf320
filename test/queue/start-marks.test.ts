// Start marks (docs/QUEUE-FORMAT.md, "Start marks"): a worker's starts go to a file of its own, no
// locked round; whoever reclaims its leases reads that file to tell started leases from buffered ones.
import { appendFileSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../temp.js';
import { encodeLine } from '../../src/queue/file/codec.js';
import { FileQueue, type FileQueueOptions } from '../../src/queue/file/file-queue.js';
import { listGens, logPath } from '../../src/queue/file/log-io.js';
import { markFilesOf, startMarksPath, startsDir } from '../../src/queue/file/start-marks.js';
import type { ClaimedTask, Owner } from '../../src/queue/types.js';
import { FakeClock } from './conformance.js';

const ME: Owner = { id: 'me', pid: process.pid, host: 'h' };
const OTHER: Owner = { id: 'other', pid: 999_999, host: 'h' };
const ws = (): string => tempDir('metaspn-marks-');
const dirOf = (w: string): string => join(w, 'queue', 'jobs');
const ids = (n: number, p = 't'): { id: string; payload: number }[] => Array.from({ length: n }, (_, i) => ({ id: `${p}${i}`, payload: i }));

/** The records of the current log generation, in order. */
function records(w: string): { t: string; o?: string; l?: [number, number][] }[] {
  const dir = dirOf(w);
  return readFileSync(logPath(dir, listGens(dir).at(-1)!), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { r: { t: string } }).r);
}

/** The one start-mark file of `owner` in the queue of `w`. */
function markFile(w: string, owner: Owner): string {
  const files = markFilesOf(dirOf(w), owner.id);
  expect(files).toHaveLength(1);
  return files[0]!;
}

/** The `started` lines of a start-mark file: [id, fence] per mark, in order. */
function marksIn(path: string): [string, number][] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { r: { t: string; l?: [string, number][] } }).r)
    .flatMap((r) => (r.t === 'started' ? r.l! : []));
}

function setup(extra: Partial<FileQueueOptions> = {}): { w: string; clock: FakeClock; alive: Set<string>; open: () => FileQueue } {
  const w = ws();
  const clock = new FakeClock();
  const alive = new Set([ME.id, OTHER.id]);
  const open = (): FileQueue => new FileQueue({ name: 'jobs', workspace: w, now: clock.now, ownerAlive: (o) => alive.has(o.id), ...extra });
  return { w, clock, alive, open };
}

/** Enqueues `n` tasks named `prefix`0… and claims them all for OTHER, to be started later (a worker's buffer). */
async function buffered(q: FileQueue, prefix: string, n: number, lease_ms = 60_000): Promise<ClaimedTask[]> {
  await q.enqueue(ids(n, prefix));
  return q.claim({ owner: OTHER, max: n, lease_ms, defer_start: true });
}

describe('file queue: start marks', () => {
  it('a start is a mark in its owner file, not a log record; a crash before any round leaves it there, and the reclaim charges only the marked leases, then drops the file', async () => {
    const { w, alive, open } = setup();
    const a = open();
    const got = await buffered(a, 'x', 4);
    expect(await a.start('x0', got[0]!.lease)).toBe(true);
    expect(await a.start('x2', got[2]!.lease)).toBe(true);
    const file = markFile(w, OTHER);
    expect(marksIn(file)).toEqual([
      ['x0', 1],
      ['x2', 1],
    ]);
    expect(records(w).filter((r) => r.t === 'start')).toEqual([]);
    // The owner dies here: nothing of its starts is in the log, only in its file.
    alive.delete(OTHER.id);
    const b = open();
    expect((await b.reclaimExpired()).sort()).toEqual(['x0', 'x1', 'x2', 'x3']);
    const again = await b.claim({ owner: ME, max: 4, lease_ms: 60_000 });
    expect(Object.fromEntries(again.map((g) => [g.task.id, g.task.attempt_count]))).toEqual({ x0: 1, x1: 0, x2: 1, x3: 0 });
    expect(again.find((g) => g.task.id === 'x2')!.task.errors[0]).toMatchObject({ kind: 'owner_gone' });
    // The gone owner holds nothing any more: its file went with the reclaim.
    expect(existsSync(file)).toBe(false);
    await b.close();
  });

  it('a torn or altered line of a mark file marks nothing: the lease it names is given back uncharged', async () => {
    const { w, alive, open } = setup();
    const a = open();
    const got = await buffered(a, 'y', 3);
    expect(await a.start('y0', got[0]!.lease)).toBe(true);
    const file = markFile(w, OTHER);
    // y1's mark with a checksum that does not match, then y2's cut short (a writer killed mid-write).
    const bad = encodeLine({ t: 'started', l: [['y1', 1]] }).replace('"y1"', '"y9"');
    const torn = encodeLine({ t: 'started', l: [['y2', 1]] }).slice(0, 30);
    appendFileSync(file, bad + torn);
    alive.delete(OTHER.id);
    const b = open();
    expect((await b.reclaimExpired()).sort()).toEqual(['y0', 'y1', 'y2']);
    expect(await b.stats()).toMatchObject({ ready: 3, totals: { failed: 1 } });
    const again = await b.claim({ owner: ME, max: 3, lease_ms: 60_000 });
    expect(Object.fromEntries(again.map((g) => [g.task.id, g.task.attempt_count]))).toEqual({ y0: 1, y1: 0, y2: 0 });
    await b.close();
  });

  it('a mark of another fence (an earlier lease of the task) does not start the current lease', async () => {
    const { w, clock, alive, open } = setup();
    const a = open();
    await a.enqueue(ids(1, 'z'));
    const [first] = await a.claim({ owner: OTHER, max: 1, lease_ms: 2000, defer_start: true });
    expect(await a.start('z0', first!.lease)).toBe(true);
    expect(await a.complete('z0', first!.lease)).toBe(true);
    await a.enqueue([{ id: 'z0', payload: 0 }], { rerun_completed: true });
    const [second] = await a.claim({ owner: OTHER, max: 1, lease_ms: 2000, defer_start: true });
    expect(second!.lease.fence).toBe(2);
    expect(marksIn(markFile(w, OTHER))).toEqual([['z0', 1]]);
    clock.advance(2001);
    alive.delete(OTHER.id);
    expect(await a.reclaimExpired()).toEqual(['z0']);
    expect(await a.stats()).toMatchObject({ ready: 1, totals: { failed: 0 } });
    await a.close();
  });

  it('with less than a second of its lease left, a start takes a locked round (a start record) and is refused once the lease is lost', async () => {
    const { w, clock, open } = setup();
    const q = open();
    const got = await buffered(q, 's', 2, 900);
    expect(await q.start('s0', got[0]!.lease)).toBe(true);
    expect(existsSync(startsDir(dirOf(w)))).toBe(false);
    expect(records(w).filter((r) => r.t === 'start')).toEqual([expect.objectContaining({ o: OTHER.id, l: [[0, 1]] })]);
    clock.advance(901);
    await q.claim({ owner: ME, max: 2, lease_ms: 60_000, defer_start: true });
    expect(await q.start('s1', got[1]!.lease)).toBe(false);
    await q.close();
  });

  it('a renewal lets a lease near its end be marked again; the renewed expiry is what counts', async () => {
    const { w, clock, open } = setup();
    const q = open();
    await q.enqueue(ids(1, 'r'));
    const [got] = await q.claim({ owner: OTHER, max: 1, lease_ms: 1500, defer_start: true });
    clock.advance(1000);
    expect(await q.renewLease('r0', got!.lease, 1500)).toBe(true);
    expect(await q.start('r0', got!.lease)).toBe(true);
    expect(marksIn(markFile(w, OTHER))).toEqual([['r0', 1]]);
    expect(records(w).filter((r) => r.t === 'start')).toEqual([]);
    await q.close();
  });

  it('past start_marks_fold_bytes the marks of leases still held go into the log as one start record, and the file is emptied; started leases stay started', async () => {
    const { w, alive, open } = setup({ start_marks_fold_bytes: 200 });
    const a = open();
    const got = await buffered(a, 'f', 40);
    // Start 30 of them, one line each; complete the first 20, so 10 are held started when it folds.
    for (let i = 0; i < 30; i++) expect(await a.start(`f${i}`, got[i]!.lease)).toBe(true);
    for (let i = 0; i < 20; i++) expect(await a.complete(`f${i}`, got[i]!.lease)).toBe(true);
    const file = markFile(w, OTHER);
    expect(await a.start('f30', got[30]!.lease)).toBe(true);
    await a.stats();
    const starts = records(w).filter((r) => r.t === 'start');
    expect(starts.length).toBeGreaterThanOrEqual(1);
    // Each started lease still held is in the log (a fold) or still in the file (marked since).
    const logged = new Set(starts.flatMap((r) => r.l!.map(([n]) => `f${n}`)));
    const inFile = marksIn(file).map(([id]) => id);
    for (let i = 20; i <= 30; i++) expect(logged.has(`f${i}`) || inFile.includes(`f${i}`)).toBe(true);
    expect(inFile.length).toBeLessThan(31);
    alive.delete(OTHER.id);
    const b = open();
    expect((await b.reclaimExpired()).length).toBe(20);
    // f20..f30 started (one attempt each), f31..f39 never did.
    expect(await b.stats()).toMatchObject({ completed: 20, ready: 20, totals: { failed: 11 } });
    await b.close();
  });

  it('close puts the marks of leases still held into the log and removes the file', async () => {
    const { w, alive, open } = setup();
    const a = open();
    const got = await buffered(a, 'c', 3);
    expect(await a.start('c0', got[0]!.lease)).toBe(true);
    expect(await a.start('c1', got[1]!.lease)).toBe(true);
    expect(await a.complete('c1', got[1]!.lease)).toBe(true);
    await a.close();
    expect(markFilesOf(dirOf(w), OTHER.id)).toEqual([]);
    expect(records(w).filter((r) => r.t === 'start')).toEqual([expect.objectContaining({ o: OTHER.id, l: [[0, 1]] })]);
    alive.delete(OTHER.id);
    const b = open();
    expect((await b.reclaimExpired()).sort()).toEqual(['c0', 'c2']);
    expect(await b.stats()).toMatchObject({ ready: 2, completed: 1, totals: { failed: 1 } });
    await b.close();
  });

  it('the file of a gone owner that holds no lease is removed by the next process that claims; a live owner keeps its file', async () => {
    const { w, alive, open } = setup();
    const dir = startsDir(dirOf(w));
    const a = open();
    await a.enqueue(ids(2, 'g'));
    // A worker killed after its leases ended: its file is all that is left of it.
    const [g0] = await a.claim({ owner: OTHER, max: 1, lease_ms: 60_000, defer_start: true });
    expect(await a.start('g0', g0!.lease)).toBe(true);
    expect(await a.complete('g0', g0!.lease)).toBe(true);
    const [g1] = await a.claim({ owner: ME, max: 1, lease_ms: 60_000, defer_start: true });
    expect(await a.start('g1', g1!.lease)).toBe(true);
    expect(readdirSync(dir).map((f) => f.split('.')[0]).sort()).toEqual(['me', 'other']);
    // Not the owner line of a mark file: left alone.
    writeFileSync(join(dir, 'notes.txt'), 'x');
    alive.delete(OTHER.id);
    const b = open();
    expect(await b.claim({ owner: ME, max: 1, lease_ms: 60_000 })).toEqual([]);
    expect(readdirSync(dir).map((f) => f.split('.')[0]).sort()).toEqual(['me', 'notes']);
    await b.close();
    expect(await a.complete('g1', g1!.lease)).toBe(true);
    await a.close();
    expect(readdirSync(dir).sort()).toEqual(['notes.txt']);
  });

  it('two instances of one queue with the same owner write a file each; a reclaim reads both and drops both', async () => {
    const { w, alive, open } = setup();
    const a = open();
    const b = open();
    await a.enqueue(ids(4, 'd'));
    const fromA = await a.claim({ owner: OTHER, max: 2, lease_ms: 60_000, defer_start: true });
    const fromB = await b.claim({ owner: OTHER, max: 2, lease_ms: 60_000, defer_start: true });
    expect(await a.start(fromA[0]!.task.id, fromA[0]!.lease)).toBe(true);
    expect(await b.start(fromB[1]!.task.id, fromB[1]!.lease)).toBe(true);
    expect(markFilesOf(dirOf(w), OTHER.id)).toHaveLength(2);
    alive.delete(OTHER.id);
    const c = open();
    expect((await c.reclaimExpired()).sort()).toEqual(['d0', 'd1', 'd2', 'd3']);
    expect(await c.stats()).toMatchObject({ ready: 4, totals: { failed: 2 } });
    expect(markFilesOf(dirOf(w), OTHER.id)).toEqual([]);
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  it('a mark left from an earlier life of a task id (dropped by a compaction, enqueued again, fences from 1 again) never starts the new lease', async () => {
    const { w, clock, alive, open } = setup({ completed_retention_ms: 1000 });
    const a = open();
    await a.enqueue(ids(1, 'e'));
    const [first] = await a.claim({ owner: OTHER, max: 1, lease_ms: 60_000, defer_start: true });
    expect(await a.start('e0', first!.lease)).toBe(true);
    expect(await a.complete('e0', first!.lease)).toBe(true);
    clock.advance(2000);
    await a.compact();
    // Past retention: the id is forgotten, so it is enqueued afresh and its first lease has fence 1 again.
    expect(await a.enqueue(ids(1, 'e'))).toEqual({ added: ['e0'], existing: [], rerun: [] });
    const [again] = await a.claim({ owner: OTHER, max: 1, lease_ms: 60_000, defer_start: true });
    expect(again!.lease.fence).toBe(first!.lease.fence);
    // The compaction's new generation emptied the file (in the round after it): no mark of e0 is left.
    expect(marksIn(markFile(w, OTHER))).toEqual([]);
    alive.delete(OTHER.id);
    const b = open();
    expect(await b.reclaimExpired()).toEqual(['e0']);
    expect(await b.stats()).toMatchObject({ ready: 1, totals: { failed: 0 } });
    await Promise.all([a.close(), b.close()]);
  });

  it('an owner id that is not a plain file name gets a hashed file name', () => {
    expect(startMarksPath('/q', '../x y')).toMatch(/^\/q\/starts\/h-[0-9a-f]{32}\.[0-9a-f]{8}\.jsonl$/);
    expect(startMarksPath('/q', '4242-1a2b3c4d')).toMatch(/^\/q\/starts\/4242-1a2b3c4d\.[0-9a-f]{8}\.jsonl$/);
  });
});
