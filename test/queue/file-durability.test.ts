import { appendFileSync, existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../temp.js';
import { FileQueue, type FileQueueOptions } from '../../src/queue/file/file-queue.js';
import { listGens, logPath } from '../../src/queue/file/log-io.js';
import { readStats } from '../../src/queue/file/stats-file.js';
import type { Owner } from '../../src/queue/types.js';
import { FakeClock } from './conformance.js';

const ME: Owner = { id: 'me', pid: process.pid, host: 'h' };
const ws = (): string => tempDir('metaspn-fq-');
const open = (workspace: string, extra: Partial<FileQueueOptions> = {}): FileQueue =>
  new FileQueue({ name: 'jobs', workspace, ownerAlive: () => true, ...extra });
const currentLog = (w: string): string => {
  const dir = join(w, 'queue', 'jobs');
  return logPath(dir, listGens(dir).at(-1)!);
};
const ids = (n: number, p = 't'): { id: string; payload: number }[] => Array.from({ length: n }, (_, i) => ({ id: `${p}${i}`, payload: i }));

describe('file queue: durability and recovery', () => {
  it('another instance (process) sees every acknowledged change', async () => {
    const w = ws();
    const a = open(w);
    await a.enqueue(ids(3));
    const [got] = await a.claim({ owner: ME, max: 1, lease_ms: 60_000 });
    await a.complete(got!.task.id, got!.lease);
    await a.close();
    const b = open(w);
    expect(await b.stats()).toMatchObject({ ready: 2, leased: 0, completed: 1 });
    expect(await b.enqueue(ids(4))).toEqual({ added: ['t3'], existing: ['t0', 't1', 't2'], rerun: [] });
    await b.close();
  });

  it('two instances claiming at once never hand out a task twice', async () => {
    const w = ws();
    const a = open(w);
    const b = open(w);
    await a.enqueue(ids(500));
    const seen: string[] = [];
    const drain = async (q: FileQueue, owner: Owner): Promise<void> => {
      for (;;) {
        const got = await q.claim({ owner, max: 7, lease_ms: 60_000 });
        if (got.length === 0) return;
        seen.push(...got.map((g) => g.task.id));
        expect(await Promise.all(got.map((g) => q.complete(g.task.id, g.lease)))).toEqual(got.map(() => true));
      }
    };
    await Promise.all([drain(a, { id: 'A', pid: 1, host: 'h' }), drain(b, { id: 'B', pid: 2, host: 'h' })]);
    expect(seen).toHaveLength(500);
    expect(new Set(seen).size).toBe(500);
    expect(await a.stats()).toMatchObject({ ready: 0, completed: 500 });
    await Promise.all([a.close(), b.close()]);
  });

  it('a torn last line is set aside in quarantine and the good lines before it are kept', async () => {
    const w = ws();
    const a = open(w);
    await a.enqueue(ids(3));
    await a.close();
    appendFileSync(currentLog(w), '{"c":"0badf00d","r":{"t":"enq","n":3,"at');
    const warnings: string[] = [];
    const b = open(w, { warn: (m) => warnings.push(m) });
    expect(await b.stats()).toMatchObject({ ready: 3 });
    await b.enqueue(ids(1, 'new'));
    await b.close();
    expect(warnings).toContain('torn last line set aside');
    const q = readFileSync(join(w, 'queue', 'jobs', 'quarantine', 'corrupt.jsonl'), 'utf8');
    expect(JSON.parse(q)).toMatchObject({ reason: 'torn tail (no newline)', length: 40 });
    const c = open(w);
    expect((await c.stats()).ready).toBe(4);
    await c.close();
  });

  it('a corrupt line in the middle is skipped and counted; a record glued to garbage is recovered', async () => {
    const w = ws();
    const a = open(w);
    await a.enqueue(ids(2));
    await a.close();
    // A writer died without its newline, and the next append landed right after the garbage.
    appendFileSync(currentLog(w), 'garbage-without-newline');
    const b = open(w, { warn: () => undefined });
    // b cuts the torn tail, so glue garbage by hand after its append instead.
    await b.enqueue(ids(1, 'x'));
    await b.close();
    // The lines by content (a `clk` record may come first): a bad line after the first, garbage glued before x0's.
    const text = readFileSync(currentLog(w), 'utf8').split('\n').filter((l) => l !== '');
    const x0 = text.findIndex((l) => l.includes('"id":"x0"'));
    const lines = text.map((l, i) => (i === x0 ? `${'{"c":"12345678","r":{"t":"oops"'}${l}` : l));
    lines.splice(1, 0, 'not json at all');
    writeFileSync(currentLog(w), [...lines, ''].join('\n'));
    const c = open(w, { warn: () => undefined });
    const s = await c.stats();
    expect(s).toMatchObject({ ready: 3 });
    expect(s.corrupt_records).toBe(2);
    await c.close();
  });

  it('compaction keeps the file bounded and loses nothing', async () => {
    const w = ws();
    const clock = new FakeClock();
    const q = open(w, { compact_min_bytes: 20_000, now: clock.now, completed_retention_count: 100 });
    await q.enqueue(ids(2000));
    let done = 0;
    let last = '';
    while (done < 1500) {
      const got = await q.claim({ owner: ME, max: 100, lease_ms: 60_000 });
      await Promise.all(got.map((g) => q.complete(g.task.id, g.lease)));
      done += got.length;
      last = got.at(-1)!.task.id;
      clock.advance(10);
    }
    const [held] = await q.claim({ owner: ME, max: 1, lease_ms: 60_000 });
    expect(listGens(join(w, 'queue', 'jobs')).at(-1)).toBeGreaterThan(1);
    expect(await q.stats()).toMatchObject({ ready: 499, leased: 1, completed: 1500 });
    // The lease survives compaction: the holder can still complete it.
    expect(await q.complete(held!.task.id, held!.lease)).toBe(true);
    // The newest completions stay known to dedup; the oldest were let go (retention count 100).
    expect(await q.enqueue([{ id: last, payload: 0 }])).toEqual({ added: [], existing: [last], rerun: [] });
    expect(await q.enqueue([{ id: 't0', payload: 0 }])).toEqual({ added: ['t0'], existing: [], rerun: [] });
    await q.close();
    const fresh = open(w, { now: clock.now });
    expect(await fresh.stats()).toMatchObject({ ready: 500, leased: 0, completed: 1501 });
    await fresh.close();
  });

  it('which leases had started survives a reload and a compaction: only started ones are charged when their owner dies', async () => {
    const w = ws();
    const clock = new FakeClock();
    const OTHER: Owner = { id: 'other', pid: 999_999, host: 'h' };
    const alive = new Set(['me', 'other']);
    const opts = { compact_min_bytes: 20_000, now: clock.now, ownerAlive: (o: Owner) => alive.has(o.id) };
    const q = open(w, opts);
    await q.enqueue(ids(4, 'x'));
    const got = await q.claim({ owner: OTHER, max: 4, lease_ms: 60_000, defer_start: true });
    expect(await q.start('x0', got[0]!.lease)).toBe(true);
    expect(await q.start('x2', got[2]!.lease)).toBe(true);
    // Enough traffic to compact (tasks with payloads of a few hundred bytes, which a compaction
    // drops once completed): the leases are carried over as snaps.
    await q.enqueue(ids(1500).map((t) => ({ ...t, payload: 'x'.repeat(300) })));
    while ((await q.stats()).ready > 0) {
      const batch = await q.claim({ owner: ME, max: 200, lease_ms: 60_000 });
      await Promise.all(batch.map((g) => q.complete(g.task.id, g.lease)));
      clock.advance(10);
    }
    expect(listGens(join(w, 'queue', 'jobs')).at(-1)).toBeGreaterThan(1);
    await q.close();
    alive.delete('other');
    const fresh = open(w, opts);
    expect((await fresh.reclaimExpired()).sort()).toEqual(['x0', 'x1', 'x2', 'x3']);
    const again = await fresh.claim({ owner: ME, max: 4, lease_ms: 60_000 });
    expect(Object.fromEntries(again.map((g) => [g.task.id, g.task.attempt_count]))).toEqual({ x0: 1, x1: 0, x2: 1, x3: 0 });
    expect(again.find((g) => g.task.id === 'x0')!.task.errors[0]).toMatchObject({ kind: 'owner_gone' });
    await fresh.close();
  });

  it('completed ids older than the retention window are forgotten at compaction, the count is kept', async () => {
    const w = ws();
    const clock = new FakeClock();
    const q = open(w, { compact_min_bytes: 10_000, now: clock.now, completed_retention_ms: 1000 });
    await q.enqueue(ids(300));
    for (;;) {
      const got = await q.claim({ owner: ME, max: 50, lease_ms: 60_000 });
      if (!got.length) break;
      await Promise.all(got.map((g) => q.complete(g.task.id, g.lease)));
      clock.advance(2000);
    }
    // Complete more (within the window: the clock stands still) until a compaction runs; by then
    // the window has passed for every t-id.
    const gen = (): number => listGens(join(w, 'queue', 'jobs')).at(-1)!;
    const before = gen();
    let n = 0;
    for (let i = 0; gen() === before && i < 50; i++) {
      await q.enqueue(ids(200, `more${i}-`).map((t) => ({ ...t, payload: 'x'.repeat(300) })));
      const got = await q.claim({ owner: ME, max: 200, lease_ms: 60_000 });
      await Promise.all(got.map((g) => q.complete(g.task.id, g.lease)));
      n += got.length;
    }
    expect(gen()).toBeGreaterThan(before);
    expect((await q.stats()).completed).toBe(300 + n);
    // Old ids forgotten, young ones (inside the window) still known.
    expect(await q.states(['t0', 't299', 'more0-0'])).toEqual([null, null, 'completed']);
    // Forgotten: the same id enqueued again is a new task, not "existing".
    expect(await q.enqueue([{ id: 't0', payload: 0 }])).toEqual({ added: ['t0'], existing: [], rerun: [] });
    await q.close();
  });

  it('leftovers of a compaction that crashed are cleaned, the highest generation wins', async () => {
    const w = ws();
    const a = open(w);
    await a.enqueue(ids(5));
    await a.close();
    const dir = join(w, 'queue', 'jobs');
    writeFileSync(`${logPath(dir, 2)}.tmp`, 'half a compaction');
    const b = open(w);
    expect((await b.stats()).ready).toBe(5);
    await b.close();
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('queue stats reads the snapshot when the log has not moved, and replays when it has', async () => {
    const w = ws();
    const q = open(w);
    await q.enqueue(ids(10));
    await q.close();
    const dir = join(w, 'queue', 'jobs');
    const fast = readStats(dir, 'jobs', Date.now());
    expect(fast).toMatchObject({ source: 'snapshot', ready: 10 });
    // The snapshot is still there, but the log moved past it (here: a line no writer made).
    appendFileSync(currentLog(w), 'a line appended after the snapshot\n');
    expect(existsSync(join(dir, 'stats.json'))).toBe(true);
    expect(readStats(dir, 'jobs', Date.now())).toMatchObject({ source: 'replay', ready: 10, corrupt_records: 1 });
    // Without a snapshot at all it replays too.
    rmSync(join(dir, 'stats.json'));
    expect(readStats(dir, 'jobs', Date.now())).toMatchObject({ source: 'replay', ready: 10 });
  });

  it('a dead-letter file missing after a crash is written again from the log', async () => {
    const w = ws();
    const a = open(w, { max_attempts: 1 });
    await a.enqueue(ids(1));
    const [got] = await a.claim({ owner: ME, max: 1, lease_ms: 1000 });
    await a.fail('t0', got!.lease, { kind: 'transient', class: 'Error', message: 'x', at: new Date().toISOString() }, 0);
    await a.close();
    const file = join(w, 'deadletter', 'jobs', 't0.json');
    expect(existsSync(file)).toBe(true);
    rmSync(file);
    const b = open(w);
    await b.stats();
    expect(existsSync(file)).toBe(true);
    await b.close();
  });
});
