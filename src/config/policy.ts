import { z } from 'zod';

/** How one queue retries, leases and times out its tasks. Every field has a default. */
export const queuePolicySchema = z
  .object({
    /** Tries before the dead letters. Default 5. */
    max_attempts: z.number().int().min(1).max(1000).default(5),
    /** First retry delay. Default 1000 ms. */
    backoff_base_ms: z.number().int().min(0).default(1000),
    /** Largest retry delay. Default 300000 ms (5 min). */
    backoff_cap_ms: z.number().int().min(0).default(300_000),
    /** Jitter as a fraction of the delay (0.1 = ±10%). Default 0.1. */
    backoff_jitter: z.number().min(0).max(1).default(0.1),
    /** Lease length; a dead worker's task is handed out again after it. Default 60000 ms. */
    lease_ms: z.number().int().min(100).default(60_000),
    /** A task running longer is aborted and retried. Default 300000 ms (5 min). */
    timeout_ms: z.number().int().min(1).default(300_000),
    /** Group-commit window for acknowledgements. Default 2 ms. */
    ack_window_ms: z.number().int().min(0).max(1000).default(2),
    /** Tasks run at once by one worker process. Default 1. */
    concurrency: z.number().int().min(1).max(1024).default(1),
    /** Idle poll interval of `worker run` without --once. Default 1000 ms. */
    poll_ms: z.number().int().min(1).default(1000),
  })
  .strict();

export type QueuePolicy = z.infer<typeof queuePolicySchema>;

export const POLICY_KEYS = Object.keys(queuePolicySchema.shape) as (keyof QueuePolicy)[];
