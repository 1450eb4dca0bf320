import { MetaspnError } from '../guard/errors.js';
import { wallOnlyClock, type QueueClock } from './clock.js';
import { systemClock } from './system-clock.js';
import type { Owner } from './types.js';

export interface QueueOptions {
  /** Queue (worker) name. */
  name: string;
  /** max_attempts for tasks that do not set their own. Default 5. */
  max_attempts?: number;
  /**
   * A wall clock in epoch ms that serves as the monotonic one too, boot unknown (tests with a fake
   * clock: everything measured on it, as before monotonic time). Ignored when `clock` is given.
   */
  now?: () => number;
  /**
   * The clocks leases and retry waits are measured on (src/queue/clock.ts). Default: the system's
   * (Date.now, CLOCK_MONOTONIC, this boot's id), or `now` alone when that is given.
   */
  clock?: QueueClock;
  /** Liveness of a lease owner. Default: pid check on this host, unknown (alive) elsewhere. */
  ownerAlive?: (o: Owner) => boolean;
  /** Back-pressure: enqueues that would leave more open (ready, scheduled, leased) tasks are refused. Default 0: no limit. */
  max_queue_size?: number;
}

/** Thrown by enqueue when the queue is full: retry later (exit 11, HTTP 429). */
export function queueFull(name: string, open: number, adding: number, max: number): MetaspnError {
  return new MetaspnError('BUSINESS_SKIP', `queue ${name} is full: ${open} open task(s), adding ${adding} would pass max_queue_size ${max}; nothing was enqueued`, {
    hint: 'retry later, when workers have drained it',
    details: { retry_after_s: 30 },
  });
}

/**
 * The queue's own defaults, the one set: the configuration's (POLICY_DEFAULTS in
 * src/config/policy.ts) are taken from these, and a queue opened without a policy uses them.
 */
export const QUEUE_DEFAULTS = {
  /** Attempts before a task goes to the dead letters. */
  max_attempts: 5,
  /** How long an acknowledgement waits for others to share its fsync, ms. */
  ack_window_ms: 2,
  /**
   * PostgreSQL: prefetched tasks a worker may mark started ahead of their turn (StartsAhead). 0: a
   * task is charged an attempt only once its handler is about to run, on every backend (a crash
   * never charges a task that did not run); a larger value trades that for fewer commits.
   */
  start_ahead: 0,
} as const;

export const DEFAULT_MAX_ATTEMPTS = QUEUE_DEFAULTS.max_attempts;

/** The clock a queue reads: `clock`, else `now` as both clocks, else the system's. */
export function clockOf(opts: Pick<QueueOptions, 'now' | 'clock'>): QueueClock {
  return opts.clock ?? (opts.now ? wallOnlyClock(opts.now) : systemClock);
}
