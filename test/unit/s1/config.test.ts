import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DataInvalidError } from '../../../src/guard/errors.js';
import { configHash, isInSeason, resolveS1Config } from '../../../workers/s1/config.js';

const FILE = 'metaspn.config.json';

const DEFAULTS = {
  season: { id: 's1', start: '2026-01-01', end: '2026-03-31', daily_pool_units: 1000000 },
  attention: { half_life_days: 7, window_days: 28, weights: { view: 1, like: 3, reply: 5, share: 8, follow: 10 } },
};

function errorOf(raw: unknown): DataInvalidError {
  try {
    resolveS1Config(raw, FILE);
  } catch (err) {
    expect(err).toBeInstanceOf(DataInvalidError);
    return err as DataInvalidError;
  }
  throw new Error('expected a DataInvalidError');
}

describe('resolveS1Config', () => {
  it('gives the spec defaults when there is no file or an empty one', () => {
    expect(resolveS1Config(undefined, FILE)).toEqual(DEFAULTS);
    expect(resolveS1Config({}, FILE)).toEqual(DEFAULTS);
    expect(resolveS1Config({ season: {}, attention: {} }, FILE)).toEqual(DEFAULTS);
  });

  it('defaults each key individually', () => {
    const cfg = resolveS1Config({ season: { end: '2026-02-28' }, attention: { window_days: 14 } }, FILE);
    expect(cfg.season).toEqual({ ...DEFAULTS.season, end: '2026-02-28' });
    expect(cfg.attention).toEqual({ ...DEFAULTS.attention, window_days: 14 });
  });

  it('replaces the whole weight map when weights are given', () => {
    const cfg = resolveS1Config({ attention: { weights: { view: 2, poke: 0 } } }, FILE);
    expect(cfg.attention.weights).toEqual({ view: 2, poke: 0 });
    expect(cfg.attention.half_life_days).toBe(7);
  });

  it('ignores unknown top-level keys (other sections of the file)', () => {
    expect(resolveS1Config({ queue: { lease_ms: 5 } }, FILE)).toEqual(DEFAULTS);
  });

  it('names the file and the key of each broken rule, with no line', () => {
    const cases: [unknown, string][] = [
      [{ season: { start: '2026-02-30' } }, 'season.start: must be a real calendar date YYYY-MM-DD'],
      [{ season: { end: '2026/03/31' } }, 'season.end: must be a real calendar date YYYY-MM-DD'],
      [{ season: { start: '2026-04-01' } }, 'season.end: must not be before season.start'],
      [{ season: { id: '' } }, 'season.id: must be a non-empty string'],
      [{ season: { daily_pool_units: 1.5 } }, 'season.daily_pool_units: must be a non-negative safe integer'],
      [{ season: { daily_pool_units: -1 } }, 'season.daily_pool_units: must be a non-negative safe integer'],
      [{ season: { daily_pool_units: 2 ** 53 } }, 'season.daily_pool_units: must be a non-negative safe integer'],
      [{ season: { daily_pool_units: '1000' } }, 'season.daily_pool_units: must be a number'],
      [{ attention: { half_life_days: 0 } }, 'attention.half_life_days: must be > 0'],
      [{ attention: { window_days: 0 } }, 'attention.window_days: must be an integer >= 1'],
      [{ attention: { window_days: 2.5 } }, 'attention.window_days: must be an integer >= 1'],
      [{ attention: { weights: { view: -1 } } }, 'attention.weights.view: must be a finite number >= 0'],
      [{ attention: { weights: {} } }, 'attention.weights: must list at least one signal kind'],
      [[], 'the config must be a JSON object'],
      [null, 'the config must be a JSON object'],
    ];
    for (const [raw, rule] of cases) {
      const err = errorOf(raw);
      expect(err.message, rule).toBe(`${FILE}: ${rule}`);
      expect(err.exitCode).toBe(20);
    }
  });

  it('rejects unknown keys inside season and attention (typos)', () => {
    const err = errorOf({ attention: { half_life_day: 3 } });
    expect(err.message).toMatch(/^metaspn\.config\.json: attention: .*half_life_day/);
    expect(err.message).not.toContain('\n');
  });
});

describe('configHash', () => {
  it('hashes the defaults to a known value', () => {
    // The stable stringification written out by hand: keys sorted at every level.
    const stable =
      '{"attention":{"half_life_days":7,"weights":{"follow":10,"like":3,"reply":5,"share":8,"view":1},"window_days":28},' +
      '"season":{"daily_pool_units":1000000,"end":"2026-03-31","id":"s1","start":"2026-01-01"}}';
    const expected = createHash('sha256').update(stable).digest('hex').slice(0, 16);
    expect(expected).toBe('3bbf9e591339f3a2');
    expect(configHash(resolveS1Config(undefined, FILE))).toBe(expected);
  });

  it('ignores key order and changes with any value', () => {
    const a = resolveS1Config({ attention: { weights: { like: 3, view: 1 } } }, FILE);
    const b = resolveS1Config({ attention: { weights: { view: 1, like: 3 } } }, FILE);
    const c = resolveS1Config({ attention: { weights: { view: 1, like: 4 } } }, FILE);
    expect(configHash(a)).toBe(configHash(b));
    expect(configHash(a)).not.toBe(configHash(c));
    expect(configHash(a)).toMatch(/^[0-9a-f]{16}$/);
  });
});

describe('isInSeason', () => {
  it('includes both ends', () => {
    const cfg = resolveS1Config(undefined, FILE);
    expect(isInSeason('2026-01-01', cfg)).toBe(true);
    expect(isInSeason('2026-03-31', cfg)).toBe(true);
    expect(isInSeason('2025-12-31', cfg)).toBe(false);
    expect(isInSeason('2026-04-01', cfg)).toBe(false);
  });
});
