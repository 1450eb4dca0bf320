import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DATE_LEVEL_SUBJECT, STAGES, STAGE_PREFIX, deterministicId, type Params } from '../../../workers/s1/ids.js';

const PARAMS: Params = { as_of: '2026-01-16T00:00:00.000Z', config_hash: '0123456789abcdef' };

describe('stages', () => {
  it('lists the four stages in order with their prefixes', () => {
    expect(STAGES).toEqual(['update_attention_scores', 'project_rewards', 'settle_season', 'publish_season_summary']);
    expect(STAGES.map((s) => STAGE_PREFIX[s])).toEqual(['att', 'rwd', 'stl', 'sum']);
  });
});

describe('deterministicId', () => {
  it('matches sha256 over the hand-written stable stringification', () => {
    const stable =
      '{"date":"2026-01-15","params":{"as_of":"2026-01-16T00:00:00.000Z","config_hash":"0123456789abcdef"},' +
      '"stage":"update_attention_scores","subject_ref":"creator:alice"}';
    const expected = `att_${createHash('sha256').update(stable).digest('hex').slice(0, 24)}`;
    expect(expected).toBe('att_33919de77fa3406847f4503d');
    expect(deterministicId('update_attention_scores', '2026-01-15', 'creator:alice', PARAMS)).toBe(expected);
  });

  it('uses "*" for date-level ids and the stage prefix', () => {
    const stable =
      '{"date":"2026-01-15","params":{"as_of":"2026-01-16T00:00:00.000Z","config_hash":"0123456789abcdef"},' +
      '"stage":"project_rewards","subject_ref":"*"}';
    const expected = `rwd_${createHash('sha256').update(stable).digest('hex').slice(0, 24)}`;
    expect(deterministicId('project_rewards', '2026-01-15', DATE_LEVEL_SUBJECT, PARAMS)).toBe(expected);
  });

  it('depends on every input but not on extra params keys', () => {
    const base = deterministicId('settle_season', '2026-01-15', 'a', PARAMS);
    expect(base).toMatch(/^stl_[0-9a-f]{24}$/);
    expect(deterministicId('settle_season', '2026-01-15', 'a', { ...PARAMS, extra: 1 } as Params)).toBe(base);
    expect(deterministicId('settle_season', '2026-01-16', 'a', PARAMS)).not.toBe(base);
    expect(deterministicId('settle_season', '2026-01-15', 'b', PARAMS)).not.toBe(base);
    expect(deterministicId('settle_season', '2026-01-15', 'a', { ...PARAMS, as_of: '2026-01-15T12:00:00.000Z' })).not.toBe(base);
    expect(deterministicId('publish_season_summary', '2026-01-15', 'a', PARAMS).startsWith('sum_')).toBe(true);
  });
});
