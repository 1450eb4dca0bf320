/**
 * proper-lockfile timing, in one place. A lock whose mtime is older than `stale` ms is taken over;
 * the holder refreshes it every `update` ms. A mutex (queue, store) is held for microseconds at a time, so a
 * short `stale` bounds how long a SIGKILLed holder can stall the others.
 */
export const LOCK_TIMING = {
  mutex: { stale: 5_000, update: 1_000 },
  run: { stale: 10_000, update: 2_000 },
} as const;
