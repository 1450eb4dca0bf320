import { describe, expect, it } from 'vitest';
import { resolveS1Config } from '../../../workers/s1/config.js';
import { attentionForSubject, compareSignals, groupBySubject, round6, scoreSubjects } from '../../../workers/s1/math.js';
import type { Signal } from '../../../workers/s1/signals.js';

const ATT = resolveS1Config(undefined, 'cfg').attention; // half-life 7, window 28, default weights

function sig(signal_id: string, ts: string, kind: string, value = 1, subject_ref = 'creator:alice'): Signal {
  return { signal_id, ts_ms: Date.parse(ts), subject_ref, kind, value };
}

const asOf = (iso: string): number => Date.parse(iso);
const DEFAULT_AS_OF_0129 = asOf('2026-01-30T00:00:00.000Z');

describe('round6', () => {
  it('rounds half up to 6 decimals', () => {
    expect(round6(8.052044756836906)).toBe(8.052045);
    expect(round6(0.1 + 0.2)).toBe(0.3);
    expect(round6(1.0000004)).toBe(1);
    expect(round6(0)).toBe(0);
  });
});

describe('attentionForSubject', () => {
  // Date 2026-01-29, window 28: days 2026-01-02 .. 2026-01-29.
  const alice = [
    sig('s1', '2026-01-29T10:00:00Z', 'view'), // age 0: 1 * 1 * 1 = 1
    sig('s2', '2026-01-22T10:00:00Z', 'like'), // age 7: 3 * 1 * 0.5 = 1.5
    sig('s3', '2026-01-15T00:00:00Z', 'follow', 2), // age 14: 10 * 2 * 0.25 = 5
    sig('s4', '2026-01-02T12:00:00Z', 'share'), // age 27 (first window day): 8 * 2^(-27/7) = 0.5 * 2^(1/7) = 0.55204476
    sig('s5', '2026-01-01T23:59:59.999Z', 'follow'), // age 28: one day before the window, excluded
    sig('s6', '2026-01-30T00:00:00Z', 'follow'), // the next day, at as_of: excluded
  ];

  it('sums decayed weights over the window and rounds to 6 decimals', () => {
    // 0.55204476 + 5 + 1.5 + 1 = 8.05204476 -> 8.052045; four signals counted.
    expect(attentionForSubject(alice, '2026-01-29', DEFAULT_AS_OF_0129, ATT)).toEqual({ score: 8.052045, signal_count: 4 });
  });

  it('includes the first window day and excludes the day before it', () => {
    const edge = [sig('first', '2026-01-02T00:00:00Z', 'share'), sig('before', '2026-01-01T23:59:59Z', 'share')];
    // Only "first": 8 * 2^(-27/7) = 0.552044757 -> 0.552045.
    expect(attentionForSubject(edge, '2026-01-29', DEFAULT_AS_OF_0129, ATT)).toEqual({ score: 0.552045, signal_count: 1 });
    expect(attentionForSubject([sig('before', '2026-01-01T23:59:59Z', 'share')], '2026-01-29', DEFAULT_AS_OF_0129, ATT)).toBeNull();
  });

  it('halves the weight at one half-life (7 days)', () => {
    // like = 3, age 7 -> 1.5 exactly.
    expect(attentionForSubject([sig('x', '2026-01-22T23:00:00Z', 'like')], '2026-01-29', DEFAULT_AS_OF_0129, ATT)).toEqual({
      score: 1.5,
      signal_count: 1,
    });
    // follow = 10, age 21 = three half-lives -> 10 / 8 = 1.25.
    expect(attentionForSubject([sig('x', '2026-01-08T00:00:00Z', 'follow')], '2026-01-29', DEFAULT_AS_OF_0129, ATT)?.score).toBe(1.25);
  });

  it('uses only signals with ts < as_of', () => {
    // as_of 10:00 on the date itself: s1 at exactly 10:00 is out -> 0.55204476 + 5 + 1.5 = 7.052045, three signals.
    expect(attentionForSubject(alice, '2026-01-29', asOf('2026-01-29T10:00:00Z'), ATT)).toEqual({ score: 7.052045, signal_count: 3 });
    // One millisecond later it is in again.
    expect(attentionForSubject(alice, '2026-01-29', asOf('2026-01-29T10:00:00.001Z'), ATT)?.signal_count).toBe(4);
  });

  it('gives score 0 (not null) to a subject whose signals weigh nothing', () => {
    expect(attentionForSubject([sig('z', '2026-01-29T01:00:00Z', 'follow', 0)], '2026-01-29', DEFAULT_AS_OF_0129, ATT)).toEqual({
      score: 0,
      signal_count: 1,
    });
    const zeroView = { ...ATT, weights: { view: 0, like: 3 } };
    expect(attentionForSubject([sig('z', '2026-01-29T01:00:00Z', 'view', 5)], '2026-01-29', DEFAULT_AS_OF_0129, zeroView)).toEqual({
      score: 0,
      signal_count: 1,
    });
  });

  it('returns null when no signal falls in the window', () => {
    expect(attentionForSubject(alice, '2026-03-10', asOf('2026-03-11T00:00:00Z'), ATT)).toBeNull(); // window starts 2026-02-11
    expect(attentionForSubject(alice, '2025-12-31', asOf('2026-01-01T00:00:00Z'), ATT)).toBeNull(); // before every signal
    expect(attentionForSubject([], '2026-01-29', DEFAULT_AS_OF_0129, ATT)).toBeNull();
  });

  it('does not depend on the input order', () => {
    const reversed = [...alice].reverse();
    expect(attentionForSubject(reversed, '2026-01-29', DEFAULT_AS_OF_0129, ATT)).toEqual({ score: 8.052045, signal_count: 4 });
  });

  it('honours window_days and half_life_days from the config', () => {
    const att = { ...ATT, window_days: 1, half_life_days: 1 };
    // Window is the date alone: only s1 (view, age 0) = 1.
    expect(attentionForSubject(alice, '2026-01-29', DEFAULT_AS_OF_0129, att)).toEqual({ score: 1, signal_count: 1 });
    // half-life 1 day, like at age 2 -> 3 / 4 = 0.75.
    const wide = { ...ATT, half_life_days: 1 };
    expect(attentionForSubject([sig('x', '2026-01-27T05:00:00Z', 'like')], '2026-01-29', DEFAULT_AS_OF_0129, wide)?.score).toBe(0.75);
  });
});

describe('ordering helpers', () => {
  it('orders signals by (ts, signal_id) with code-unit comparison', () => {
    const a = sig('b', '2026-01-01T00:00:00Z', 'view');
    const b = sig('a', '2026-01-01T00:00:00.001Z', 'view');
    const c = sig('B', '2026-01-01T00:00:00Z', 'view');
    expect([b, a, c].sort(compareSignals).map((s) => s.signal_id)).toEqual(['B', 'b', 'a']);
  });

  it('groups by subject with keys in code-unit order', () => {
    const signals = [
      sig('1', '2026-01-01T00:00:00Z', 'view', 1, 'b'),
      sig('2', '2026-01-01T00:00:00Z', 'view', 1, 'a'),
      sig('3', '2026-01-01T00:00:00Z', 'view', 1, 'B'),
      sig('4', '2026-01-02T00:00:00Z', 'view', 1, 'b'),
    ];
    const groups = groupBySubject(signals);
    expect([...groups.keys()]).toEqual(['B', 'a', 'b']); // localeCompare would put "a" first
    expect(groups.get('b')?.map((s) => s.signal_id)).toEqual(['1', '4']);
  });

  it('scores every subject with a counted signal, sorted by subject_ref', () => {
    const signals = [
      sig('1', '2026-01-29T01:00:00Z', 'like', 1, 'creator:bob'), // 3
      sig('2', '2026-01-22T01:00:00Z', 'follow', 1, 'creator:alice'), // 10 * 0.5 = 5
      sig('3', '2025-12-01T01:00:00Z', 'follow', 1, 'creator:carol'), // out of the window
    ];
    expect(scoreSubjects(groupBySubject(signals), '2026-01-29', DEFAULT_AS_OF_0129, ATT)).toEqual([
      { subject_ref: 'creator:alice', score: 5, signal_count: 1 },
      { subject_ref: 'creator:bob', score: 3, signal_count: 1 },
    ]);
    expect(scoreSubjects(groupBySubject(signals), '2026-03-10', asOf('2026-03-11T00:00:00Z'), ATT)).toEqual([]);
  });
});
