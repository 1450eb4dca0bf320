// Fresh tasks enqueued together are written ENQS_MAX to a line (`enqs`): what a reader gets back
// is each task's whole record as a line of its own would give it, and a damaged line is salvaged
// entry by entry.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../temp.js';
import { workspaceWithLog } from './log-fixture.js';
import { Findings } from '../../src/doctor/finding.js';
import { checkQueue } from '../../src/doctor/queues.js';
import { scanLines } from '../../src/queue/file/codec.js';
import { FileQueue } from '../../src/queue/file/file-queue.js';
import { impossibleValue } from '../../src/queue/file/impossible.js';
import { IndexState } from '../../src/queue/file/index-state.js';
import { QueueLogConflictError } from '../../src/queue/file/loader.js';
import { listGens, logPath } from '../../src/queue/file/log-io.js';
import { ENQS_MAX, entryRecord, enqsOf, type EnqsRecord, type LogRecord } from '../../src/queue/file/records.js';
import { MemoryQueue } from '../../src/queue/memory.js';
import { newRecord } from '../../src/queue/record.js';
import type { NewTask } from '../../src/queue/types.js';
import { workspacePaths } from '../../src/storage/paths.js';

const T0 = 1_768_478_400_000;
const OWNER = { id: 'me', pid: process.pid, host: 'h' };
const open = (w: string): FileQueue => new FileQueue({ name: 'jobs', workspace: w, max_attempts: 3, ownerAlive: () => true, warn: () => undefined });

/** The records of the queue's current log generation, in order. */
function logRecords(w: string): Record<string, unknown>[] {
  const dir = join(w, 'queue', 'jobs');
  const gens = listGens(dir);
  const buf = readFileSync(logPath(dir, gens[gens.length - 1]!));
  const out: Record<string, unknown>[] = [];
  scanLines(buf, 0, (l) => out.push(l.record as Record<string, unknown>));
  return out;
}

const workspaceWith = (lines: LogRecord[]): { w: string; offsets: number[] } => workspaceWithLog(lines, 'metaspn-enqs-');

const many = (n: number, from = 0): NewTask[] => Array.from({ length: n }, (_, i) => ({ id: `t${from + i}`, payload: { i: from + i } }));

describe('enqs: fresh tasks enqueued together, one line per ENQS_MAX', () => {
  it('a bulk enqueue writes full lines and a short last one; a lone task is an `enq`', async () => {
    const w = tempDir('metaspn-enqs-');
    const q = open(w);
    const r = await q.enqueue(many(2 * ENQS_MAX + 44));
    expect(r.added).toHaveLength(2 * ENQS_MAX + 44);
    await q.enqueue([{ id: 'alone', payload: 1 }]);
    await q.close();
    const recs = logRecords(w).filter((x) => x.t === 'enq' || x.t === 'enqs');
    expect(recs.map((x) => [x.t, x.n, (x.l as unknown[] | undefined)?.length ?? 1])).toEqual([
      ['enqs', 0, ENQS_MAX],
      ['enqs', ENQS_MAX, ENQS_MAX],
      ['enqs', 2 * ENQS_MAX, 44],
      ['enq', 2 * ENQS_MAX + 44, 1],
    ]);
    expect(recs[0]).toMatchObject({ q: 'jobs', x: 3, l: expect.arrayContaining([['t0', { i: 0 }]]) });
  });

  it('reads back exactly what a line per task gave: whole records, defaults, own max_attempts and groups, in order', async () => {
    const tasks: NewTask[] = [{ id: 'a', payload: { x: 1 } }, { id: 'b', payload: null }, { id: 'c', payload: 'p', max_attempts: 7 }, { id: 'd', payload: [1, 2], group: 'g1' }, { id: 'e', payload: null, max_attempts: 3, group: 'g2' }];
    const w = tempDir('metaspn-enqs-');
    const q = open(w);
    await q.enqueue(tasks);
    await q.close();
    const line = logRecords(w).find((x) => x.t === 'enqs')!;
    expect(line.l).toEqual([['a', { x: 1 }], ['b', null], ['c', 'p', 7], ['d', [1, 2], 3, 'g1'], ['e', null, 3, 'g2']]);
    // Against the reference queue, after a reopen (the records come from the line on disk).
    const mem = new MemoryQueue({ name: 'jobs', max_attempts: 3 });
    await mem.enqueue(tasks);
    const again = open(w);
    for (const t of tasks) {
      const [f, m] = [await again.getTask(t.id), await mem.getTask(t.id)];
      expect({ ...f!.task, created_at: 0, updated_at: 0 }).toEqual({ ...m!.task, created_at: 0, updated_at: 0 });
      expect(f!.task.created_at).toBe(f!.task.updated_at);
    }
    // Claimed one at a time, as a worker with concurrency 1 takes them: each whole, in enqueue order.
    const got: string[] = [];
    for (let i = 0; i < tasks.length; i++) {
      const [c] = await again.claim({ owner: OWNER, max: 1, lease_ms: 60_000 });
      expect(c!.task).toEqual((await again.getTask(c!.task.id))!.task);
      got.push(c!.task.id);
    }
    expect(got).toEqual(['a', 'b', 'c', 'd', 'e']);
    await again.close();
  });

  it('an id given twice in one call is added once; ids already queued are existing', async () => {
    const w = tempDir('metaspn-enqs-');
    const q = open(w);
    await q.enqueue([{ id: 'old', payload: null }]);
    const r = await q.enqueue([{ id: 'x', payload: null }, { id: 'old', payload: null }, { id: 'y', payload: null }, { id: 'x', payload: null }, ...many(ENQS_MAX)]);
    expect(r.added).toEqual(['x', 'y', ...many(ENQS_MAX).map((t) => t.id)]);
    expect(r.existing).toEqual(['old', 'x']);
    expect((await q.stats()).ready).toBe(3 + ENQS_MAX);
    await q.close();
    const again = open(w);
    expect((await again.stats()).ready).toBe(3 + ENQS_MAX);
    await again.close();
  });

  it('each entry accounts for its share of the line in the live bytes (what triggers a compaction)', () => {
    const idx = new IndexState(() => null);
    const line = enqsOf(0, T0, many(4), 'jobs', 3);
    idx.apply(line, 0, 400);
    expect(idx.liveBytes).toBe(400);
    expect([...idx.slots.weight.subarray(0, 4)]).toEqual([100, 100, 100, 100]);
    expect(entryRecord(line, 2)).toEqual({ t: 'enq', n: 2, at: T0, i: 2, task: newRecord('jobs', { id: 't2', payload: { i: 2 } }, 3, T0) });
  });
});

describe('enqs with values no writer writes', () => {
  const enqs = (l: unknown[], extra: Record<string, unknown> = {}): LogRecord => ({ t: 'enqs', n: 0, at: T0, q: 'jobs', x: 3, l, ...extra }) as unknown as LogRecord;

  it('pure rules: entries with an id, counts and groups in range', () => {
    expect(impossibleValue(enqs([['a', 1]]))).toBeNull();
    expect(impossibleValue(enqs([]))).toBe('enqs: no list of tasks');
    expect(impossibleValue(enqs([['a', 1, -1]]))).toMatch(/^enqs: task a: max_attempts -1/);
    expect(impossibleValue(enqs([['a', 1, 3, 7]]))).toMatch(/^enqs: task a: group 7 is not a string/);
    expect(impossibleValue(enqs([[5, 1]]))).toMatch(/^enqs: \[5,1\] is not a task entry/);
    expect(impossibleValue(enqs([['a', 1]], { x: 1.5 }))).toMatch(/^enqs: max_attempts x 1.5/);
    expect(impossibleValue(enqs([['a', 1]], { n: -1 }))).toMatch(/^enqs: slot -1/);
  });

  it('the queue refuses the log (30) at the line; repair keeps every entry that has an id, in order, and the slots after a hole keep their tasks', async () => {
    const bad: EnqsRecord = { t: 'enqs', n: 0, at: T0, q: 'jobs', x: 3, l: [['a', 1], [{ no: 'id' }, 2] as never, ['c', 3, -4]] };
    const { w, offsets } = workspaceWith([bad, { t: 'enq', n: 3, at: T0, task: newRecord('jobs', { id: 'd', payload: null }, 3, T0) }]);
    const q = open(w);
    const err = await q.stats().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(QueueLogConflictError);
    expect((err as QueueLogConflictError).exitCode).toBe(30);
    expect((err as QueueLogConflictError).conflict).toMatchObject({ offset: offsets[0], record: 'enqs' });
    const r = await q.repair();
    expect(r.conflict?.salvage.impossible).toEqual([{ offset: offsets[0], record: 'enqs', reason: expect.stringMatching(/^enqs: \[\{"no":"id"\},2\] is not a task entry/), kept: true }]);
    expect(await q.states(['a', 'c', 'd'])).toEqual(['ready', 'ready', 'ready']);
    const c = await q.getTask('c');
    expect(c!.task).toMatchObject({ max_attempts: 5, attempt_count: 0, payload: 3 });
    await q.close();
    // The new generation replays strictly, and every task reads back whole.
    const fresh = open(w);
    const got = await fresh.claim({ owner: OWNER, max: 5, lease_ms: 60_000 });
    expect(got.map((g) => [g.task.id, g.task.payload])).toEqual([
      ['a', 1],
      ['c', 3],
      ['d', null],
    ]);
    await fresh.close();
    const f = new Findings();
    checkQueue(workspacePaths(w), 'jobs', f);
    expect(f.list.filter((x) => x.severity === 'error')).toEqual([]);
  });
});
