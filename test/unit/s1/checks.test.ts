import { describe, expect, it } from 'vitest';
import { BUILTIN_CHECK_NAMES, CHECK_NAMES, GUARDRAIL_NAMES, windowHasSignals } from '../../../workers/s1/guardrails.js';
import { provisionalReason, staleReasons } from '../../../workers/s1/stale.js';

const WINDOW = { first: '2026-02-02', last: '2026-03-01', as_of: '2026-03-02T00:00:00.000Z' };

describe('the built-in check window_has_signals', () => {
  it('is listed with the guardrails, first', () => {
    expect(BUILTIN_CHECK_NAMES).toEqual(['window_has_signals']);
    expect(CHECK_NAMES).toEqual(['window_has_signals', ...GUARDRAIL_NAMES]);
  });

  it('fails on an empty window, passes otherwise, and is skipped with the operator reason', () => {
    expect(windowHasSignals(0, WINDOW, new Map())).toMatchObject({ name: 'window_has_signals', status: 'fail', observed: { signals: 0, ...WINDOW } });
    expect(windowHasSignals(1, WINDOW, new Map()).status).toBe('pass');
    expect(windowHasSignals(0, WINDOW, new Map([['window_has_signals', 'known gap']]))).toMatchObject({ status: 'skipped', note: 'skipped by operator: known gap' });
    expect(windowHasSignals(0, WINDOW, new Map([['pool_conserved', 'x']])).status).toBe('fail');
  });
});

describe('staleReasons', () => {
  const published = { as_of: '2026-01-16T00:00:00.000Z', config_hash: 'c0', inputs: 'i0', counted: 'k0' };

  it('is empty when every digest is what a run would compute now', () => {
    expect(staleReasons(published, { config_hash: 'c0', inputs: 'i0', counted: 'k0' })).toEqual([]);
  });

  it('names each digest that changed, with both values', () => {
    const r = staleReasons(published, { config_hash: 'c1', inputs: 'i1', counted: 'k1' });
    expect(r).toHaveLength(3);
    expect(r[0]).toContain('config_hash c0 was published, the config gives c1 now');
    expect(r[1]).toContain('inputs digest i0 was published, inputs/s1_signals.jsonl gives i1 now');
    expect(r[2]).toContain('counted digest k0 was published, the current pointers give k1 now');
  });

  it('calls a pointer of 0.1 (no inputs digest) stale', () => {
    expect(staleReasons({ as_of: 'x', config_hash: 'c0' }, { config_hash: 'c0', inputs: 'i0', counted: 'k0' })).toEqual([
      'published by metaspn 0.1: its params carry no inputs digest; a re-run writes its rows under the new ids',
    ]);
  });
});

describe('provisionalReason', () => {
  const at = (iso: string): number => Date.parse(iso);
  const provisional = { as_of: '2026-01-15T12:00:00.000Z', published_at: '2026-01-15T12:01:00.000Z' };

  it('is null while the day is open, and for a run with the default as-of', () => {
    expect(provisionalReason('2026-01-15', provisional, at('2026-01-15T23:00:00Z'))).toBeNull();
    expect(provisionalReason('2026-01-15', { as_of: '2026-01-16T00:00:00.000Z', published_at: '2026-01-16T01:00:00Z' }, at('2026-02-01T00:00:00Z'))).toBeNull();
  });

  it('is null for an --as-of run published after the day ended (a deliberate look back)', () => {
    expect(provisionalReason('2026-01-15', { ...provisional, published_at: '2026-01-20T00:00:00Z' }, at('2026-02-01T00:00:00Z'))).toBeNull();
  });

  it('names a provisional publish once its day is over', () => {
    expect(provisionalReason('2026-01-15', provisional, at('2026-01-16T00:00:00Z'))).toBe(
      'published provisionally (as_of 2026-01-15T12:00:00.000Z) before the day ended; it is over now (2026-01-16T00:00:00.000Z): a run without --as-of counts all of it',
    );
  });
});
