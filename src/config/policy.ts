import { z } from 'zod';

/** How one queue retries, leases and times out its tasks. */
const fields = {
  /** Tries before the dead letters. Default 5. */
  max_attempts: z.number().int().min(1).max(1000),
  /** First retry delay. Default 1000 ms. */
  backoff_base_ms: z.number().int().min(0),
  /** Largest retry delay. Default 300000 ms (5 min). */
  backoff_cap_ms: z.number().int().min(0),
  /** Jitter as a fraction of the delay (0.1 = ±10%). Default 0.1. */
  backoff_jitter: z.number().min(0).max(1),
  /** Lease length; a dead worker's task is handed out again after it. Default 60000 ms. */
  lease_ms: z.number().int().min(100),
  /** A task running longer is aborted and retried. Default 300000 ms (5 min). */
  timeout_ms: z.number().int().min(1),
  /** Group-commit window for acknowledgements. Default 2 ms. */
  ack_window_ms: z.number().int().min(0).max(1000),
  /** Tasks run at once by one worker process. Default 1. */
  concurrency: z.number().int().min(1).max(1024),
  /** Idle poll interval of `worker run` without --once. Default 1000 ms. */
  poll_ms: z.number().int().min(1),
};

/** A complete policy: what the code sees after every layer is applied. */
export const queuePolicySchema = z.object(fields).strict();

export type QueuePolicy = z.infer<typeof queuePolicySchema>;

/** One layer (config file, environment, flags): any subset of the keys, no defaults filled in. */
export const partialPolicySchema = z.object(fields).partial().strict();

export type PartialPolicy = z.infer<typeof partialPolicySchema>;

export const POLICY_DEFAULTS: QueuePolicy = {
  max_attempts: 5,
  backoff_base_ms: 1000,
  backoff_cap_ms: 300_000,
  backoff_jitter: 0.1,
  lease_ms: 60_000,
  timeout_ms: 300_000,
  ack_window_ms: 2,
  concurrency: 1,
  poll_ms: 1000,
};

export const POLICY_KEYS = Object.keys(fields) as (keyof QueuePolicy)[];

/** The defaults with `layers` applied in order (later wins), validated. */
export function resolvePolicy(...layers: PartialPolicy[]): QueuePolicy {
  const merged: Record<string, unknown> = { ...POLICY_DEFAULTS };
  for (const l of layers) for (const [k, v] of Object.entries(l)) if (v !== undefined) merged[k] = v;
  return queuePolicySchema.parse(merged);
}
