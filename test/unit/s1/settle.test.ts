import { describe, expect, it } from 'vitest';
import { buildSummaryTop, settle, settlementStatus, type ProjectedUnits } from '../../../workers/s1/math.js';

const p = (subject_ref: string, projected_units: number): ProjectedUnits => ({ subject_ref, projected_units });

describe('settle', () => {
  // 01-01: a 4, b 3, c 3 (10 units); 01-02: no projections; 01-03: a 5, b 0, d 5 (10 units).
  const byDate = new Map<string, ProjectedUnits[]>([
    ['2026-01-03', [p('a', 5), p('b', 0), p('d', 5)]],
    ['2026-01-01', [p('a', 4), p('b', 3), p('c', 3)]],
    ['2026-01-02', []],
  ]);

  it('sums each subject over the counted dates', () => {
    const s = settle(byDate);
    expect(s.rows).toEqual([
      { subject_ref: 'a', settled_units: 9, days_counted: 2 }, // 4 + 5
      { subject_ref: 'b', settled_units: 3, days_counted: 2 }, // 3 + 0: a row of 0 units still counts the day
      { subject_ref: 'c', settled_units: 3, days_counted: 1 },
      { subject_ref: 'd', settled_units: 5, days_counted: 1 },
    ]);
    expect(s.dates_counted).toBe(2); // 01-02 had no projections
    expect(s.total_units).toBe(20);
  });

  it('passes the conservation check: settled 9+3+3+5 = projected 10+10', () => {
    expect(settle(byDate).conservation).toEqual({ ok: true, settled_units: 20, projected_units: 20 });
  });

  it('settles nothing from nothing', () => {
    expect(settle(new Map())).toEqual({
      rows: [],
      dates_counted: 0,
      total_units: 0,
      conservation: { ok: true, settled_units: 0, projected_units: 0 },
    });
  });

  it('refuses a subject projected twice on one date', () => {
    expect(() => settle(new Map([['2026-01-01', [p('a', 1), p('a', 2)]]]))).toThrow(RangeError);
  });

  it('is final only on the season end', () => {
    expect(settlementStatus('2026-03-31', '2026-03-31')).toBe('final');
    expect(settlementStatus('2026-03-30', '2026-03-31')).toBe('provisional');
  });
});

describe('buildSummaryTop', () => {
  it('orders by settled_units desc then subject_ref asc, keeps 10, fills 0 for missing rows', () => {
    // 12 subjects; s03 and s02 tie at 50 (s02 first), "B" and "a" tie at 7 ("B" < "a" in code units).
    const settled = [
      ['s01', 10],
      ['s02', 50],
      ['s03', 50],
      ['s04', 40],
      ['s05', 30],
      ['s06', 20],
      ['s07', 9],
      ['s08', 8],
      ['a', 7],
      ['B', 7],
      ['s11', 1],
      ['s12', 0],
    ].map(([subject_ref, settled_units]) => ({ subject_ref: String(subject_ref), settled_units: Number(settled_units), days_counted: 1 }));
    const scores = [
      { subject_ref: 's02', score: 2.5 },
      { subject_ref: 's04', score: 0 },
    ];
    const projections = [p('s02', 12)];
    const top = buildSummaryTop(settled, scores, projections);
    expect(top.map((t) => t.subject_ref)).toEqual(['s02', 's03', 's04', 's05', 's06', 's01', 's07', 's08', 'B', 'a']);
    expect(top[0]).toEqual({ subject_ref: 's02', score: 2.5, projected_units: 12, settled_units: 50 });
    expect(top[1]).toEqual({ subject_ref: 's03', score: 0, projected_units: 0, settled_units: 50 }); // no row that day
    expect(top[2]).toEqual({ subject_ref: 's04', score: 0, projected_units: 0, settled_units: 40 });
    expect(buildSummaryTop(settled, scores, projections, 3)).toHaveLength(3);
    expect(buildSummaryTop([], [], [])).toEqual([]);
  });
});
