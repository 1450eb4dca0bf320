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
}

export const DEFAULT_MAX_ATTEMPTS = 5;
