// Property tests over the whole allowed range of every number that feeds the retry and lease math
// (docs/LIMITS.md): no NaN, no Infinity, no unsafe integer, whatever the attempt number.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LIMITS } from '../../src/config/limits.js';
import { backoffDelay, type BackoffPolicy } from '../../src/queue/backoff.js';
import { newStatus, transition, type Event, type Status } from '../../src/queue/state.js';

const int = (l: { min: number; max: number }) => fc.integer({ min: l.min, max: l.max });
/** Edges first: fast-check biases towards them, and the limits are where overflow lives. */
const policy: fc.Arbitrary<BackoffPolicy> = fc.record({
  base_ms: fc.oneof(fc.constantFrom(LIMITS.backoff_base_ms.min, LIMITS.backoff_base_ms.max), int(LIMITS.backoff_base_ms)),
  cap_ms: fc.oneof(fc.constantFrom(LIMITS.backoff_cap_ms.min, LIMITS.backoff_cap_ms.max), int(LIMITS.backoff_cap_ms)),
  jitter: fc.double({ min: 0, max: 1, noNaN: true }),
});
const attempt = fc.oneof(
  fc.integer({ min: -5, max: 2000 }),
  fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  fc.constantFrom(0, 1, 1024, 1075, 1076, Number.MAX_SAFE_INTEGER, Infinity, -Infinity, Number.NaN),
);
const random = fc.oneof(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), fc.constantFrom(0, 0.999999999, Number.NaN, 2, -1));

describe('backoff over the whole allowed range (property)', () => {
  it('is always a whole number of ms from 0 to the cap', () => {
    fc.assert(
      fc.property(attempt, policy, random, (n, p, r) => {
        const d = backoffDelay(n, p, () => r);
        expect(Number.isSafeInteger(d)).toBe(true);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThanOrEqual(p.cap_ms);
      }),
      { numRuns: 2000 },
    );
  });

  it('without jitter: base × 2^(n-1), capped, and never smaller for a later attempt', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 5000 }), policy, (a, b, p) => {
        const flat = { ...p, jitter: 0 };
        const [lo, hi] = a <= b ? [a, b] : [b, a];
        expect(backoffDelay(lo, flat, () => 0.5)).toBeLessThanOrEqual(backoffDelay(hi, flat, () => 0.5));
        if (lo <= 40) expect(backoffDelay(lo, flat, () => 0.5)).toBe(Math.min(p.cap_ms, p.base_ms * 2 ** (lo - 1)));
      }),
      { numRuns: 1000 },
    );
  });

  it('a base of 0 stays 0 at any attempt (0 × 2^n was NaN past 1075 doublings)', () => {
    expect(backoffDelay(5000, { base_ms: 0, cap_ms: 1000, jitter: 0.1 }, () => 0.9)).toBe(0);
    expect(backoffDelay(Number.MAX_SAFE_INTEGER, { base_ms: 0, cap_ms: LIMITS.backoff_cap_ms.max, jitter: 1 }, () => 0.9)).toBe(0);
  });

  it('never yields NaN even from values outside the ranges (they are refused at the edge, but the math holds)', () => {
    for (const p of [
      { base_ms: Number.NaN, cap_ms: 1000, jitter: 0.1 },
      { base_ms: 1000, cap_ms: Number.NaN, jitter: 0.1 },
      { base_ms: 1000, cap_ms: 1000, jitter: Number.NaN },
      { base_ms: Infinity, cap_ms: Infinity, jitter: 5 },
    ]) {
      expect(Number.isFinite(backoffDelay(3, p, () => 0.3))).toBe(true);
    }
  });
});

// Epoch ms from 1970 to about year 2200: every sum below must stay a safe integer.
const now0 = fc.integer({ min: 0, max: 7_258_118_400_000 });
const owner = fc.constantFrom('a', 'b');
const fence = fc.integer({ min: 0, max: 6 });
const event: fc.Arbitrary<Event | { type: 'fail_backoff'; owner: string; fence: number; p: BackoffPolicy; r: number }> = fc.oneof(
  fc.record({ type: fc.constant('claim' as const), owner, lease_ms: fc.oneof(fc.constantFrom(LIMITS.lease_ms.min, LIMITS.lease_ms.max), int(LIMITS.lease_ms)) }),
  fc.record({ type: fc.constant('renew' as const), owner, fence, lease_ms: int(LIMITS.lease_ms) }),
  fc.record({ type: fc.constant('complete' as const), owner, fence }),
  fc.record({ type: fc.constant('release' as const), owner, fence }),
  fc.record({ type: fc.constant('fail_backoff' as const), owner, fence, p: policy, r: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }) }),
  fc.record({ type: fc.constant('dead_letter' as const), owner, fence }),
  fc.record({ type: fc.constant('reclaim' as const), fence }),
  fc.constant({ type: 'retry' as const }),
  fc.constant({ type: 'rerun' as const }),
);

describe('task state machine over the whole allowed range of its numbers (property)', () => {
  it('keeps time, attempts and fence safe integers, attempts within max_attempts, retries within the backoff cap', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.constantFrom(LIMITS.max_attempts.min, LIMITS.max_attempts.max), int(LIMITS.max_attempts)),
        now0,
        fc.array(fc.tuple(event, fc.integer({ min: 0, max: LIMITS.lease_ms.max * 2 })), { maxLength: 60 }),
        (max, start, steps) => {
          let s: Status = newStatus(max, start);
          let now = start;
          for (const [raw, dt] of steps) {
            now += dt;
            const e: Event = raw.type === 'fail_backoff' ? { type: 'fail', owner: raw.owner, fence: raw.fence, delay_ms: backoffDelay(s.attempt_count + 1, raw.p, () => raw.r) } : raw;
            const out = transition(s, e, now);
            if (!out.ok) continue;
            const n = out.status;
            expect(Number.isSafeInteger(n.time)).toBe(true);
            expect(Number.isSafeInteger(n.fence)).toBe(true);
            expect(Number.isSafeInteger(n.attempt_count)).toBe(true);
            expect(n.attempt_count).toBeGreaterThanOrEqual(0);
            expect(n.attempt_count).toBeLessThanOrEqual(max);
            if (n.state === 'leased') expect(n.time).toBeLessThanOrEqual(now + LIMITS.lease_ms.max);
            if (n.state === 'scheduled') {
              expect(n.time).toBeGreaterThan(now);
              expect(n.time).toBeLessThanOrEqual(now + LIMITS.backoff_cap_ms.max);
            }
            s = n;
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
