import { readFileSync } from 'node:fs';
import type { ClockReading, QueueClock } from './clock.js';

let boot: string | null | undefined;

/**
 * This machine's boot id (/proc/sys/kernel/random/boot_id, Linux), read once; null where there is
 * none (then the queue measures leases and waits on the wall clock, as before).
 */
export function bootId(): string | null {
  if (boot === undefined) {
    try {
      const text = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
      boot = /^[0-9a-f-]{8,64}$/i.test(text) ? text : null;
    } catch {
      boot = null;
    }
  }
  return boot;
}

/**
 * Monotonic ms: `process.hrtime`, which is CLOCK_MONOTONIC on Linux, the same clock in every
 * process of one boot, never stepped (libfaketime leaves it alone with FAKETIME_DONT_FAKE_MONOTONIC).
 * Whole ms.
 */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint() / 1_000_000n);
}

/** The system's clocks: Date.now, CLOCK_MONOTONIC and this boot's id. */
export const systemClock: QueueClock = {
  read(): ClockReading {
    return { wall: Date.now(), mono: monotonicMs(), boot: bootId() };
  },
};
