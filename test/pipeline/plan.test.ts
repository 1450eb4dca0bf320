import { describe, expect, it } from 'vitest';
import { definePipeline, defineStep, defineWorker } from '../../src/pipeline/define.js';
import { PipelineDefinitionError, planPartition, planRange, rowId, stepIdentity, taskId, validatePipeline } from '../../src/pipeline/plan.js';
import type { StepDefinition } from '../../src/pipeline/types.js';
import { thrownMetaspnError } from '../thrown.js';

const step = (name: string, after: string[] = [], extra: Partial<StepDefinition<unknown>> = {}): StepDefinition<unknown> =>
  defineStep({ name, after, plan: () => [], worker: defineWorker({ handle: () => [] }), ...extra });

describe('pipeline plan (pure)', () => {
  it('orders a DAG topologically, independent steps in declared order', () => {
    const p = { name: 'dp', partition: 'date' as const, steps: [step('finalize', ['sim']), step('sim', ['minutes', 'rates']), step('rates', ['ingest']), step('minutes', ['ingest']), step('ingest')] };
    expect(validatePipeline(p).map((s) => s.name)).toEqual(['ingest', 'rates', 'minutes', 'sim', 'finalize']);
  });

  it.each([
    ['a cycle', [step('a', ['b']), step('b', ['a'])], /steps a, b form a cycle/],
    ['an unknown dependency', [step('a', ['nope'])], /step a depends on unknown step nope/],
    ['a step twice', [step('a'), step('a')], /step a is declared twice/],
    ['a bad step name', [step('A b')], /step name "A b" must match/],
    [
      'a shared queue',
      [step('a', [], { worker: defineWorker({ name: 'q', handle: () => [] }) }), step('b', [], { worker: defineWorker({ name: 'q', handle: () => [] }) })],
      /steps a and b share the queue q/,
    ],
    ['an input leaving inputs/', [step('a', [], { inputs: ['../secret'] })], /input "..\/secret" must be a relative path/],
    ['no steps', [], /steps must be a non-empty array/],
  ])('refuses %s with exit 64 naming the rule', (_what, steps, rule) => {
    const e = thrownMetaspnError(() => definePipeline({ name: 'dp', partition: 'date', steps }));
    expect(e).toBeInstanceOf(PipelineDefinitionError);
    expect(e.exitCode).toBe(64);
    expect(e.message).toMatch(/^pipeline dp: /);
    expect(e.message).toMatch(rule);
  });

  it('refuses a bad pipeline name, a duplicate check and a check reading an unknown step', () => {
    expect(thrownMetaspnError(() => definePipeline({ name: 'Bad Name', partition: 'date', steps: [step('a')] })).message).toMatch(/name must match/);
    const c = { name: 'c', run: () => ({ status: 'pass' as const, observed: 1, expected: 1 }) };
    expect(thrownMetaspnError(() => definePipeline({ name: 'dp', partition: 'date', steps: [step('a')], checks: [c, c] })).message).toMatch(/check c is declared twice/);
    expect(thrownMetaspnError(() => definePipeline({ name: 'dp', partition: 'date', steps: [step('a')], checks: [{ ...c, reads: ['zz'] }] })).message).toMatch(/check c reads unknown step zz/);
  });

  it('identities and ids: deterministic, and any change of what a step reads changes them', () => {
    const m = {
      pipeline: 'dp',
      step: 'sim',
      partition: '2026-03-02',
      as_of: '2026-03-03T00:00:00.000Z',
      params: { model: 1 },
      inputs: { 'e.jsonl': 'x' },
      upstream: { ingest: 'aaaa' },
      previous: null,
    };
    const id = stepIdentity(m);
    expect(id).toMatch(/^[0-9a-f]{16}$/);
    expect(stepIdentity({ ...m, upstream: { ingest: 'aaaa' } })).toBe(id);
    for (const change of [{ params: { model: 2 } }, { inputs: { 'e.jsonl': 'y' } }, { upstream: { ingest: 'bbbb' } }, { previous: 'run-1' }, { as_of: '2026-03-02T12:00:00.000Z' }]) {
      expect(stepIdentity({ ...m, ...change })).not.toBe(id);
    }
    expect(taskId('dp', 'sim', '2026-03-02', 'e1', id)).toMatch(/^task_[0-9a-f]{24}$/);
    expect(rowId('dp', 'sim', '2026-03-02', 'e1', id)).toMatch(/^row_[0-9a-f]{24}$/);
    expect(rowId('dp', 'sim', '2026-03-02', 'e1', id)).not.toBe(rowId('dp', 'sim', '2026-03-02', 'e2', id));
  });

  describe('partitions and the clock', () => {
    const p = { name: 'dp', partitions: { start: '2026-01-01', end: '2026-12-31' } };
    const now = Date.parse('2026-06-10T15:00:00.000Z');

    it('a partition that is over runs as of the next midnight', () => {
      expect(planPartition(p, '2026-06-09', undefined, now)).toEqual({ partition: '2026-06-09', as_of: '2026-06-10T00:00:00.000Z', provisional: false });
    });

    it('today or tomorrow without --as-of: exit 10, naming when it ends', () => {
      for (const d of ['2026-06-10', '2026-06-11']) {
        const e = thrownMetaspnError(() => planPartition(p, d, undefined, now));
        expect(e.exitCode).toBe(10);
        expect(e.message).toMatch(/is not over yet/);
      }
    });

    it('an --as-of later than the clock: exit 10; not later: a provisional run of the open day', () => {
      expect(thrownMetaspnError(() => planPartition(p, '2026-06-10', '2026-06-10T16:00:00Z', now)).message).toMatch(/later than the clock/);
      // Far past the partition's own end too: still 10 (the clock), not a usage error.
      expect(thrownMetaspnError(() => planPartition(p, '2026-06-10', '2099-01-01T00:00:00Z', now)).exitCode).toBe(10);
      expect(planPartition(p, '2026-06-10', '2026-06-10T14:00:00Z', now)).toEqual({ partition: '2026-06-10', as_of: '2026-06-10T14:00:00.000Z', provisional: true });
    });

    it('outside the bounds: exit 10; a malformed date: 64', () => {
      expect(thrownMetaspnError(() => planPartition(p, '2025-12-31', undefined, now)).exitCode).toBe(10);
      expect(thrownMetaspnError(() => planPartition(p, '2026-02-30', undefined, now)).exitCode).toBe(64);
    });

    it('a range: every partition checked; start after end is 64', () => {
      expect(planRange(p, '2026-02-27', '2026-03-01', now).map((x) => x.partition)).toEqual(['2026-02-27', '2026-02-28', '2026-03-01']);
      expect(thrownMetaspnError(() => planRange(p, '2026-03-01', '2026-02-27', now)).exitCode).toBe(64);
      expect(thrownMetaspnError(() => planRange(p, '2026-06-08', '2026-06-11', now)).exitCode).toBe(10);
    });
  });
});
