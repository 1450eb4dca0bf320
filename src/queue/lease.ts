import { wallTime, type ClockReading } from './clock.js';
import type { Status } from './state.js';
import type { Lease, Owner, TaskError } from './types.js';

/** The lease of a leased status, its expiry shown as a wall-clock time as of reading `r`. */
export function leaseOf(s: Status, r: ClockReading): Lease {
  return { owner: s.owner ?? '', fence: s.fence, expires_at: wallTime(s.time, r) };
}

/** The error a reclaimed lease records; `now`: wall-clock epoch ms. */
export function reclaimError(gone: boolean, owner: Owner | undefined, now: number): Omit<TaskError, 'attempt'> {
  return gone
    ? {
        kind: 'owner_gone',
        class: 'OwnerGone',
        message: `worker process ${owner?.pid ?? '?'} on ${owner?.host ?? '?'} is gone`,
        at: new Date(now).toISOString(),
      }
    : { kind: 'lease_expired', class: 'LeaseExpired', message: 'lease expired before the task finished', at: new Date(now).toISOString() };
}
