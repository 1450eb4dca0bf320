// A `done` record's pairs apply only to tasks leased to its owner under the pair's fence (the
// state machine's guard): the others are refused and change nothing, whatever the index holds.
import { describe, expect, it } from 'vitest';
import { IndexState } from '../../src/queue/file/index-state.js';
import { enqsOf, type LogRecord } from '../../src/queue/file/records.js';
import { S_COMPLETED, S_LEASED, S_READY } from '../../src/queue/file/slots.js';

const T0 = Date.UTC(2026, 10, 30, 12);
const tasks = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `t${i}`, payload: { i } }));

function leased(): IndexState {
  const idx = new IndexState(() => null);
  idx.apply(enqsOf(0, T0, tasks(4), 'jobs', 3), 0, 400);
  idx.apply({ t: 'claim', at: T0, o: 'w1', pid: 1, host: 'h', ms: 60_000, l: [[0, 1], [1, 1], [2, 1]] }, 400, 100);
  idx.apply({ t: 'claim', at: T0, o: 'w2', pid: 2, host: 'h', ms: 60_000, l: [[3, 1]] }, 500, 100);
  return idx;
}

describe('done pairs in the replay', () => {
  it("completes the owner's leases under their fence, and refuses a stale fence, another owner's lease, an unknown owner and a task not leased", () => {
    const idx = leased();
    expect(idx.counts[S_LEASED]).toBe(4);
    expect(idx.liveBytes).toBe(400);
    const done = (o: string, l: [number, number][]): LogRecord => ({ t: 'done', at: T0 + 5, o, l });
    idx.apply(done('w1', [[0, 1], [1, 2], [3, 1]]), 600, 50);
    expect(idx.refused).toBe(2);
    expect([...idx.slots.state.subarray(0, 4)]).toEqual([S_COMPLETED, S_LEASED, S_LEASED, S_LEASED]);
    expect(idx.status(0)).toMatchObject({ state: 'completed', owner: null, fence: 1, attempt_count: 0, started: false });
    expect(idx.liveBytes).toBe(300);
    expect(idx.leased.has(0)).toBe(false);
    idx.apply(done('nobody', [[1, 1]]), 650, 50);
    idx.apply(done('w1', [[0, 1]]), 700, 50);
    expect(idx.refused).toBe(4);
    idx.apply(done('w2', [[3, 1]]), 750, 50);
    expect(idx.counts.slice(0, 6)).toEqual([0, 0, 2, 2, 0, 0]);
    expect(idx.leasesOf).toEqual([2, 0]);
    expect(idx.expiredLeases(Number.MAX_SAFE_INTEGER)).toEqual([1, 2]);
    idx.verify(800);
  });

  it('a completed task is not handed out again', () => {
    const idx = leased();
    idx.apply({ t: 'done', at: T0 + 5, o: 'w1', l: [[2, 1]] }, 600, 50);
    expect(idx.stateOf(2)).toBe('completed');
    expect(idx.pickClaimable(T0 + 10, 10)).toEqual([]);
    expect(idx.counts[S_READY]).toBe(0);
  });
});
