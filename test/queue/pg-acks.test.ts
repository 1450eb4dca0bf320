/** The group commit of lease operations (src/backend/pg/acks.ts): pure scheduling, no database. */
import { describe, expect, it } from 'vitest';
import { AckBatcher, type AckKind, type AckOp } from '../../src/backend/pg/acks.js';

const lease = { owner: 'o', fence: 1, expires_at: 0 };

function recorder(answer: (op: AckOp) => boolean = () => true) {
  const batches: string[][] = [];
  const b = new AckBatcher(0, async (kind: AckKind, ops: AckOp[]) => {
    batches.push(ops.map((o) => `${kind}:${o.id}`));
    for (const o of ops) o.resolve(answer(o));
  });
  return { b, batches };
}

describe('AckBatcher', () => {
  it('the calls of one window share one batch per kind, in a fixed order of kinds', async () => {
    const { b, batches } = recorder();
    const out = await Promise.all([b.push('complete', 'a', lease), b.push('start', 'b', lease), b.push('complete', 'c', lease), b.push('renew', 'd', lease, 500)]);
    expect(out).toEqual([true, true, true, true]);
    expect(batches).toEqual([['start:b'], ['renew:d'], ['complete:a', 'complete:c']]);
  });

  it('an id already in the window waits for the next one: calls on one id keep their order', async () => {
    const seen: string[] = [];
    const { b, batches } = recorder((o) => {
      seen.push(`${o.kind}:${o.id}`);
      // The second completion of one id is refused, as it would be by the database.
      return !(o.kind === 'complete' && seen.filter((x) => x === 'complete:a').length > 1);
    });
    const out = await Promise.all([b.push('start', 'a', lease), b.push('complete', 'a', lease), b.push('complete', 'a', lease), b.push('complete', 'z', lease)]);
    expect(batches).toEqual([['start:a'], ['complete:z'], ['complete:a'], ['complete:a']]);
    expect(out).toEqual([true, true, false, true]);
  });

  it('drain writes what is queued without waiting for the window', async () => {
    const batches: string[][] = [];
    const b = new AckBatcher(60_000, async (kind, ops) => {
      batches.push(ops.map((o) => `${kind}:${o.id}`));
      for (const o of ops) o.resolve(true);
    });
    const p = b.push('release', 'x', lease);
    await b.drain();
    expect(batches).toEqual([['release:x']]);
    expect(await p).toBe(true);
  });
});
