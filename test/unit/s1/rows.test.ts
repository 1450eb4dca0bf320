import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { configHash, resolveS1Config } from '../../../workers/s1/config.js';
import { makeParams, withCounted } from '../../../workers/s1/ids.js';
import { attentionRow, projectRewards, projectionRow, settle, settlementRow, summaryRow } from '../../../workers/s1/math.js';

const CFG = resolveS1Config(undefined, 'cfg');
const PARAMS = makeParams('2026-01-16T00:00:00.000Z', configHash(CFG), '0123456789abcdef');
const COUNTED = withCounted(PARAMS, 'fedcba9876543210');

/** The id computed independently: sha256 over the stable text built by hand (stages 3-4: with counted). */
function idOf(prefix: string, stage: string, date: string, subject: string): string {
  const counted = prefix === 'stl' || prefix === 'sum' ? `,"counted":"${COUNTED.counted}"` : '';
  const stable = `{"date":"${date}","params":{"as_of":"${PARAMS.as_of}","config_hash":"${PARAMS.config_hash}"${counted},"inputs":"${PARAMS.inputs}"},"stage":"${stage}","subject_ref":"${subject}"}`;
  return `${prefix}_${createHash('sha256').update(stable).digest('hex').slice(0, 24)}`;
}

describe('store rows', () => {
  it('builds an attention row with exactly the spec fields', () => {
    const row = attentionRow('2026-01-15', { subject_ref: 'creator:alice', score: 1.5, signal_count: 2 }, PARAMS);
    expect(Object.keys(row)).toEqual(['id', 'stage', 'date', 'subject_ref', 'score', 'signal_count', 'params']);
    expect(row).toEqual({
      id: idOf('att', 'update_attention_scores', '2026-01-15', 'creator:alice'),
      stage: 'update_attention_scores',
      date: '2026-01-15',
      subject_ref: 'creator:alice',
      score: 1.5,
      signal_count: 2,
      params: { as_of: '2026-01-16T00:00:00.000Z', config_hash: '3bbf9e591339f3a2', inputs: '0123456789abcdef' },
    });
    expect(row.params).not.toBe(PARAMS);
  });

  it('builds a projection row', () => {
    const row = projectionRow('2026-01-15', { subject_ref: 'b', score: 2, projected_units: 7 }, PARAMS);
    expect(Object.keys(row)).toEqual(['id', 'stage', 'date', 'subject_ref', 'score', 'projected_units', 'params']);
    expect(row.id).toBe(idOf('rwd', 'project_rewards', '2026-01-15', 'b'));
    expect(row.stage).toBe('project_rewards');
  });

  it('builds settlement rows, final only on the season end', () => {
    const s = { subject_ref: 'b', settled_units: 9, days_counted: 2 };
    const row = settlementRow('2026-01-15', CFG.season, s, COUNTED);
    expect(Object.keys(row)).toEqual(['id', 'stage', 'date', 'season_id', 'subject_ref', 'settled_units', 'days_counted', 'status', 'params']);
    expect(row).toMatchObject({ id: idOf('stl', 'settle_season', '2026-01-15', 'b'), season_id: 's1', status: 'provisional', days_counted: 2 });
    expect(row.params).toEqual({ as_of: '2026-01-16T00:00:00.000Z', config_hash: '3bbf9e591339f3a2', counted: 'fedcba9876543210', inputs: '0123456789abcdef' });
    expect(settlementRow('2026-03-31', CFG.season, s, COUNTED).status).toBe('final');
  });

  it('builds the summary row of a date', () => {
    // Today: a 0.1, b 0.2, c 0 scored; the pool of 10 split a 3, b 7 (a: 10*0.1/0.3 = 3.33 -> 3; b: 6.67 -> 6+1).
    const scores = [
      { subject_ref: 'b', score: 0.2 },
      { subject_ref: 'a', score: 0.1 },
      { subject_ref: 'c', score: 0 },
    ];
    const today = [
      { subject_ref: 'a', projected_units: 3 },
      { subject_ref: 'b', projected_units: 7 },
    ];
    expect(projectRewards(scores, 10).map(({ subject_ref, projected_units }) => ({ subject_ref, projected_units }))).toEqual(today);
    // Yesterday d got all 10.
    const settlement = settle(
      new Map([
        ['2026-01-14', [{ subject_ref: 'd', projected_units: 10 }]],
        ['2026-01-15', today],
      ]),
    );
    const season = { ...CFG.season, daily_pool_units: 10 };
    const row = summaryRow({ date: '2026-01-15', season, params: COUNTED, scores, projections: today, settlement });
    expect(row).toEqual({
      id: idOf('sum', 'publish_season_summary', '2026-01-15', '*'),
      stage: 'publish_season_summary',
      date: '2026-01-15',
      season_id: 's1',
      params: COUNTED,
      subjects_scored: 3,
      total_score: 0.3, // 0.1 + 0.2 + 0 = 0.30000000000000004 -> round6 -> 0.3
      pool_units: 10,
      allocated_units: 10,
      settlement_status: 'provisional',
      days_counted: 2,
      top: [
        { subject_ref: 'd', score: 0, projected_units: 0, settled_units: 10 },
        { subject_ref: 'b', score: 0.2, projected_units: 7, settled_units: 7 },
        { subject_ref: 'a', score: 0.1, projected_units: 3, settled_units: 3 },
      ],
    });
    expect(Object.keys(row)).toEqual(['id', 'stage', 'date', 'season_id', 'params', 'subjects_scored', 'total_score', 'pool_units', 'allocated_units', 'settlement_status', 'days_counted', 'top']);
  });

  it('records the pool as unallocated on a date with no signals', () => {
    const row = summaryRow({ date: '2026-03-31', season: CFG.season, params: COUNTED, scores: [], projections: [], settlement: settle(new Map()) });
    expect(row).toMatchObject({
      subjects_scored: 0,
      total_score: 0,
      pool_units: 1_000_000,
      allocated_units: 0,
      settlement_status: 'final',
      days_counted: 0,
      top: [],
    });
  });
});
