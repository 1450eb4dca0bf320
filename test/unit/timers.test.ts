import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { sleep } from '../../src/runtime/sleep.js';
import { clampDelay, MAX_TIMER_MS, setLongTimeout } from '../../src/runtime/timers.js';

const DAY = 86_400_000;

describe("timers past Node's 2^31-1 ms limit", () => {
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(w.name);
  beforeEach(() => {
    warnings.length = 0;
    process.on('warning', onWarning);
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
    process.off('warning', onWarning);
  });

  it('clampDelay keeps every delay within what a timer takes', () => {
    expect(clampDelay(5)).toBe(5);
    expect(clampDelay(3_000_000_000)).toBe(MAX_TIMER_MS);
    expect(clampDelay(Infinity)).toBe(MAX_TIMER_MS);
    expect(clampDelay(Number.NaN)).toBe(0);
    expect(clampDelay(-1)).toBe(0);
  });

  it('sleep(30 days) sleeps 30 days in chunks: not done a minute early, done on time', async () => {
    let done = false;
    void sleep(30 * DAY).then(() => (done = true));
    await vi.advanceTimersByTimeAsync(30 * DAY - 60_000);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(done).toBe(true);
    expect(warnings).toEqual([]);
  });

  it('sleep(35 days) wakes at once when its signal aborts, and leaves no timer behind', async () => {
    const ac = new AbortController();
    let done = false;
    void sleep(35 * DAY, ac.signal).then(() => (done = true));
    await vi.advanceTimersByTimeAsync(DAY);
    expect(done).toBe(false);
    ac.abort();
    await vi.advanceTimersByTimeAsync(0);
    expect(done).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('sleep of NaN or a negative delay returns at once; Infinity waits for the signal', async () => {
    let n = 0;
    void sleep(Number.NaN).then(() => n++);
    void sleep(-5).then(() => n++);
    await vi.advanceTimersByTimeAsync(0);
    expect(n).toBe(2);
    const ac = new AbortController();
    let forever = false;
    void sleep(Infinity, ac.signal).then(() => (forever = true));
    await vi.advanceTimersByTimeAsync(400 * DAY);
    expect(forever).toBe(false);
    ac.abort();
    await vi.advanceTimersByTimeAsync(0);
    expect(forever).toBe(true);
  });

  it('setLongTimeout fires once after the whole delay, and cancel stops it', async () => {
    const fired: number[] = [];
    setLongTimeout(() => fired.push(Date.now()), 60 * DAY);
    const cancel = setLongTimeout(() => fired.push(-1), 40 * DAY);
    await vi.advanceTimersByTimeAsync(30 * DAY);
    cancel();
    await vi.advanceTimersByTimeAsync(30 * DAY);
    expect(fired).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(30 * DAY);
    expect(fired).toHaveLength(1);
    expect(warnings).toEqual([]);
  });
});
