/**
 * Run-lock timing, in one place, in milliseconds. The run lock is a kernel lock (see
 * src/storage/run-lock/gate.ts): it has no staleness to tune, since a dead holder loses it at once and
 * a live one never does. These numbers only bound waits and polls.
 */
export const LOCK_TIMING = {
  run: {
    /**
     * How long an acquirer or a fenced publish waits to enter the gate (`locks/<name>.gate`), which
     * is held for milliseconds by each change of hands and each fenced publish. A gate busy this
     * long has a stopped or hung process inside it: the acquirer reports the lock held (11 or 40).
     */
    gateWaitMs: 10_000,
    /** How often a holder re-reads the payload to learn that its lock was taken over (`onCompromised`). */
    watchMs: 2_000,
  },
  /**
   * proper-lockfile's stale time in versions before the kernel locks: a `*.lock.d` (or old mutex
   * `.lock`) directory untouched for this long belongs to nobody; `metaspn doctor` reports it.
   */
  legacyStaleMs: 10_000,
} as const;
