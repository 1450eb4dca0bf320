import * as z from '../zod.js';
import { DataInvalidError } from '../guard/errors.js';
import { DEFAULT_BACKOFF } from '../queue/backoff.js';
import { QUEUE_DEFAULTS } from '../queue/options.js';
import { limitSchema } from './limits.js';

/**
 * How one queue retries, leases and times out its tasks. Each key's range is in LIMITS
 * (src/config/limits.ts, docs/LIMITS.md); defaults are in POLICY_DEFAULTS.
 */
const fields = {
  /** Tries before the dead letters. Default 5. */
  max_attempts: limitSchema('max_attempts'),
  /** First retry delay. Default 1000 ms. */
  backoff_base_ms: limitSchema('backoff_base_ms'),
  /** Largest retry delay. Default 300000 ms (5 min). */
  backoff_cap_ms: limitSchema('backoff_cap_ms'),
  /** Jitter as a fraction of the delay (0.1 = ±10%). Default 0.1. */
  backoff_jitter: limitSchema('backoff_jitter'),
  /** Lease length; a dead worker's task is handed out again after it. Default 60000 ms. */
  lease_ms: limitSchema('lease_ms'),
  /** A task running longer is aborted and retried. Default 300000 ms (5 min). */
  timeout_ms: limitSchema('timeout_ms'),
  /** Group-commit window for acknowledgements. Default 2 ms. */
  ack_window_ms: limitSchema('ack_window_ms'),
  /**
   * PostgreSQL only: prefetched tasks beyond the free slots a worker marks started ahead of their
   * turn, in batches (a crash charges at most this many never-run tasks an attempt; 0: one mark per
   * task, before its handler). Ignored on files. Default 128.
   */
  start_ahead: limitSchema('start_ahead'),
  /** Tasks run at once by one worker process. Default 1. */
  concurrency: limitSchema('concurrency'),
  /** Idle poll interval of `worker run` without --once. Default 1000 ms. */
  poll_ms: limitSchema('poll_ms'),
  /** Back-pressure: an enqueue that would leave more open tasks than this is refused (0: no limit). Default 0. */
  max_queue_size: limitSchema('max_queue_size'),
  /** A worker process never runs more tasks at once than this, whatever --concurrency says (0: no limit). Default 0. */
  max_concurrent_tasks: limitSchema('max_concurrent_tasks'),
  /**
   * Stop condition: when this share of the last `stop_window` tasks failed, the worker pauses its
   * queue, records why in the ledger, stops claiming and exits 60 (0: off). Default 1 (all of them).
   */
  stop_failure_ratio: limitSchema('stop_failure_ratio'),
  /** Tasks the stop condition looks back over. Default 20. */
  stop_window: limitSchema('stop_window'),
  /** Where `worker run` runs handlers: 'none', 'thread' or 'process' (src/runtime/isolation). Default: the worker's own, else 'thread'. */
  isolation: z.enum(['none', 'thread', 'process']).optional(),
};

/** A complete policy: what the code sees after every layer is applied. */
export const queuePolicySchema = z.object(fields).strict();

export type QueuePolicy = z.infer<typeof queuePolicySchema>;

/** One layer (config file, environment, flags): any subset of the keys, no defaults filled in. */
export const partialPolicySchema = z.object(fields).partial().strict();

export type PartialPolicy = z.infer<typeof partialPolicySchema>;

/** Every queue policy default; the queue's own (attempts, ack window, backoff) come from the queue layer, so there is one set. */
export const POLICY_DEFAULTS: QueuePolicy = {
  max_attempts: QUEUE_DEFAULTS.max_attempts,
  backoff_base_ms: DEFAULT_BACKOFF.base_ms,
  backoff_cap_ms: DEFAULT_BACKOFF.cap_ms,
  backoff_jitter: DEFAULT_BACKOFF.jitter,
  lease_ms: 60_000,
  timeout_ms: 300_000,
  ack_window_ms: QUEUE_DEFAULTS.ack_window_ms,
  start_ahead: QUEUE_DEFAULTS.start_ahead,
  concurrency: 1,
  poll_ms: 1000,
  max_queue_size: 0,
  max_concurrent_tasks: 0,
  stop_failure_ratio: 1,
  stop_window: 20,
};

/** The numeric keys (each has a LIMITS row and a METASPN_QUEUE_<KEY> variable). */
export const POLICY_KEYS = Object.keys(fields).filter((k) => k !== 'isolation') as Exclude<keyof QueuePolicy, 'isolation'>[];

/** The defaults with `layers` applied in order (later wins), validated. */
export function resolvePolicy(...layers: PartialPolicy[]): QueuePolicy {
  const merged: Record<string, unknown> = { ...POLICY_DEFAULTS };
  for (const l of layers) for (const [k, v] of Object.entries(l)) if (v !== undefined) merged[k] = v;
  const r = queuePolicySchema.safeParse(merged);
  if (!r.success) {
    // Config, environment and flags were checked where they came in; what is left is a worker module's `defaults`.
    const issue = r.error.issues[0]!;
    throw new DataInvalidError('queue policy', null, `${issue.path.join('.')} ${issue.message}, got ${JSON.stringify(merged[String(issue.path[0])]) ?? 'nothing'}`, {
      hint: "check the worker module's `defaults`",
    });
  }
  const p = r.data;
  return p.max_concurrent_tasks > 0 && p.concurrency > p.max_concurrent_tasks ? { ...p, concurrency: p.max_concurrent_tasks } : p;
}
