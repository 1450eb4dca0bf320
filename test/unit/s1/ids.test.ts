import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DATE_LEVEL_SUBJECT, STAGES, STAGE_PREFIX, deterministicId, makeParams, paramsOf, projectionParamsOf, withCounted, type CountedParams, type Params } from '../../../workers/s1/ids.js';

const PARAMS: Params = { as_of: '2026-01-16T00:00:00.000Z', config_hash: '0123456789abcdef', inputs: 'aaaaaaaaaaaaaaaa' };
const COUNTED: CountedParams = { ...PARAMS, counted: 'bbbbbbbbbbbbbbbb' };

/** sha256 over a stable text written by hand, as S1-SPEC defines the id. */
const idOf = (prefix: string, stable: string): string => `${prefix}_${createHash('sha256').update(stable).digest('hex').slice(0, 24)}`;

describe('stages', () => {
  it('lists the four stages in order with their prefixes', () => {
    expect(STAGES).toEqual(['update_attention_scores', 'project_rewards', 'settle_season', 'publish_season_summary']);
    expect(STAGES.map((s) => STAGE_PREFIX[s])).toEqual(['att', 'rwd', 'stl', 'sum']);
  });
});

describe('params', () => {
  it('stages 1-2 carry {as_of, config_hash, inputs}; stages 3-4 also counted', () => {
    expect(makeParams('a', 'b', 'c')).toEqual({ as_of: 'a', config_hash: 'b', inputs: 'c' });
    expect(withCounted(PARAMS, 'd')).toEqual({ ...PARAMS, counted: 'd' });
    expect(paramsOf('project_rewards', COUNTED)).toEqual(PARAMS);
    expect(paramsOf('settle_season', { ...COUNTED, extra: 1 } as CountedParams)).toEqual(COUNTED);
    expect(() => paramsOf('publish_season_summary', PARAMS)).toThrow(RangeError);
  });

  it('the projection params of a pointer drop counted, and keep a 0.1 pointer as it is', () => {
    expect(projectionParamsOf(COUNTED)).toEqual(PARAMS);
    expect(projectionParamsOf({ as_of: 'x', config_hash: 'y' })).toEqual({ as_of: 'x', config_hash: 'y' });
  });
});

describe('deterministicId', () => {
  it('matches sha256 over the hand-written stable stringification (stage 1: inputs in params)', () => {
    const stable =
      '{"date":"2026-01-15","params":{"as_of":"2026-01-16T00:00:00.000Z","config_hash":"0123456789abcdef","inputs":"aaaaaaaaaaaaaaaa"},' +
      '"stage":"update_attention_scores","subject_ref":"creator:alice"}';
    const expected = idOf('att', stable);
    expect(expected).toBe('att_57e642add0692c45e3f63e62');
    expect(deterministicId('update_attention_scores', '2026-01-15', 'creator:alice', PARAMS)).toBe(expected);
    // A stage 1-2 id ignores a counted key it is handed.
    expect(deterministicId('update_attention_scores', '2026-01-15', 'creator:alice', COUNTED)).toBe(expected);
  });

  it('uses "*" for date-level ids, the stage prefix, and counted for stages 3-4', () => {
    const rwd = '{"date":"2026-01-15","params":{"as_of":"2026-01-16T00:00:00.000Z","config_hash":"0123456789abcdef","inputs":"aaaaaaaaaaaaaaaa"},"stage":"project_rewards","subject_ref":"*"}';
    expect(deterministicId('project_rewards', '2026-01-15', DATE_LEVEL_SUBJECT, PARAMS)).toBe(idOf('rwd', rwd));
    const sum =
      '{"date":"2026-01-15","params":{"as_of":"2026-01-16T00:00:00.000Z","config_hash":"0123456789abcdef","counted":"bbbbbbbbbbbbbbbb","inputs":"aaaaaaaaaaaaaaaa"},' +
      '"stage":"publish_season_summary","subject_ref":"*"}';
    expect(deterministicId('publish_season_summary', '2026-01-15', DATE_LEVEL_SUBJECT, COUNTED)).toBe(idOf('sum', sum));
    expect(() => deterministicId('settle_season', '2026-01-15', 'a', PARAMS)).toThrow(/counted/);
  });

  it('depends on every input but not on extra params keys', () => {
    const base = deterministicId('settle_season', '2026-01-15', 'a', COUNTED);
    expect(base).toMatch(/^stl_[0-9a-f]{24}$/);
    expect(deterministicId('settle_season', '2026-01-15', 'a', { ...COUNTED, extra: 1 } as CountedParams)).toBe(base);
    expect(deterministicId('settle_season', '2026-01-16', 'a', COUNTED)).not.toBe(base);
    expect(deterministicId('settle_season', '2026-01-15', 'b', COUNTED)).not.toBe(base);
    expect(deterministicId('settle_season', '2026-01-15', 'a', { ...COUNTED, as_of: '2026-01-15T12:00:00.000Z' })).not.toBe(base);
    expect(deterministicId('settle_season', '2026-01-15', 'a', { ...COUNTED, inputs: 'cccccccccccccccc' })).not.toBe(base);
    expect(deterministicId('settle_season', '2026-01-15', 'a', { ...COUNTED, counted: 'cccccccccccccccc' })).not.toBe(base);
    expect(deterministicId('publish_season_summary', '2026-01-15', 'a', COUNTED).startsWith('sum_')).toBe(true);
  });
});
