/**
 * Retry delays: base × 2^(attempt_count−1), capped, then jittered. Pure; `random` is injected.
 */
export interface BackoffPolicy {
  /** First retry delay in ms. Default 1000. */
  base_ms: number;
  /** Largest delay in ms. Default 300000 (5 min). */
  cap_ms: number;
  /** Spread as a fraction of the delay: 0.1 means ±10%. Default 0.1. */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { base_ms: 1000, cap_ms: 300_000, jitter: 0.1 };

/**
 * Delay before the next try, after `attempt_count` failures (1 after the first failure).
 * Jitter keeps a burst of failures from retrying in lockstep; the cap holds after jitter too.
 */
export function backoffDelay(attempt_count: number, policy: BackoffPolicy, random: () => number): number {
  const n = Math.max(1, attempt_count);
  // 2 ** 1075 is Infinity; min() with the cap keeps the result finite.
  const raw = Math.min(policy.cap_ms, policy.base_ms * 2 ** (n - 1));
  const spread = raw * policy.jitter * (2 * random() - 1);
  return Math.round(Math.min(policy.cap_ms, Math.max(0, raw + spread)));
}
