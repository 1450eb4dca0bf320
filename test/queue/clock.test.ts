import { describe, expect, it } from 'vitest';
import { bootAlive, hasPassed, localTime, offsetOf, remainingMs, reprojectWall, wallOnlyClock, wallTime, type ClockReading } from '../../src/queue/clock.js';
import { bootId, monotonicMs, systemClock } from '../../src/queue/system-clock.js';

const H2 = 2 * 3_600_000;
const T = Date.UTC(2026, 10, 29, 20, 0, 0);
/** A reader on boot A whose wall clock says T while its monotonic clock says 1e6. */
const me: ClockReading = { wall: T, mono: 1_000_000, boot: 'A' };
const stepped = (r: ClockReading, ms: number): ClockReading => ({ ...r, wall: r.wall + ms });

describe('queue clock rules (pure)', () => {
  it('a record of this boot is placed by its monotonic time, whatever either wall clock said', () => {
    // Written during a +2 h step: its wall time is 2 h ahead, its monotonic time is right.
    expect(localTime(T + H2 - 5000, 995_000, 'A', me)).toBe(995_000);
    expect(localTime(T + H2 - 5000, 995_000, 'A', stepped(me, H2))).toBe(995_000);
    expect(localTime(T - 5000, 995_000, 'A', stepped(me, -H2))).toBe(995_000);
  });

  it('without a monotonic time of this boot (older record, another boot, unknown boot) the wall time counts, on the reader’s timeline', () => {
    for (const [m, boot] of [
      [undefined, 'A'],
      [995_000, 'B'],
      [995_000, null],
      [995_000, undefined],
      [Number.NaN, 'A'],
    ] as const) {
      expect(localTime(T - 5000, m, boot, me)).toBe(995_000);
    }
    // A reader whose own boot is unknown never trusts `m`.
    expect(localTime(T - 5000, 12, null, { ...me, boot: null })).toBe(995_000);
  });

  it('shown as wall-clock time: now plus the monotonic remainder, right after any step', () => {
    const due = 1_005_000; // 5 s from now
    expect(wallTime(due, me)).toBe(T + 5000);
    expect(wallTime(due, stepped(me, H2))).toBe(T + H2 + 5000);
    expect(wallTime(due, stepped(me, -H2))).toBe(T - H2 + 5000);
    expect(remainingMs(due, stepped(me, H2))).toBe(5000);
    expect(offsetOf(me)).toBe(T - 1_000_000);
  });

  it('a deadline passes on the monotonic clock only', () => {
    expect(hasPassed(1_005_000, stepped(me, H2))).toBe(false);
    expect(hasPassed(1_005_000, { ...me, mono: 1_005_000 })).toBe(true);
    expect(hasPassed(999_999, stepped(me, -H2))).toBe(true);
  });

  it('a holder recorded on another boot of this host is gone; unknown boots say nothing', () => {
    expect(bootAlive('A', me)).toBe(true);
    expect(bootAlive('B', me)).toBe(false);
    expect(bootAlive(null, me)).toBe(true);
    expect(bootAlive('B', { ...me, boot: null })).toBe(true);
  });

  it('a stored wall time is re-projected after a step on the same boot, left alone from another boot', () => {
    const then = { wall: T, mono: 1_000_000, boot: 'A' };
    expect(reprojectWall(T + 5000, then, stepped(me, -H2))).toBe(T - H2 + 5000);
    expect(reprojectWall(T + 5000, then, { ...me, mono: 1_001_000, wall: T + 1000 })).toBe(T + 5000);
    expect(reprojectWall(T + 5000, { ...then, boot: 'B' }, stepped(me, -H2))).toBe(T + 5000);
    expect(reprojectWall(T + 5000, { ...then, boot: null }, stepped(me, -H2))).toBe(T + 5000);
  });

  it('a wall-only clock (tests with a fake clock) measures everything on its one clock', () => {
    let t = T;
    const c = wallOnlyClock(() => t);
    expect(c.read()).toEqual({ wall: T, mono: T, boot: null });
    t += 10;
    expect(localTime(T, 5, 'A', c.read())).toBe(T);
  });

  it('the system clock: a boot id on Linux, whole monotonic ms that never go back', () => {
    const a = systemClock.read();
    const b = systemClock.read();
    expect(Number.isInteger(a.mono)).toBe(true);
    expect(b.mono).toBeGreaterThanOrEqual(a.mono);
    expect(Math.abs(a.wall - Date.now())).toBeLessThan(1000);
    expect(monotonicMs()).toBeGreaterThanOrEqual(b.mono);
    if (process.platform === 'linux') expect(bootId()).toMatch(/^[0-9a-f-]{36}$/);
  });
});
