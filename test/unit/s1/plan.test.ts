import { describe, expect, it } from 'vitest';
import { MetaspnError, UsageError } from '../../../src/guard/errors.js';
import { resolveS1Config } from '../../../workers/s1/config.js';
import { deterministicId } from '../../../workers/s1/ids.js';
import { planRun, stageTasks } from '../../../workers/s1/plan.js';

const CFG = resolveS1Config(undefined, 'cfg');
const at = (iso: string): number => Date.parse(iso);

function rejectOf(fn: () => unknown): MetaspnError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(MetaspnError);
    return err as MetaspnError;
  }
  throw new Error('expected a MetaspnError');
}

describe('planRun and the clock', () => {
  it('a date that is over runs with its default as-of, not provisional', () => {
    expect(planRun(CFG, '2026-01-15', undefined, at('2026-01-16T00:00:00Z'))).toEqual({
      date: '2026-01-15',
      as_of: '2026-01-16T00:00:00.000Z',
      provisional: false,
      config_hash: '3bbf9e591339f3a2',
    });
    expect(planRun(CFG, '2026-01-15', '2026-01-15T12:00:00Z', at('2026-02-01T00:00:00Z')).provisional).toBe(false);
  });

  it('a date not over yet is refused (10) without --as-of', () => {
    const e = rejectOf(() => planRun(CFG, '2026-01-15', undefined, at('2026-01-15T23:59:59.999Z')));
    expect(e.code).toBe('BUSINESS_REJECT');
    expect(e.message).toBe('--date 2026-01-15 is not over yet: it ends at 2026-01-16T00:00:00.000Z, the clock says 2026-01-15T23:59:59.999Z; nothing was run');
    expect(rejectOf(() => planRun(CFG, '2026-01-20', undefined, at('2026-01-15T12:00:00Z'))).code).toBe('BUSINESS_REJECT');
  });

  it('an --as-of later than the clock is refused (10), even on a date that is over', () => {
    const e = rejectOf(() => planRun(CFG, '2026-01-15', '2026-01-15T13:00:00Z', at('2026-01-15T12:00:00Z')));
    expect(e.code).toBe('BUSINESS_REJECT');
    expect(e.message).toContain('--as-of 2026-01-15T13:00:00.000Z is later than the clock (2026-01-15T12:00:00.000Z)');
    // The clock check comes before the check against the date's default (64).
    expect(rejectOf(() => planRun(CFG, '2026-01-15', '2026-01-17T00:00:00Z', at('2026-01-15T12:00:00Z'))).code).toBe('BUSINESS_REJECT');
    expect(() => planRun(CFG, '2026-01-15', '2026-01-17T00:00:00Z', at('2026-02-01T00:00:00Z'))).toThrow(UsageError);
  });

  it('an --as-of not later than the clock on an open day is a provisional run', () => {
    expect(planRun(CFG, '2026-01-15', '2026-01-15T12:00:00Z', at('2026-01-15T12:00:00Z'))).toMatchObject({ as_of: '2026-01-15T12:00:00.000Z', provisional: true });
  });

  it('the season bounds come first (10), malformed flags stay 64', () => {
    expect(rejectOf(() => planRun(CFG, '2026-04-01', undefined, at('2026-01-01T00:00:00Z'))).message).toContain('outside season');
    expect(() => planRun(CFG, '2026-02-30', undefined)).toThrow(UsageError);
    expect(() => planRun(CFG, '2026-01-15', 'noon', at('2026-02-01T00:00:00Z'))).toThrow(UsageError);
  });
});

describe('stageTasks', () => {
  const params = { as_of: '2026-01-16T00:00:00.000Z', config_hash: '3bbf9e591339f3a2', inputs: '0123456789abcdef' };

  it('carries the whole identity in each payload: inputs for stages 1-2, counted too for stages 3-4', () => {
    const [t] = stageTasks('update_attention_scores', '2026-01-15', params, ['creator:a']);
    expect(t).toEqual({ id: deterministicId('update_attention_scores', '2026-01-15', 'creator:a', params), payload: { date: '2026-01-15', ...params, subject_ref: 'creator:a' } });
    const counted = { ...params, counted: 'fedcba9876543210' };
    const [s] = stageTasks('settle_season', '2026-01-15', counted, []);
    expect(s!.payload).toEqual({ date: '2026-01-15', ...counted });
    expect(s!.id).toMatch(/^stl_/);
    // A stage 2 task ignores a counted key; stage 3-4 tasks cannot be planned without one.
    expect(stageTasks('project_rewards', '2026-01-15', counted, [])[0]!.payload).toEqual({ date: '2026-01-15', ...params });
    expect(() => stageTasks('publish_season_summary', '2026-01-15', params, [])).toThrow(RangeError);
  });

  it('tags the tasks with their group when given', () => {
    expect(stageTasks('project_rewards', '2026-01-15', params, [], 's1/2026-01-15')[0]!.group).toBe('s1/2026-01-15');
  });
});
