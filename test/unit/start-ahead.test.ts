import { describe, expect, it } from 'vitest';
import type { ClaimedTask, Lease } from '../../src/queue/types.js';
import { StartMarksAhead } from '../../src/runtime/start-ahead.js';

/** A queue that records the marks asked for, and counts outages as a PostgreSQL queue does. */
function fakeQueue(startAhead: number): { start: (id: string, l: Lease) => Promise<boolean>; start_ahead: number; outages: () => number; asked: string[]; lost: number } {
  const q = {
    asked: [] as string[],
    lost: 0,
    start_ahead: startAhead,
    start: (id: string) => {
      q.asked.push(id);
      return Promise.resolve(true);
    },
    outages: () => q.lost,
  };
  return q;
}

const task = (id: string, started?: boolean): ClaimedTask =>
  ({ task: { id }, lease: { owner: 'o', fence: 1, expires_at: 0 }, ...(started === undefined ? {} : { started }) }) as unknown as ClaimedTask;

describe('StartMarksAhead', () => {
  it('marks the buffer front first, in batches: again only when fewer than half of `ahead` remain beyond the free slots', () => {
    const q = fakeQueue(4);
    const buffer = Array.from({ length: 10 }, (_, i) => task(`t${i}`));
    const a = new StartMarksAhead(q, buffer, undefined);
    expect(a.ahead).toBe(4);
    a.markAhead(2);
    expect(q.asked).toEqual(['t0', 't1', 't2', 't3', 't4', 't5']);
    // Two tasks leave to run: four remain marked, two of them beyond the free slots (2 >= 2): no batch.
    buffer.shift();
    a.shifted();
    buffer.shift();
    a.shifted();
    a.markAhead(2);
    expect(q.asked).toHaveLength(6);
    // One more leaves: three marked, one beyond the slots: the next batch fills up to slots + ahead.
    buffer.shift();
    a.shifted();
    a.markAhead(2);
    expect(q.asked).toEqual(['t0', 't1', 't2', 't3', 't4', 't5', 't6', 't7', 't8']);
    expect(a.markOf(buffer[0]!)).toBeInstanceOf(Promise);
    expect(a.markOf(buffer.at(-1)!)).toBeUndefined();
  });

  it('counts what the claim marked, asks the claim to mark only when every buffered task is marked, and knows of outages since a mark', async () => {
    const q = fakeQueue(8);
    const buffer: ClaimedTask[] = [];
    const a = new StartMarksAhead(q, buffer, undefined);
    expect(a.firstOfClaim(100, 3)).toBe(11);
    const got = [task('a', true), task('b', true), task('c')];
    buffer.push(...got);
    a.claimed(got);
    expect(a.firstOfClaim(100, 3)).toBe(0);
    await expect(a.markOf(got[0]!)).resolves.toBe(true);
    expect(a.lostSinceMark(got[0]!)).toBe(false);
    q.lost++;
    expect(a.lostSinceMark(got[0]!)).toBe(true);
    a.markAhead(0);
    expect(q.asked).toEqual(['c']);
    await a.markOf(got[2]!);
    expect(a.lostSinceMark(got[2]!)).toBe(false);
  });

  it('marks nothing ahead on a queue that does not ask for it (files), and bounds the setting at 0-4096', () => {
    const q = { start: () => Promise.resolve(true) };
    const buffer = [task('x'), task('y')];
    const none = new StartMarksAhead(q, buffer, undefined);
    expect(none.ahead).toBe(0);
    none.markAhead(2);
    expect(none.markOf(buffer[0]!)).toBeUndefined();
    expect(none.firstOfClaim(10, 2)).toBe(0);
    expect(new StartMarksAhead(q, buffer, 99_999).ahead).toBe(4096);
    expect(new StartMarksAhead(q, buffer, -3).ahead).toBe(0);
  });
});
