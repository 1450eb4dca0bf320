// A compaction builds the next generation's index from the records it writes, not by replaying
// the file after it (docs/QUEUE-FORMAT.md, Compaction): that index must be the replay's, and a
// crash after a compaction must recover every acknowledged task from the file alone.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { tempDir } from '../temp.js';
import { until } from '../wait.js';
import { FileQueue } from '../../src/queue/file/file-queue.js';
import { decodeLine, encodeLine } from '../../src/queue/file/codec.js';
import { LoadedLog } from '../../src/queue/file/loader.js';
import { QueueLogFile } from '../../src/queue/file/log-file.js';
import type { SlotTable } from '../../src/queue/file/slots.js';
import type { Owner, TaskError } from '../../src/queue/types.js';
import { FakeClock } from './conformance.js';

const ROOT = join(import.meta.dirname, '..', '..');
const ME: Owner = { id: 'me', pid: process.pid, host: 'h' };
const error = (message: string): Omit<TaskError, 'attempt'> => ({ kind: 'transient', class: 'Error', message, stack: ['at handle (file:///w/worker.js:3:11)'], at: '2026-11-30T12:00:00.000Z' });
const COLUMNS = ['state', 'attempts', 'maxAttempts', 'fence', 'started', 'owner', 'group', 'time', 'recOff', 'recLen', 'entry', 'weight', 'failOff', 'failLen', 'readyPos'] as const;

/** A slot table's columns over its placed slots, as plain arrays. */
const columns = (t: SlotTable): Record<string, number[]> => Object.fromEntries(COLUMNS.map((k) => [k, Array.from(t[k].subarray(0, t.count))]));

/** What a replay of `log` gives that the queue's answers depend on, beyond the slot table. */
function summary(log: LoadedLog): unknown {
  const i = log.idx;
  const ready: number[] = [];
  i.forEachReady((s) => (ready.push(s), true));
  // A copy: the built index goes on changing with the rounds after its compaction.
  return structuredClone({
    count: i.slots.count,
    counts: [...i.counts],
    ready,
    leased: [...i.leased].sort((a, b) => a - b),
    owners: i.owners,
    groups: i.groups,
    totals: i.totals,
    dropped: [i.completedDropped, i.cancelledDropped],
    paused: i.paused,
    liveBytes: i.liveBytes,
    end: log.end,
    ids: Array.from({ length: i.slots.count }, (_, s) => i.ids.idOf(s)),
  });
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('file queue: the index a compaction builds', () => {
  it('is the index a replay of the new generation builds (every column, the ready order, leases, owners, ids)', async () => {
    const compactions: { built: unknown; replayed: unknown }[] = [];
    let snaps = 0;
    const compact = QueueLogFile.prototype.compact;
    vi.spyOn(QueueLogFile.prototype, 'compact').mockImplementation(function (this: QueueLogFile, ...args: Parameters<QueueLogFile['compact']>) {
      const built = compact.apply(this, args);
      const fd = openSync(this.path, 'r');
      try {
        const fresh = new LoadedLog(() => fd, this.path, built.clock);
        fresh.readMore();
        // Every line is the one its record encodes to (a snap's task text copied as it was, too).
        const lines = readFileSync(this.path, 'utf8').split('\n').slice(0, -1);
        const text = Buffer.from(lines.join('\n'));
        let at = 0;
        for (const line of lines) {
          const len = Buffer.byteLength(line);
          expect(encodeLine(decodeLine(text, at, at + len) as object)).toBe(`${line}\n`);
          at += len + 1;
        }
        snaps += lines.filter((l) => l.includes('"t":"snap"') && l.includes('"attempt_count":1')).length;
        compactions.push({ built: { ...columns(built.idx.slots), ...(summary(built) as object) }, replayed: { ...columns(fresh.idx.slots), ...(summary(fresh) as object) } });
      } finally {
        closeSync(fd);
      }
      return built;
    });
    const clock = new FakeClock();
    const q = new FileQueue({ name: 'jobs', workspace: tempDir('metaspn-ci-'), ownerAlive: () => true, now: clock.now, compact_min_bytes: 20_000, completed_retention_count: 150 });
    const other: Owner = { id: 'other', pid: 2, host: 'h' };
    const batch = (round: number, n: number): { id: string; payload: unknown; group?: string }[] =>
      Array.from({ length: n }, (_, i) => ({ id: `t${round}-${i}`, payload: { i, pad: 'y'.repeat(200) }, ...(i % 5 === 0 ? { group: `g/${round % 3}` } : {}) }));
    await q.enqueue(batch(-1, 400));
    for (let round = 0; compactions.length < 3 && round < 300; round++) {
      await q.enqueue(batch(round, 20));
      const got = await q.claim({ owner: round % 2 ? ME : other, max: 40, lease_ms: 60_000, defer_start: round % 4 === 0 });
      await Promise.all(
        got.map(async (g, k) => {
          if (k === 0 && round % 5 === 0) return; // held: a lease carried over
          if (k % 6 === 0) await q.fail(g.task.id, g.lease, error(`e${k}`), k % 4 ? 0 : 5_000);
          else await q.complete(g.task.id, g.lease);
        }),
      );
      if (round % 9 === 4) await q.cancel({ group: `g/${round % 3}`, by: 'test', reason: 'superseded' });
      clock.advance(700);
    }
    expect(compactions.length).toBeGreaterThanOrEqual(3);
    // Failed tasks waiting or held were carried over as snaps (later compactions copy their task text).
    expect(snaps).toBeGreaterThan(20);
    for (const c of compactions) expect(c.built).toEqual(c.replayed);
    // The queue goes on from the built index: the held leases expire, every task left is handed out and completes.
    clock.advance(120_000);
    await q.reclaimExpired();
    for (;;) {
      const got = await q.claim({ owner: ME, max: 100, lease_ms: 60_000 });
      if (got.length === 0) break;
      expect(await Promise.all(got.map((g) => q.complete(g.task.id, g.lease)))).toEqual(got.map(() => true));
    }
    const s = await q.stats();
    expect(s).toMatchObject({ ready: 0, leased: 0, scheduled: 0 });
    await q.close();
  });

  it('a compaction then a SIGKILL: a fresh process recovers every acknowledged task, completions kept', async () => {
    const w = tempDir('metaspn-ck-');
    const child = spawn(process.execPath, [join(ROOT, 'test', 'fixtures', 'compact-then-hold.mjs'), w], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    const line = await until(() => (out.includes('\n') ? out.slice(0, out.indexOf('\n')) : null), 60_000, 'the fixture compacted and held');
    child.kill('SIGKILL');
    await exited;
    const { gen, completed, known } = JSON.parse(line) as { gen: number; completed: string[]; known: string[] };
    expect(gen).toBeGreaterThan(1);
    const q = new FileQueue({ name: 'jobs', workspace: w });
    const states = await q.states(known);
    // Nothing acknowledged is lost: every task not completed is known, every completion is kept
    // (its id, or past the retention count of 50 its count in stats).
    const done = new Set(completed);
    expect(known.filter((id, i) => (done.has(id) ? states[i] !== 'completed' && states[i] !== null : states[i] === null || states[i] === 'completed'))).toEqual([]);
    // The rest runs to completion here (the dead owner's leases come back, the retries come due).
    expect(await q.reclaimExpired()).toHaveLength(10);
    await q.close();
    const left = new Set(known.filter((id) => !done.has(id)));
    // An hour on: the retries waiting an hour are due.
    const later = Date.now() + 3_700_000;
    const q2 = new FileQueue({ name: 'jobs', workspace: w, now: () => later });
    for (;;) {
      const got = await q2.claim({ owner: ME, max: 200, lease_ms: 60_000 });
      if (got.length === 0) break;
      for (const g of got) expect(left.delete(g.task.id)).toBe(true);
      await Promise.all(got.map((g) => q2.complete(g.task.id, g.lease)));
    }
    expect([...left]).toEqual([]);
    expect((await q2.stats()).completed).toBe(known.length);
    await q2.close();
  }, 120_000);
});
