import type { ScoredSubject } from './rewards.js';
import type { ProjectedUnits, SettledSubject } from './settle.js';
import { compareText } from './order.js';

/** One entry of a summary's `top`. */
export type TopEntry = { subject_ref: string; score: number; projected_units: number; settled_units: number };

/** How many subjects a summary's `top` lists. */
export const TOP_SIZE = 10;

/**
 * The first `limit` (default 10) settled subjects by (`settled_units` desc, `subject_ref` asc),
 * with the date's `score` and `projected_units` (0 where the subject had no row that day).
 */
export function buildSummaryTop(settled: readonly SettledSubject[], scores: readonly ScoredSubject[], projections: readonly ProjectedUnits[], limit: number = TOP_SIZE): TopEntry[] {
  const scoreOf = new Map(scores.map((s) => [s.subject_ref, s.score]));
  const unitsOf = new Map(projections.map((p) => [p.subject_ref, p.projected_units]));
  return [...settled]
    .sort((a, b) => b.settled_units - a.settled_units || compareText(a.subject_ref, b.subject_ref))
    .slice(0, limit)
    .map((s) => ({
      subject_ref: s.subject_ref,
      score: scoreOf.get(s.subject_ref) ?? 0,
      projected_units: unitsOf.get(s.subject_ref) ?? 0,
      settled_units: s.settled_units,
    }));
}
