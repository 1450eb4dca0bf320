/**
 * Time for leases and retry waits, measured so that a wall-clock step (NTP, an operator's `date`)
 * changes nothing. Pure: no I/O, no clock is read here (src/queue/system-clock.ts reads them).
 *
 * Every queue decision (is this lease expired, is this retry due, how old is this ready task) is
 * taken on the reader's *local timeline*: milliseconds of CLOCK_MONOTONIC. On Linux that clock is
 * system-wide (every process of one boot reads the same value) and never steps; it only counts
 * since boot, so it means something only together with the boot id.
 *
 * A log record carries its wall-clock time `at` (epoch ms) and, when its writer knew its boot, its
 * monotonic time `m` on that boot. A reader places the record on its own timeline:
 * - same boot, `m` present: `m` exactly, whatever the wall clocks said meanwhile;
 * - otherwise (a record of an older version, another boot after a reboot, another host, or a
 *   writer that could not read its boot id): the wall time, shifted by the reader's current offset
 *   between the two clocks (the wall-clock fallback).
 * Times shown to people (`next_due_at`, `expires_at`, `dead_at`) are local times shifted back by
 * the reader's current offset: "now plus the monotonic remainder", right after any step.
 */

/** The two clocks read at one instant. */
export interface ClockReading {
  /** Wall clock: epoch ms (Date.now). Steps when the system time is set. */
  wall: number;
  /** Monotonic clock in ms (CLOCK_MONOTONIC on Linux: the same in every process of one boot). */
  mono: number;
  /** The boot `mono` counts from (/proc/sys/kernel/random/boot_id); null when unknown: then `mono` is not written to logs. */
  boot: string | null;
}

/** Where a queue gets its time. `read` is called once per decision (a locked round, a stats read). */
export interface QueueClock {
  read(): ClockReading;
}

/**
 * A clock whose wall and monotonic readings are both `now()` and whose boot is unknown: the
 * behaviour before monotonic time (everything on the wall clock), for tests with a fake clock.
 */
export function wallOnlyClock(now: () => number): QueueClock {
  return {
    read: () => {
      const t = now();
      return { wall: t, mono: t, boot: null };
    },
  };
}

/** Wall minus monotonic: what turns a local time into a wall-clock time, right now. */
export function offsetOf(me: ClockReading): number {
  return me.wall - me.mono;
}

/**
 * The local time (ms on `me`'s monotonic timeline) of an instant recorded as wall time `at` and,
 * optionally, monotonic time `m` on boot `boot`. `m` counts only on the reader's own boot.
 */
export function localTime(at: number, m: number | undefined, boot: string | null | undefined, me: ClockReading): number {
  if (m !== undefined && typeof m === 'number' && Number.isFinite(m) && boot !== null && boot !== undefined && boot === me.boot) return m;
  return at - offsetOf(me);
}

/** The wall-clock time (epoch ms) a local time stands for, now: now plus what remains of it on the monotonic clock. */
export function wallTime(local: number, me: ClockReading): number {
  return local + offsetOf(me);
}

/** How long until the local time `deadline` (negative: passed), on the monotonic clock. */
export function remainingMs(deadline: number, me: ClockReading): number {
  return deadline - me.mono;
}

/** True when the local time `deadline` has come. */
export function hasPassed(deadline: number, me: ClockReading): boolean {
  return deadline <= me.mono;
}

/**
 * Whether a lease holder recorded on `ownerBoot` on this host can still be alive: not when it was
 * recorded on another boot of this host (every process of that boot is gone). Unknown boots say
 * nothing (null: true).
 */
export function bootAlive(ownerBoot: string | null, me: ClockReading): boolean {
  return ownerBoot === null || me.boot === null || ownerBoot === me.boot;
}

/**
 * A wall-clock time computed under an older reading, projected to `me`: on the same boot, shifted
 * by how much the offset between the clocks changed since (a step in between); else as it was.
 * For derived data that stores wall times (stats.json).
 */
export function reprojectWall(wall: number, then: { wall: number; mono: number; boot: string | null }, me: ClockReading): number {
  if (then.boot === null || then.boot !== me.boot) return wall;
  return wall + (offsetOf(me) - (then.wall - then.mono));
}
