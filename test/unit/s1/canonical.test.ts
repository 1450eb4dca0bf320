import fc from 'fast-check';
import stringify from 'fast-json-stable-stringify';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../../workers/s1/canonical.js';
import { attentionRow, projectionRow, settlementRow, summaryRow } from '../../../workers/s1/math.js';
import { settle } from '../../../workers/s1/math/settle.js';
import { makeParams, withCounted } from '../../../workers/s1/ids.js';

const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.string(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string(), tie('value'), { maxKeys: 6 }),
  ),
}));

describe('canonical row JSON', () => {
  it('is byte-identical to fast-json-stable-stringify for any JSON object', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), json.value, { maxKeys: 8 }), (o) => {
        expect(canonicalJson(o)).toBe(stringify(o));
      }),
      { numRuns: 2000 },
    );
  });

  it('is byte-identical for every kind of store row', () => {
    const params = makeParams('2026-01-16T00:00:00.000Z', '3bbf9e591339f3a2', '0123456789abcdef');
    const counted = withCounted(params, 'fedcba9876543210');
    const season = { id: 's1', start: '2026-01-01', end: '2026-03-31', daily_pool_units: 1000000 };
    const settlement = settle(
      new Map([
        [
          '2026-01-15',
          [
            { subject_ref: 'a', projected_units: 600000 },
            { subject_ref: 'b', projected_units: 400000 },
          ],
        ],
      ]),
    );
    const rows = [
      attentionRow('2026-01-15', { subject_ref: 'a', score: 12.345678, signal_count: 3 }, params),
      projectionRow('2026-01-15', { subject_ref: 'a', score: 0.1, projected_units: 600000 }, params),
      settlementRow('2026-01-15', season, settlement.rows[0]!, counted),
      summaryRow({
        date: '2026-01-15',
        season,
        params: counted,
        scores: [
          { subject_ref: 'a', score: 1e-7 },
          { subject_ref: 'b', score: 1e21 },
        ],
        projections: [{ subject_ref: 'a', projected_units: 600000 }],
        settlement,
      }),
    ];
    for (const r of rows) expect(canonicalJson(r)).toBe(stringify(r));
  });
});
