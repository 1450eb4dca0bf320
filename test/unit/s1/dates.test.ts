import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/guard/errors.js';
import { addDays, asOfInstantMs, dayNumber, dayText, daysBetween, defaultAsOf, parseDate, resolveAsOf, seasonDates, utcInstantMs } from '../../../workers/s1/dates.js';

describe('parseDate', () => {
  it('accepts real dates, including leap days', () => {
    expect(parseDate('2026-01-15')).toBe('2026-01-15');
    expect(parseDate('2024-02-29')).toBe('2024-02-29');
    expect(parseDate('2000-02-29')).toBe('2000-02-29'); // divisible by 400: leap
  });

  it('rejects dates that do not exist', () => {
    expect(() => parseDate('2026-02-30')).toThrow(UsageError);
    expect(() => parseDate('2026-02-30')).toThrow('--date must be YYYY-MM-DD, got "2026-02-30" (no such calendar date)');
    expect(() => parseDate('2026-13-01')).toThrow('--date must be YYYY-MM-DD, got "2026-13-01"');
    expect(() => parseDate('2100-02-29')).toThrow(UsageError); // divisible by 100, not 400
    expect(() => parseDate('2026-04-31')).toThrow(UsageError);
    expect(() => parseDate('2026-01-00')).toThrow(UsageError);
  });

  it('rejects other shapes and names the flag', () => {
    for (const bad of ['2026-1-5', ' 2026-01-05', '2026-01-05T00:00:00Z', '20260105', '', 'today']) {
      expect(() => parseDate(bad)).toThrow(UsageError);
    }
    expect(() => parseDate('x', '--from')).toThrow('--from must be YYYY-MM-DD, got "x"');
  });

  it('carries the USAGE exit code', () => {
    try {
      parseDate('nope');
      expect.unreachable();
    } catch (err) {
      expect((err as UsageError).exitCode).toBe(64);
    }
  });
});

describe('day arithmetic', () => {
  it('adds days across month, leap and year ends', () => {
    expect(addDays('2026-01-31', 1)).toBe('2026-02-01');
    expect(addDays('2024-03-01', -1)).toBe('2024-02-29');
    expect(addDays('2026-03-01', -1)).toBe('2026-02-28');
    expect(addDays('2026-12-31', 1)).toBe('2027-01-01');
    expect(addDays('2026-01-29', -27)).toBe('2026-01-02');
  });

  it('counts whole days b - a', () => {
    expect(daysBetween('2026-01-01', '2026-03-31')).toBe(89); // 30 left in Jan + 28 + 31
    expect(daysBetween('2026-01-15', '2026-01-08')).toBe(-7);
    expect(daysBetween('2024-02-28', '2024-03-01')).toBe(2);
  });

  it('day numbers agree with Date.UTC for every day of four centuries', () => {
    expect(dayNumber('1970-01-01')).toBe(0);
    expect(dayNumber('2026-01-01')).toBe(20454);
    fc.assert(
      fc.property(fc.integer({ min: -100_000, max: 2_900_000 }), (n) => {
        const text = new Date(n * 86_400_000).toISOString().slice(0, 10);
        return dayText(n) === text && dayNumber(text) === n;
      }),
    );
  });

  it('lists season dates inclusively', () => {
    expect(seasonDates('2026-02-27', '2026-03-02')).toEqual(['2026-02-27', '2026-02-28', '2026-03-01', '2026-03-02']);
    expect(seasonDates('2026-01-01', '2026-03-31')).toHaveLength(90);
    expect(seasonDates('2026-01-02', '2026-01-01')).toEqual([]);
  });
});

describe('as-of', () => {
  it('defaults to the next day at midnight UTC', () => {
    expect(defaultAsOf('2026-01-15')).toBe('2026-01-16T00:00:00.000Z');
    expect(defaultAsOf('2026-12-31')).toBe('2027-01-01T00:00:00.000Z');
    expect(resolveAsOf('2026-01-15', undefined)).toBe('2026-01-16T00:00:00.000Z');
  });

  it('canonicalises an earlier --as-of to toISOString form', () => {
    expect(resolveAsOf('2026-01-15', '2026-01-15T12:00:00Z')).toBe('2026-01-15T12:00:00.000Z');
    expect(resolveAsOf('2026-01-15', '2026-01-15T14:00+02:00')).toBe('2026-01-15T12:00:00.000Z');
    expect(resolveAsOf('2026-01-15', '2026-01-15T07:00:00.5-05:00')).toBe('2026-01-15T12:00:00.500Z');
    expect(resolveAsOf('2026-01-15', '2026-01-15')).toBe('2026-01-15T00:00:00.000Z');
    expect(resolveAsOf('2026-01-15', '2026-01-16T00:00:00Z')).toBe('2026-01-16T00:00:00.000Z'); // equal is fine
  });

  it('rejects a later or unparsable --as-of', () => {
    expect(() => resolveAsOf('2026-01-15', '2026-01-16T00:00:00.001Z')).toThrow('--as-of 2026-01-16T00:00:00.001Z is later than 2026-01-16T00:00:00.000Z, the default for --date 2026-01-15');
    for (const bad of ['yesterday', '2026-01-15T12:00:00', '2026-02-30T00:00:00Z', '2026-01-15T25:00Z', '2026-01-15T12:00:00.1234Z']) {
      expect(() => resolveAsOf('2026-01-15', bad)).toThrow(UsageError);
    }
    expect(() => resolveAsOf('2026-02-30', undefined)).toThrow(UsageError);
    expect(asOfInstantMs('2026-01-15T12:00:00+24:00')).toBeNull();
  });
});

describe('utcInstantMs (signal ts)', () => {
  it('reads UTC instants with 0-3 fraction digits', () => {
    expect(utcInstantMs('2026-01-15T13:04:05Z')).toBe(Date.UTC(2026, 0, 15, 13, 4, 5));
    expect(utcInstantMs('2026-01-15T13:04:05.5Z')).toBe(Date.UTC(2026, 0, 15, 13, 4, 5, 500));
    expect(utcInstantMs('2026-01-15T13:04:05.05Z')).toBe(Date.UTC(2026, 0, 15, 13, 4, 5, 50));
    expect(utcInstantMs('2026-01-15T13:04:05.123Z')).toBe(Date.UTC(2026, 0, 15, 13, 4, 5, 123));
    expect(utcInstantMs('2024-02-29T23:59:59.999Z')).toBe(Date.UTC(2024, 1, 29, 23, 59, 59, 999));
  });

  it('rejects anything else', () => {
    for (const bad of [
      '2026-01-15T13:04:05.1234Z',
      '2026-01-15 13:04:05Z',
      '2026-01-15T13:04:05+00:00',
      '2026-01-15T13:04:05',
      '2026-01-15T13:04Z',
      '2026-01-15T24:00:00Z',
      '2026-01-15T13:60:00Z',
      '2026-01-15T13:04:60Z',
      '2026-02-29T00:00:00Z',
      '2026-01-15T13:04:05z',
      '2026-01-15T13:04:05.Z',
      '2026-0a-15T13:04:05Z',
      '',
    ]) {
      expect(utcInstantMs(bad), bad).toBeNull();
    }
  });
});
