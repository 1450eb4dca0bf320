import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { projectRewards } from '../../../workers/s1/math.js';

describe('projectRewards', () => {
  it('splits exactly when quotas are whole', () => {
    // total 10: quotas 50, 30, 20.
    expect(
      projectRewards(
        [
          { subject_ref: 'x', score: 5 },
          { subject_ref: 'y', score: 3 },
          { subject_ref: 'z', score: 2 },
        ],
        100,
      ),
    ).toEqual([
      { subject_ref: 'x', score: 5, projected_units: 50 },
      { subject_ref: 'y', score: 3, projected_units: 30 },
      { subject_ref: 'z', score: 2, projected_units: 20 },
    ]);
  });

  it('gives the remainder to the largest fractions first', () => {
    // pool 7, total 4: quotas 3.5, 1.75, 1.75; bases 3+1+1 = 5; remainder 2 -> b and c (0.75 > 0.5).
    expect(
      projectRewards(
        [
          { subject_ref: 'a', score: 2 },
          { subject_ref: 'b', score: 1 },
          { subject_ref: 'c', score: 1 },
        ],
        7,
      ),
    ).toEqual([
      { subject_ref: 'a', score: 2, projected_units: 3 },
      { subject_ref: 'b', score: 1, projected_units: 2 },
      { subject_ref: 'c', score: 1, projected_units: 2 },
    ]);
  });

  it('breaks a tie of fractions toward the smaller subject_ref', () => {
    // pool 10, three equal scores: quotas 3.333.. each, bases 9, remainder 1 -> "a".
    expect(
      projectRewards(
        [
          { subject_ref: 'c', score: 1 },
          { subject_ref: 'a', score: 1 },
          { subject_ref: 'b', score: 1 },
        ],
        10,
      ).map((p) => p.projected_units),
    ).toEqual([4, 3, 3]);
    // Code-unit order, not locale order: "Zed" < "alpha" because "Z" (90) < "a" (97). Quotas 1.5 each, remainder 1.
    expect(
      projectRewards(
        [
          { subject_ref: 'alpha', score: 2 },
          { subject_ref: 'Zed', score: 2 },
        ],
        3,
      ),
    ).toEqual([
      { subject_ref: 'Zed', score: 2, projected_units: 2 },
      { subject_ref: 'alpha', score: 2, projected_units: 1 },
    ]);
  });

  it('leaves out subjects with score 0', () => {
    expect(
      projectRewards(
        [
          { subject_ref: 'a', score: 0 },
          { subject_ref: 'b', score: 2 },
        ],
        5,
      ),
    ).toEqual([{ subject_ref: 'b', score: 2, projected_units: 5 }]);
  });

  it('returns no rows when nobody scored above 0', () => {
    expect(projectRewards([], 1_000_000)).toEqual([]);
    expect(projectRewards([{ subject_ref: 'a', score: 0 }], 1_000_000)).toEqual([]);
  });

  it('keeps rows for a pool of 0', () => {
    expect(projectRewards([{ subject_ref: 'a', score: 1 }], 0)).toEqual([{ subject_ref: 'a', score: 1, projected_units: 0 }]);
  });

  it('splits the default pool over realistic scores', () => {
    // total = 8.052045 + 1.5 = 9.552045; quota a = 1e6 * 8.052045 / 9.552045 = 842965.56..., b = 157034.44...
    // bases 842965 + 157034 = 999999; remainder 1 -> a (0.56 > 0.44).
    expect(
      projectRewards(
        [
          { subject_ref: 'a', score: 8.052045 },
          { subject_ref: 'b', score: 1.5 },
        ],
        1_000_000,
      ).map((p) => p.projected_units),
    ).toEqual([842966, 157034]);
  });

  it('refuses to score a subject twice', () => {
    expect(() =>
      projectRewards(
        [
          { subject_ref: 'a', score: 1 },
          { subject_ref: 'a', score: 2 },
        ],
        10,
      ),
    ).toThrow(RangeError);
  });

  it('always allocates the whole pool, each subject floor(quota) or floor(quota)+1', () => {
    const subjects = fc.uniqueArray(
      fc.record({
        subject_ref: fc.string({ minLength: 1, maxLength: 6 }),
        score: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 1e6, noNaN: true }), fc.integer({ min: 0, max: 50 })),
      }),
      { selector: (s) => s.subject_ref, minLength: 1, maxLength: 40 },
    );
    fc.assert(
      fc.property(subjects, fc.integer({ min: 0, max: 1_000_000_000 }), (scores, pool) => {
        fc.pre(scores.some((s) => s.score > 0));
        const rows = projectRewards(scores, pool);
        const positive = scores.filter((s) => s.score > 0);
        const total = [...positive].sort((a, b) => (a.subject_ref < b.subject_ref ? -1 : 1)).reduce((t, s) => t + s.score, 0);
        expect(rows.reduce((t, r) => t + r.projected_units, 0)).toBe(pool);
        expect(rows).toHaveLength(positive.length);
        for (const r of rows) {
          const floor = Math.floor((pool * r.score) / total);
          expect([floor, floor + 1]).toContain(r.projected_units);
        }
        for (let i = 1; i < rows.length; i++) expect((rows[i - 1]?.subject_ref ?? '') < (rows[i]?.subject_ref ?? '')).toBe(true);
      }),
      { numRuns: 500 },
    );
  });
});
