/**
 * Timers that survive any delay. Node fires a `setTimeout`/`setInterval` whose delay is above
 * 2^31-1 ms (about 24.8 days) after 1 ms, with a TimeoutOverflowWarning, so a long wait becomes a
 * hot loop. Every timer with a computed delay goes through here: long waits are slept in chunks.
 */

/** The largest delay Node's timers take (2^31-1 ms, about 24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A delay a timer can take: NaN and negative values become 0, anything above
 * {@link MAX_TIMER_MS} becomes MAX_TIMER_MS, fractions are kept (timers round them).
 */
export function clampDelay(ms: number): number {
  if (!(ms > 0)) return 0;
  return Math.min(ms, MAX_TIMER_MS);
}

/**
 * Calls `fn` once after `ms` (any size: waits longer than {@link MAX_TIMER_MS} are chained
 * chunks), unless the returned `cancel` is called first. The timers are referenced like a
 * plain setTimeout: a pending call keeps the process alive.
 */
export function setLongTimeout(fn: () => void, ms: number): () => void {
  let left = Number.isFinite(ms) ? Math.max(0, ms) : ms > 0 ? Number.MAX_VALUE : 0;
  let timer: NodeJS.Timeout | null = null;
  const arm = (): void => {
    const chunk = clampDelay(left);
    left -= chunk;
    timer = setTimeout(() => {
      timer = null;
      if (left > 0) arm();
      else fn();
    }, chunk);
  };
  arm();
  return () => {
    if (timer) clearTimeout(timer);
    timer = null;
  };
}
