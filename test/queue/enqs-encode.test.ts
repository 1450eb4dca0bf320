// A bulk enqueue encodes its `enqs` lines straight from the tasks (LineBuffer.addEnqs) and applies
// them without building their records (Round.emitFresh): the bytes must be those of the record
// enqsOf makes, and the state the one a replay of the log builds.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../temp.js';
import { LineBuffer } from '../../src/queue/file/codec.js';
import { FileQueue } from '../../src/queue/file/file-queue.js';
import { listGens, logPath } from '../../src/queue/file/log-io.js';
import { enqsOf, ENQS_MAX } from '../../src/queue/file/records.js';
import { FreshBatch, IdIndex } from '../../src/queue/file/slots.js';
import type { NewTask } from '../../src/queue/types.js';

const open = (w: string): FileQueue => new FileQueue({ name: 'jobs', workspace: w, max_attempts: 3, ownerAlive: () => true, warn: () => undefined });

/** The bytes `add` writes for enqsOf's record of these tasks, and the bytes addEnqs writes. */
function bothWays(tasks: NewTask[], n: number, at: number, x: number, m?: number): [Buffer, Buffer] {
  const a = new LineBuffer();
  const rec = enqsOf(n, at, tasks, 'jobs', x);
  if (m !== undefined) rec.m = m;
  a.add(rec);
  const b = new LineBuffer();
  const head = `{"t":"enqs","n":${n},"at":${at},"q":"jobs","x":${x},"l":[`;
  const tail = m === undefined ? ']}' : `],"m":${JSON.stringify(m)}}`;
  const picks = Int32Array.from(tasks.keys());
  const len = b.addEnqs(head, tasks, picks, tasks.length, x, tail);
  expect(len).toBe(b.length);
  return [Buffer.from(a.bytes()), Buffer.from(b.bytes())];
}

describe('enqs lines encoded straight from the tasks', () => {
  it('are byte for byte the line of the record enqsOf makes: payloads of every kind, own max_attempts, groups, m', () => {
    const tasks: NewTask[] = [
      { id: 'a1', payload: { n: 1, s: 'é "q" \\ \u2028 😀' } },
      { id: 'b.2:x@y-z_', payload: 'plain' },
      { id: 'c', payload: undefined, max_attempts: 5 },
      { id: 'd', group: 'g/1.a:b_c-d', payload: [1, 2, null] },
      { id: 'e', payload: null, max_attempts: 3 },
      { id: 'f', payload: 0 },
      { id: 'g', payload: false },
      { id: 'h', payload: { big: 'x'.repeat(40), when: new Date(0) } },
      { id: 'i', payload: 1e21 },
      { id: 'j', payload: undefined, max_attempts: 0, group: 'solo' },
    ];
    for (const m of [undefined, 1234.5678, 0]) {
      const [want, got] = bothWays(tasks, 7, 1_768_478_400_123, 3, m);
      expect(got.toString('utf8')).toBe(want.toString('utf8'));
      expect(got.equals(want)).toBe(true);
    }
  });

  it('keep the line written so far when the buffer grows in the middle of one (entries far larger than 64 KiB)', () => {
    const tasks: NewTask[] = Array.from({ length: ENQS_MAX }, (_, i) => ({ id: `t${i}`, payload: { i, pad: 'é'.repeat(700 + i) } }));
    const [want, got] = bothWays(tasks, 0, 1_768_478_400_000, 3);
    expect(got.length).toBeGreaterThan(1 << 16);
    expect(got.equals(want)).toBe(true);
  });

  it('FreshBatch finds an id noted twice, whatever its fingerprint, and forgets them all on clear', () => {
    const batch = new FreshBatch(ENQS_MAX);
    const ids = new IdIndex(() => null);
    for (let i = 0; i < ENQS_MAX; i++) expect(ids.getFresh(`id${i}`, batch, i)).toBe(-1);
    expect(batch.count).toBe(ENQS_MAX);
    expect(Array.from(batch.picks.subarray(0, 3))).toEqual([0, 1, 2]);
    for (let i = 0; i < ENQS_MAX; i += 7) expect(ids.getFresh(`id${i}`, batch, 999)).toBe(-2);
    expect(() => ids.getFresh('one-more', batch, 0)).toThrow(RangeError);
    batch.clear();
    expect(batch.count).toBe(0);
    expect(ids.getFresh('id0', batch, 5)).toBe(-1);
    expect(batch.picks[0]).toBe(5);
  });

  it('a bulk enqueue (ids given twice, groups, own max_attempts) answers as a replay of its log does', async () => {
    const w = tempDir('metaspn-enqs-encode-');
    const q = open(w);
    const tasks: NewTask[] = [];
    for (let i = 0; i < 1000; i++) tasks.push({ id: `t${i}`, payload: { i }, ...(i % 97 === 0 ? { group: `g${i % 3}` } : {}), ...(i % 89 === 0 ? { max_attempts: 9 } : {}) });
    tasks.push({ id: 't5', payload: null }, { id: 't999', payload: null });
    const first = await q.enqueue(tasks);
    expect(first.added).toEqual(tasks.slice(0, 1000).map((t) => t.id));
    expect(first.existing).toEqual(['t5', 't999']);
    // Given twice within one line's worth of tasks, and again more than a line apart.
    const v = Array.from({ length: 300 }, (_, i) => `v${i}`);
    const task = (id: string): NewTask => ({ id, payload: undefined });
    const second = await q.enqueue([task('u0'), task('u1'), task('u0'), ...v.map(task), task('u1'), task('t3')]);
    expect(second.added).toEqual(['u0', 'u1', ...v]);
    expect(second.existing).toEqual(['u0', 'u1', 't3']);

    const fresh = open(w);
    const probe = ['t0', 't178', 't194', 't999', 'u0', 'v299'];
    const mine = await Promise.all(probe.map((id) => q.getTask(id)));
    expect(await Promise.all(probe.map((id) => fresh.getTask(id)))).toEqual(mine);
    expect(mine[1]?.task).toMatchObject({ id: 't178', payload: { i: 178 }, max_attempts: 9, attempt_count: 0 });
    expect(mine[2]?.task.group).toBe('g2');
    expect(mine[4]?.task).toMatchObject({ id: 'u0', payload: null, max_attempts: 3 });
    // Wall times read from each process's clock (they may differ by a millisecond) left out.
    const { next_due_at: _a, oldest_ready_at: _c, ...stats } = await q.stats();
    const { next_due_at: _b, oldest_ready_at: _d, ...replayed } = await fresh.stats();
    expect(replayed).toEqual(stats);
    expect(stats.ready).toBe(1302);
    await fresh.close();
    const claimed = await q.claim({ owner: { id: 'me', pid: process.pid, host: 'h' }, max: 2000, lease_ms: 60_000 });
    expect(claimed.map((c) => c.task.id)).toEqual([...tasks.slice(0, 1000).map((t) => t.id), 'u0', 'u1', ...v]);
    await q.close();
    // Lines of ENQS_MAX tasks: 1000 = 7 full and one of 104; 302 = 2 full and one of 46.
    const dir = join(w, 'queue', 'jobs');
    const gens = listGens(dir);
    const text = readFileSync(logPath(dir, gens[gens.length - 1]!), 'utf8');
    expect(text.split('\n').filter((l) => l.includes('"t":"enqs"')).length).toBe(11);
  });
});
