import { MetaspnError } from '../guard/errors.js';
import type { Owner } from './types.js';

export interface QueueOptions {
  /** Queue (worker) name. */
  name: string;
  /** max_attempts for tasks that do not set their own. Default 5. */
  max_attempts?: number;
  /** Clock in epoch ms. Default Date.now. */
  now?: () => number;
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

export const DEFAULT_MAX_ATTEMPTS = 5;
