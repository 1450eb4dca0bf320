// The runner's failure record: what describeError reads of the thrown value, read once.
import { describe, expect, it } from 'vitest';
import { describeError } from '../../src/queue/record.js';
import { describeFailure, HandlerError, safeError } from '../../src/runtime/thrown.js';

const NOW = Date.UTC(2026, 10, 30, 12, 0, 0);

describe('describeFailure', () => {
  it('of the HandlerError the runner makes of a thrown value is what describeError reads of it', () => {
    const coded = Object.assign(new TypeError('bad input'), { code: 'E_BAD' });
    const thrown: unknown[] = [new Error('boom'), coded, new RangeError('x'.repeat(5000)), 'a string', null, Object.create(null), { message: 'plain' }];
    for (const raw of thrown) {
      const e = safeError(raw);
      expect(e).toBeInstanceOf(HandlerError);
      // What the runner recorded before (describeError of its HandlerError), without reading it again.
      expect(describeFailure(e, 'transient', NOW)).toEqual(describeError(e, 'transient', NOW));
    }
    for (const raw of [new Error('boom'), coded, 'a string', null]) expect(describeFailure(safeError(raw), 'transient', NOW)).toEqual(describeError(raw, 'transient', NOW));
    expect(describeFailure(safeError(coded), 'timeout', NOW)).toMatchObject({ kind: 'timeout', class: 'TypeError', message: 'bad input', code: 'E_BAD', at: new Date(NOW).toISOString() });
  });

  it("keeps the thrown stack (not the wrapper's) and a message on several lines once", () => {
    const raw = new Error('first line\nsecond line');
    const d = describeFailure(safeError(raw), 'transient', NOW);
    expect(d.stack).toEqual(describeError(raw, 'transient', NOW).stack);
    expect(d.stack?.filter((l) => l === 'second line')).toHaveLength(1);
    expect(d.stack?.some((l) => l.includes('describe-failure.test'))).toBe(true);
  });

  it('of anything else is describeError', () => {
    const err = new Error('not wrapped');
    expect(describeFailure(err, 'contract', NOW)).toEqual(describeError(err, 'contract', NOW));
  });

  it('a HandlerError has no stack of its own making, and the stack limit is left as it was', () => {
    const limit = Error.stackTraceLimit;
    const e = new HandlerError({ name: 'X', message: 'm', stack: ['at a (a.js:1:1)'], unrecoverable: false });
    expect(e.stack).toBe('X: m\n    at a (a.js:1:1)');
    expect(Error.stackTraceLimit).toBe(limit);
  });
});
