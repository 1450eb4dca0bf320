// The order tasks become claimable in (docs/QUEUE-FORMAT.md, "Ready order"): ready tasks are handed
// out in the order they became ready, the same in a process running all along, in a fresh replay
// of the log and in a replay of a compacted log.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../temp.js';
import { encodeLine } from '../../src/queue/file/codec.js';
import { FileQueue } from '../../src/queue/file/file-queue.js';
import { listGens, logPath } from '../../src/queue/file/log-io.js';
import type { LogRecord } from '../../src/queue/file/records.js';
import { newRecord } from '../../src/queue/record.js';
import type { Owner, Queue } from '../../src/queue/types.js';
import { FakeClock, StepClock } from './conformance.js';

const ME: Owner = { id: 'me', pid: 1, host: 'h' };

function setup(): { clock: FakeClock; open: () => FileQueue; dir: string } {
  const clock = new FakeClock();
  const workspace = tempDir('metaspn-ready-order-');
  const opts = { name: 'jobs', workspace, now: clock.now, ownerAlive: () => true, ack_window_ms: 0 };
  return { clock, open: () => new FileQueue(opts), dir: join(workspace, 'queue', 'jobs') };
}

const claimIds = async (q: Queue, max: number, only?: Set<string>): Promise<string[]> =>
  (await q.claim({ owner: ME, max, lease_ms: 60_000, ...(only ? { only } : {}) })).map((c) => c.task.id);

/** t0, t1, t2 enqueued 10 ms apart; t0 claimed and released 100 ms later: ready order t1, t2, t0. */
async function released(clock: FakeClock, q: FileQueue, n = 3): Promise<void> {
  for (let i = 0; i < n; i++) {
    await q.enqueue([{ id: `t${i}`, payload: i }]);
    clock.advance(10);
  }
  const [c] = await q.claim({ owner: ME, max: 1, lease_ms: 60_000 });
  expect(c!.task.id).toBe('t0');
  clock.advance(100);
  expect(await q.release('t0', c!.lease)).toBe(true);
}

/** A workspace for a hand-written log of queue `jobs`, its time T0, and a fresh task record at T0. */
function handWritten(): {
  workspace: string;
  dir: string;
  T0: number;
  task: (id: string) => never;
  /** Writes `lines` as the queue's log and repairs it (doctor --repair's salvage). */
  repaired: (lines: readonly LogRecord[]) => Promise<{ q: FileQueue; r: Awaited<ReturnType<FileQueue['repair']>> }>;
} {
  const workspace = tempDir('metaspn-ready-order-');
  const dir = join(workspace, 'queue', 'jobs');
  mkdirSync(dir, { recursive: true });
  const T0 = 1_768_478_400_000;
  const repaired = async (lines: readonly LogRecord[]) => {
    writeFileSync(logPath(dir, 1), lines.map((r) => encodeLine(r)).join(''));
    const q = new FileQueue({ name: 'jobs', workspace, ownerAlive: () => true, warn: () => undefined });
    return { q, r: await q.repair() };
  };
  return { workspace, dir, T0, task: (id) => newRecord('jobs', { id, payload: { id } }, 3, T0) as never, repaired };
}

describe('ready order', () => {
  it('a task ready again goes behind the tasks ready before it, also after a fresh replay (claims and oldest_ready_at)', async () => {
    const { clock, open } = setup();
    const q = open();
    await released(clock, q);
    const before = await q.stats();
    const fresh = open();
    expect((await fresh.stats()).oldest_ready_at).toBe(before.oldest_ready_at);
    expect(await claimIds(fresh, 3)).toEqual(['t1', 't2', 't0']);
    expect(await claimIds(q, 3)).toEqual([]);
    await Promise.all([q.close(), fresh.close()]);
  });

  it('a compaction keeps the ready order, in the process that compacted and in a fresh replay (a ready snap carries its `ro`)', async () => {
    const { clock, open, dir } = setup();
    const q = open();
    await released(clock, q);
    const before = await q.stats();
    await q.compact();
    // t0, claimed and released, is a snap; t1 and t2, never claimed, an `enqs` line as enqueue wrote
    // them; each with its place in the ready order.
    const placed = readFileSync(logPath(dir, listGens(dir).at(-1)!), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { r: { t: string; ro?: number; task?: { id: string }; l?: [string, unknown][] } }).r)
      .filter((r) => r.t === 'snap' || r.t === 'enqs')
      .map((r) => (r.t === 'snap' ? [r.t, r.task!.id, r.ro] : [r.t, r.l!.map((e) => e[0]), r.ro]));
    expect(placed).toEqual([
      ['snap', 't0', 2],
      ['enqs', ['t1'], 0],
      ['enqs', ['t2'], 1],
    ]);
    const fresh = open();
    expect((await fresh.stats()).oldest_ready_at).toBe(before.oldest_ready_at);
    expect(await claimIds(fresh, 3)).toEqual(['t1', 't2', 't0']);
    await fresh.close();
    // The process that compacted, on its own state.
    const again = open();
    await q.compact();
    expect(await claimIds(q, 3)).toEqual([]);
    expect((await again.stats()).ready).toBe(0);
    await Promise.all([q.close(), again.close()]);
  });

  it('a compaction writes the tasks never claimed back as `enqs` lines with their ready order, around the snaps; their records read back unchanged', async () => {
    const { clock, open, dir } = setup();
    const q = open();
    await q.enqueue([
      { id: 'a0', payload: { n: 0 } },
      { id: 'a1', payload: null },
      { id: 'a2', payload: 2 },
      { id: 'a3', payload: 'x', max_attempts: 7 },
      { id: 'a4', payload: [4], group: 'g/1' },
    ]);
    clock.advance(10);
    await q.enqueue([{ id: 'b0', payload: 5 }]);
    clock.advance(10);
    const [c] = await q.claim({ owner: ME, max: 1, only: new Set(['a2']), lease_ms: 60_000 });
    expect(await q.release('a2', c!.lease)).toBe(true);
    const ids = ['a0', 'a1', 'a2', 'a3', 'a4', 'b0'];
    const views = await Promise.all(ids.map((id) => q.getTask(id)));
    const before = await q.stats();
    await q.compact();
    const lines = readFileSync(logPath(dir, listGens(dir).at(-1)!), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { r: { t: string; n?: number; ro?: number; x?: number; task?: { id: string }; l?: unknown[][] } }).r)
      .filter((r) => r.t === 'snap' || r.t === 'enqs');
    // One line per run of tasks side by side in slot and ready order, enqueued at one instant.
    expect(lines.map((r) => (r.t === 'snap' ? [r.t, r.n, r.task!.id, r.ro] : [r.t, r.n, r.l, r.ro, r.x]))).toEqual([
      ['enqs', 0, [['a0', { n: 0 }], ['a1', null]], 0, 5],
      ['snap', 2, 'a2', 5],
      ['enqs', 3, [['a3', 'x'], ['a4', [4], 5, 'g/1']], 2, 7],
      ['enqs', 5, [['b0', 5]], 4, 5],
    ]);
    for (const r of [q, open()]) {
      expect(await Promise.all(ids.map((id) => r.getTask(id)))).toEqual(views);
      expect((await r.stats()).oldest_ready_at).toBe(before.oldest_ready_at);
    }
    const fresh = open();
    expect(await claimIds(fresh, 6)).toEqual(['a0', 'a1', 'a3', 'a4', 'b0', 'a2']);
    expect(await claimIds(q, 6)).toEqual([]);
    await Promise.all([q.close(), fresh.close()]);
  });

  it("a compaction's `enqs` line carries its tasks' ready time on the compactor's boot (`m`); a reader of another boot places them by their enqueue's wall time, as before it", async () => {
    const clock = new StepClock();
    const workspace = tempDir('metaspn-ready-order-');
    const open = (): FileQueue => new FileQueue({ name: 'jobs', workspace, clock, ownerAlive: () => true, ack_window_ms: 0 });
    const dir = join(workspace, 'queue', 'jobs');
    const q = open();
    await q.enqueue([
      { id: 'a', payload: 1 },
      { id: 'b', payload: 2 },
    ]);
    const enqueuedAt = clock.wall;
    clock.advance(5000);
    clock.step(60_000);
    const before = await q.stats();
    await q.compact();
    const line = readFileSync(logPath(dir, listGens(dir).at(-1)!), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { r: { t: string; at?: number; m?: number; ro?: number } }).r)
      .find((r) => r.t === 'enqs');
    expect(line).toMatchObject({ at: enqueuedAt, m: 5_000_000, ro: 0 });
    // The same boot: measured on the monotonic clock, the wall step shows as it did before.
    const same = open();
    expect((await same.stats()).oldest_ready_at).toBe(before.oldest_ready_at);
    await same.close();
    // Another boot: by the enqueue's wall time, as the enqueue's own line was read.
    clock.reboot('boot-b');
    const other = open();
    expect((await other.stats()).oldest_ready_at).toBe(enqueuedAt);
    expect(await claimIds(other, 2)).toEqual(['a', 'b']);
    await Promise.all([q.close(), other.close()]);
  });

  it('the compacting process itself hands out in ready order after the compaction', async () => {
    const { clock, open } = setup();
    const q = open();
    await released(clock, q);
    await q.compact();
    expect(await claimIds(q, 3)).toEqual(['t1', 't2', 't0']);
    await q.close();
  });

  it('a scoped claim hands out its ready tasks in ready order, not slot order', async () => {
    const { clock, open } = setup();
    const q = open();
    await released(clock, q, 4);
    // A scope smaller than the ready tasks: its own slots are looked at.
    expect(await claimIds(q, 1, new Set(['t0', 't1']))).toEqual(['t1']);
    expect(await claimIds(q, 1, new Set(['t0', 't2']))).toEqual(['t2']);
    await q.close();
  });

  it('a compacted log of an older version (ready snaps without `ro`) reads as before: slot order', async () => {
    const { open, dir } = setup();
    const q = open();
    await q.enqueue([{ id: 'seed', payload: 0 }]);
    await q.close();
    const task = (id: string): object => ({ id, queue: 'jobs', payload: 1, attempt_count: 0, max_attempts: 3, created_at: '2026-01-15T12:00:00.000Z', updated_at: '2026-01-15T12:00:00.000Z', errors: [], retries: [] });
    const tm = Date.parse('2026-01-15T12:00:00.000Z');
    const lines = [
      { t: 'snap', n: 0, s: 'ready', f: 1, tm: tm + 5, task: task('b') },
      { t: 'snap', n: 1, s: 'ready', f: 0, tm, task: task('a') },
      { t: 'head', gen: 2, at: tm, completed_dropped: 0, paused: false, totals: { failed: 0, dead_lettered: 0, retried: 0 } },
    ];
    for (const g of listGens(dir)) writeFileSync(logPath(dir, g), '');
    writeFileSync(logPath(dir, listGens(dir).at(-1)!), lines.map((r) => encodeLine(r)).join(''));
    const old = open();
    expect(await claimIds(old, 2)).toEqual(['b', 'a']);
    await old.close();
  });

  it('a salvage (doctor --repair) keeps the ready order: a task ready again stays behind, the tasks it makes ready go last', async () => {
    const { T0, repaired } = handWritten();
    const enq = (n: number, id: string): LogRecord => ({ t: 'enq', n, at: T0 + n, task: newRecord('jobs', { id, payload: { id } }, 3, T0 + n) });
    // a, b, c; a claimed and given back (ready behind b and c); then x written into b's slot by a second writer.
    const lines: LogRecord[] = [enq(0, 'a'), enq(1, 'b'), enq(2, 'c'), { t: 'claim', at: T0 + 3, o: 'w', pid: 1, host: 'h', ms: 60_000, l: [[0, 1]] }, { t: 'rel', at: T0 + 4, o: 'w', l: [[0, 1]] }, enq(1, 'x')];
    const { q, r } = await repaired(lines);
    expect(r.conflict?.salvage.made_ready.map((m) => m.id)).toEqual(['b', 'x']);
    expect(await claimIds(q, 4)).toEqual(['b', 'c', 'a', 'x']);
    await q.close();
  });

  it('a salvage of a compacted log queues its ready snaps by `ro` before the tasks it makes ready', async () => {
    const { T0, task, repaired } = handWritten();
    // b then a became ready; c leased; d written into c's slot by a second writer (moved to slot 3, c and d made ready).
    const lines: LogRecord[] = [
      { t: 'snap', n: 0, s: 'ready', f: 1, tm: T0 + 2, ro: 1, task: task('a') },
      { t: 'snap', n: 1, s: 'ready', f: 0, tm: T0, ro: 0, task: task('b') },
      { t: 'snap', n: 2, s: 'leased', f: 1, tm: T0 + 60_000, o: 'w', pid: 1, host: 'h', task: task('c') },
      { t: 'snap', n: 2, s: 'ready', f: 0, tm: T0 + 3, ro: 2, task: task('d') },
    ];
    const { q, r } = await repaired(lines);
    expect(r.conflict?.salvage.made_ready.map((m) => m.id)).toEqual(['c', 'd']);
    expect(await claimIds(q, 4)).toEqual(['b', 'a', 'd', 'c']);
    await q.close();
  });

  it("a salvage of a compacted log queues the entries of its `enqs` lines by their `ro` among the ready snaps", async () => {
    const { workspace, dir, T0, task, repaired } = handWritten();
    // Ready order e0, e1, e2, a (a, enqueued before e1 and e2, claimed and released after); c leased;
    // d written into c's slot by a second writer (moved to slot 5, c and d made ready).
    const lines: LogRecord[] = [
      { t: 'enqs', n: 0, at: T0, q: 'jobs', x: 3, ro: 0, l: [['e0', 0]] },
      { t: 'snap', n: 1, s: 'ready', f: 1, tm: T0 + 9, ro: 3, task: task('a') },
      { t: 'enqs', n: 2, at: T0 + 5, q: 'jobs', x: 3, ro: 1, l: [['e1', 1], ['e2', 2]] },
      { t: 'snap', n: 4, s: 'leased', f: 1, tm: T0 + 60_000, o: 'w', pid: 1, host: 'h', task: task('c') },
      { t: 'snap', n: 4, s: 'ready', f: 0, tm: T0 + 3, ro: 4, task: task('d') },
    ];
    const claimAll = async (q: FileQueue): Promise<string[]> => {
      const got = await claimIds(q, 6);
      await q.close();
      return got;
    };
    writeFileSync(logPath(dir, 1), lines.slice(0, 3).map((r) => encodeLine(r)).join(''));
    expect(await claimAll(new FileQueue({ name: 'jobs', workspace, ownerAlive: () => true }))).toEqual(['e0', 'e1', 'e2', 'a']);
    const { q, r } = await repaired(lines);
    expect(r.conflict?.salvage.made_ready.map((m) => m.id)).toEqual(['c', 'd']);
    expect(await claimAll(q)).toEqual(['e0', 'e1', 'e2', 'a', 'd', 'c']);
  });
});
