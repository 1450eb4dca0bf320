import { compareText } from './order.js';

/** A subject's score on one date, as input to the projection. */
export type ScoredSubject = { subject_ref: string; score: number };

/** A subject's projected reward units on one date. */
export type Projection = { subject_ref: string; score: number; projected_units: number };

/**
 * Splits `poolUnits` over the subjects with `score > 0` by the largest-remainder method, exactly
 * as the spec says: `total` = sum of scores in ascending subject_ref order;
 * `quota = poolUnits * score / total` (multiply first); `base = floor(quota)`; the remainder
 * `poolUnits - sum(base)` goes one unit each to the largest `quota - base`, ties to the smaller
 * subject_ref. Returns rows sorted by subject_ref; `[]` when no score is > 0.
 * @throws RangeError on a repeated subject_ref, or when floating point cannot split the pool
 *   exactly (only with pools or scores near 2^53).
 */
export function projectRewards(scores: readonly ScoredSubject[], poolUnits: number): Projection[] {
  const positive = scores.filter((s) => s.score > 0).sort((a, b) => compareText(a.subject_ref, b.subject_ref));
  if (positive.length === 0) return [];
  for (let i = 1; i < positive.length; i++) {
    if (positive[i - 1]?.subject_ref === positive[i]?.subject_ref) {
      throw new RangeError(`subject ${positive[i]?.subject_ref} is scored twice`);
    }
  }
  let total = 0;
  for (const s of positive) total += s.score;
  const shares = positive.map((s, index) => {
    const quota = (poolUnits * s.score) / total;
    const base = Math.floor(quota);
    return { index, subject_ref: s.subject_ref, base, fraction: quota - base };
  });
  let remainder = poolUnits;
  for (const s of shares) remainder -= s.base;
  // With safe pools the remainder is provably in [0, n]; outside it the split is not exact.
  if (!Number.isSafeInteger(remainder) || remainder < 0 || remainder > shares.length) {
    throw new RangeError(`cannot split ${poolUnits} units exactly over ${shares.length} subjects (precision lost)`);
  }
  const byFraction = [...shares].sort((a, b) => b.fraction - a.fraction || compareText(a.subject_ref, b.subject_ref));
  const units = shares.map((s) => s.base);
  for (const s of byFraction.slice(0, remainder)) units[s.index] = s.base + 1;
  return positive.map((s, i) => ({ subject_ref: s.subject_ref, score: s.score, projected_units: units[i] ?? 0 }));
}
