import { compareText } from './order.js';

/** One projection row as settlement needs it. */
export type ProjectedUnits = { subject_ref: string; projected_units: number };

/** A subject's settled total up to a date. */
export type SettledSubject = { subject_ref: string; settled_units: number; days_counted: number };

/** `final` on `season.end`, else `provisional`. */
export type SettlementStatus = 'final' | 'provisional';

/** Both sides of the conservation check, and whether they agree. */
export type Conservation = { ok: boolean; settled_units: number; projected_units: number };

/** The result of {@link settle}. */
export type Settlement = {
  /** One row per subject that had a projection row on a counted date, by subject_ref. */
  rows: SettledSubject[];
  /** How many dates had at least one projection row. */
  dates_counted: number;
  /** Sum of the counted dates' projected units. */
  total_units: number;
  conservation: Conservation;
};

/**
 * Settles the season up to a date. The caller passes, for each season date up to and including
 * the run's date, the projections to count: the published-current run's for earlier dates, this
 * run's for the date itself. A date mapped to `[]` has no projections and is not counted.
 *
 * `settled_units` = sum of a subject's `projected_units` over the dates; `days_counted` = on how
 * many of them it had a projection row (a row of 0 units counts).
 * @throws RangeError when a subject appears twice on one date.
 */
export function settle(projectionsByDate: ReadonlyMap<string, readonly ProjectedUnits[]>): Settlement {
  const bySubject = new Map<string, SettledSubject>();
  let datesCounted = 0;
  let projectedSum = 0;
  for (const date of [...projectionsByDate.keys()].sort(compareText)) {
    const rows = projectionsByDate.get(date) ?? [];
    if (rows.length === 0) continue;
    datesCounted++;
    const seen = new Set<string>();
    for (const p of rows) {
      if (seen.has(p.subject_ref)) throw new RangeError(`subject ${p.subject_ref} is projected twice on ${date}`);
      seen.add(p.subject_ref);
      projectedSum += p.projected_units;
      const acc = bySubject.get(p.subject_ref);
      if (acc === undefined) bySubject.set(p.subject_ref, { subject_ref: p.subject_ref, settled_units: p.projected_units, days_counted: 1 });
      else {
        acc.settled_units += p.projected_units;
        acc.days_counted++;
      }
    }
  }
  const rows = [...bySubject.values()].sort((a, b) => compareText(a.subject_ref, b.subject_ref));
  let settledSum = 0;
  for (const r of rows) settledSum += r.settled_units;
  // Safe-integer sums are exact, so "equal" really means conserved.
  const ok = settledSum === projectedSum && Number.isSafeInteger(settledSum);
  return {
    rows,
    dates_counted: datesCounted,
    total_units: projectedSum,
    conservation: { ok, settled_units: settledSum, projected_units: projectedSum },
  };
}

/** The settlement status of a run for `date`: `final` when `date === seasonEnd`. */
export function settlementStatus(date: string, seasonEnd: string): SettlementStatus {
  return date === seasonEnd ? 'final' : 'provisional';
}
