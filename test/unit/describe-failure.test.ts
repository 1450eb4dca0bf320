// The runner's failure record: what describeError reads of the thrown value, read once.
import { describe, expect, it } from 'vitest';
import { describeError } from '../../src/queue/record.js';
import { describeFailure, HandlerError, handlerFrames, safeError } from '../../src/runtime/thrown.js';

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

describe('handlerFrames', () => {
  const own = new URL('../../src/', import.meta.url).href;
  it('cuts the stack where metaspn called the handler; an error of metaspn itself keeps its frames', () => {
    const user = ['at handle (file:///app/worker.js:3:11)', 'at step (file:///app/lib.js:9:2)'];
    const runner = [`at file://${own.slice('file://'.length)}runtime/isolation/host.js:16:36`, `at async runOne (${own}runtime/runner.js:429:9)`];
    expect(handlerFrames([...user, ...runner])).toEqual(user);
    expect(handlerFrames(['second line of the message', ...user, ...runner])).toEqual(['second line of the message', ...user]);
    expect(handlerFrames(runner)).toEqual(runner);
    expect(handlerFrames([...runner.slice(0, 1), ...user, ...runner.slice(1)])).toEqual([...runner.slice(0, 1), ...user]);
  });

  it('a handler that throws outside any metaspn frame keeps its frames', () => {
    const handle = (): never => {
      throw new Error('boom');
    };
    let raw: unknown;
    try {
      handle();
    } catch (err) {
      raw = err;
    }
    const frames = describeFailure(safeError(raw), 'transient', NOW).stack!;
    expect(frames[0]).toMatch(/^at handle \(.*describe-failure\.test\.ts/);
    expect(frames.some((l) => l.includes(own))).toBe(false);
  });
});
