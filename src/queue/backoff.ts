/**
 * Retry delays: base × 2^(attempt_count−1), capped, then jittered. Pure; `random` is injected.
 */
export interface BackoffPolicy {
  /** First retry delay in ms. Default 1000. Range: LIMITS.backoff_base_ms. */
  base_ms: number;
  /** Largest delay in ms. Default 300000 (5 min). Range: LIMITS.backoff_cap_ms. */
  cap_ms: number;
  /** Spread as a fraction of the delay: 0.1 means ±10%. Default 0.1. Range: 0 to 1. */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { base_ms: 1000, cap_ms: 300_000, jitter: 0.1 };

/**
 * Beyond this many doublings any base of 1 ms or more is past any cap (2^60 ms is 36 million
 * years); stopping there keeps `0 × 2^n` from becoming `0 × Infinity` (NaN) at huge attempt counts.
 */
const MAX_DOUBLINGS = 60;

/** `v` when it is a finite number >= 0, else `fallback`. */
function nonNegative(v: number, fallback: number): number {
  return Number.isFinite(v) && v >= 0 ? v : fallback;
}

/**
 * Delay before the next try, after `attempt_count` failures (1 after the first failure).
 * Jitter keeps a burst of failures from retrying in lockstep; the cap holds after jitter too.
 * Always a whole number of ms in [0, cap_ms], whatever the attempt count (0, huge, NaN) and
 * whatever `random` returns: the policy's ranges are checked at the edge, and this function
 * still never yields NaN or Infinity from values outside them.
 */
export function backoffDelay(attempt_count: number, policy: BackoffPolicy, random: () => number): number {
  const cap = nonNegative(policy.cap_ms, DEFAULT_BACKOFF.cap_ms);
  const base = nonNegative(policy.base_ms, DEFAULT_BACKOFF.base_ms);
  const jitter = Math.min(1, nonNegative(policy.jitter, 0));
  const n = Number.isFinite(attempt_count) ? Math.max(1, Math.floor(attempt_count)) : attempt_count > 0 ? Infinity : 1;
  const raw = Math.min(cap, base * 2 ** Math.min(n - 1, MAX_DOUBLINGS));
  const r = Math.min(1, Math.max(0, nonNegative(random(), 0.5)));
  const spread = raw * jitter * (2 * r - 1);
  return Math.min(Math.floor(cap), Math.round(Math.max(0, raw + spread)));
}
