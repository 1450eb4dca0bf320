import { describe, expect, it } from 'vitest';
import { backoffDelay, DEFAULT_BACKOFF } from '../../src/queue/backoff.js';

describe('backoff', () => {
  const noJitter = { ...DEFAULT_BACKOFF, jitter: 0 };

  it('doubles from the base with each failure', () => {
    expect([1, 2, 3, 4, 5].map((n) => backoffDelay(n, noJitter, () => 0.5))).toEqual([1000, 2000, 4000, 8000, 16000]);
  });

  it('is capped, even for huge attempt counts', () => {
    expect(backoffDelay(9, noJitter, () => 0.5)).toBe(256_000);
    expect(backoffDelay(10, noJitter, () => 0.5)).toBe(300_000);
    expect(backoffDelay(5000, noJitter, () => 0.5)).toBe(300_000);
  });

  it('jitters within ±jitter of the delay, never past the cap', () => {
    const p = { base_ms: 1000, cap_ms: 300_000, jitter: 0.1 };
    expect(backoffDelay(1, p, () => 0)).toBe(900);
    expect(backoffDelay(1, p, () => 0.999999)).toBe(1100);
    expect(backoffDelay(20, p, () => 0.999999)).toBe(300_000);
    expect(backoffDelay(20, p, () => 0)).toBe(270_000);
  });

  it('treats attempt 0 like the first failure', () => {
    expect(backoffDelay(0, noJitter, () => 0.5)).toBe(1000);
  });
});
