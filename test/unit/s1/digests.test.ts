import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { countedDigest, EMPTY_DIGEST, inputsDigest, signalDigestLine, SortedSignals, windowBounds } from '../../../workers/s1/digests.js';
import { parseSignalText, tsText } from '../../../workers/s1/signals.js';

const KINDS: ReadonlySet<string> = new Set(['view', 'like', 'reply', 'share', 'follow']);

/** Signals as a file would hold them, out of order; x is after the default as-of of 2026-01-15, y before its 28-day window. */
const TEXT = [
  '{"signal_id":"c","ts":"2026-01-15T08:00:00.000Z","subject_ref":"creator:alice","kind":"follow"}',
  '{"signal_id":"x","ts":"2026-01-16T00:00:00Z","subject_ref":"creator:alice","kind":"view"}',
  '{"signal_id":"a","ts":"2026-01-15T08:00:00Z","subject_ref":"creator:alice","kind":"view","value":2.5}',
  '{"signal_id":"y","ts":"2025-12-18T23:59:59Z","subject_ref":"creator:bob","kind":"view"}',
  '{"signal_id":"b","ts":"2026-01-14T10:00:00.5Z","subject_ref":"creator:bob","kind":"like","source":"ignored"}',
  '{"signal_id":"z","ts":"2025-12-19T00:00:00Z","subject_ref":"creator:carol","kind":"share","value":0}',
].join('\n');
const SIGNALS = parseSignalText(TEXT, 'inputs/s1_signals.jsonl', KINDS);
const AS_OF = Date.parse('2026-01-16T00:00:00.000Z');

describe('the inputs digest', () => {
  it('of no signal is the digest of the empty text', () => {
    expect(EMPTY_DIGEST).toBe('e3b0c44298fc1c14');
    expect(inputsDigest([], '2026-01-15', AS_OF, 28)).toBe('e3b0c44298fc1c14');
    expect(inputsDigest(SIGNALS, '2026-03-01', Date.parse('2026-03-02T00:00:00Z'), 28)).toBe(EMPTY_DIGEST);
  });

  it('hashes one stable line per signal of the window, by (instant, signal_id), ts as written, value defaulted to 1', () => {
    // Computed outside this code: sha256 over these four lines, each followed by "\n", first 16 hex digits.
    //   {"kind":"share","signal_id":"z","subject_ref":"creator:carol","ts":"2025-12-19T00:00:00Z","value":0}
    //   {"kind":"like","signal_id":"b","subject_ref":"creator:bob","ts":"2026-01-14T10:00:00.5Z","value":1}
    //   {"kind":"view","signal_id":"a","subject_ref":"creator:alice","ts":"2026-01-15T08:00:00Z","value":2.5}
    //   {"kind":"follow","signal_id":"c","subject_ref":"creator:alice","ts":"2026-01-15T08:00:00.000Z","value":1}
    expect(inputsDigest(SIGNALS, '2026-01-15', AS_OF, 28)).toBe('b3fa5ae6920ca200');
    expect(signalDigestLine(SIGNALS.find((s) => s.signal_id === 'b')!)).toBe('{"kind":"like","signal_id":"b","subject_ref":"creator:bob","ts":"2026-01-14T10:00:00.5Z","value":1}');
  });

  it('uses only ts < as_of', () => {
    // z and b only (a and c are at the as-of instant).
    expect(inputsDigest(SIGNALS, '2026-01-15', Date.parse('2026-01-15T08:00:00Z'), 28)).toBe('59068a12b76404a3');
  });

  it('is the same from the sorted index, whatever the file order', () => {
    const sorted = new SortedSignals([...SIGNALS].reverse());
    expect(sorted.size).toBe(6);
    for (const [date, asOf] of [
      ['2026-01-15', AS_OF],
      ['2026-01-15', Date.parse('2026-01-15T08:00:00Z')],
      ['2026-01-16', Date.parse('2026-01-17T00:00:00Z')],
      ['2026-03-01', Date.parse('2026-03-02T00:00:00Z')],
      ['2026-01-15', Date.parse('2025-01-01T00:00:00Z')],
    ] as const) {
      expect(sorted.digest(date, asOf, 28), `${date} ${asOf}`).toBe(inputsDigest(SIGNALS, date, asOf, 28));
    }
    expect(sorted.count('2026-01-15', AS_OF, 28)).toBe(4);
    expect(sorted.count('2026-01-15', AS_OF, 1)).toBe(2);
    expect(sorted.count('2026-03-01', AS_OF, 28)).toBe(0);
  });

  it('from the sorted index, written as bytes, is the digest of the lines for any strings, instants and values', () => {
    const DAY = 86_400_000;
    const signalArb = fc.record({
      signal_id: fc.oneof(fc.string({ maxLength: 6 }), fc.string({ unit: 'binary', maxLength: 4 }), fc.constantFrom('a"b', 'a\\b', 'x\u0001', '\ud800', 'é', '\u007f')),
      ts_ms: fc.oneof(fc.integer({ min: Date.parse('2025-12-10T00:00:00Z'), max: AS_OF + DAY }), fc.constantFrom(Date.parse('2026-01-15T00:00:00Z'), Date.parse('1969-12-31T23:59:59.999Z'))),
      ts_digits: fc.integer({ min: 0, max: 3 }),
      subject_ref: fc.oneof(fc.constantFrom('creator:alice', 'é', 'a"', '\ud83d\ude00'), fc.string({ unit: 'binary', maxLength: 3 })),
      kind: fc.constantFrom('view', 'like', 'ré"ply'),
      value: fc.oneof(fc.constantFrom(1, 0, 0.5, 2, 1e21, 1e-7, 123456.789), fc.double({ min: 0, noNaN: true })),
    });
    fc.assert(
      fc.property(fc.array(signalArb, { maxLength: 40 }), fc.integer({ min: 1, max: 40 }), (signals, days) => {
        const sorted = new SortedSignals(signals);
        expect(sorted.digest('2026-01-15', AS_OF, days)).toBe(inputsDigest(signals, '2026-01-15', AS_OF, days));
      }),
      { numRuns: 300 },
    );
  });

  it('the window is [first day, min(next day, as_of))', () => {
    expect(windowBounds('2026-01-15', AS_OF, 28)).toEqual({ from_ms: Date.parse('2025-12-19T00:00:00Z'), to_ms: AS_OF });
    expect(windowBounds('2026-01-15', Date.parse('2026-01-15T12:00:00Z'), 1)).toEqual({
      from_ms: Date.parse('2026-01-15T00:00:00Z'),
      to_ms: Date.parse('2026-01-15T12:00:00Z'),
    });
    expect(() => windowBounds('2026-02-30', AS_OF, 28)).toThrow(RangeError);
  });
});

describe('tsText gives ts back as written', () => {
  it('for every fraction length the reader accepts', () => {
    for (const ts of ['2026-01-15T13:04:05Z', '2026-01-15T13:04:05.5Z', '2026-01-15T13:04:05.50Z', '2026-01-15T13:04:05.050Z', '2026-01-15T13:04:05.000Z', '0001-02-03T00:00:00.9Z']) {
      const [s] = parseSignalText(`{"signal_id":"s","ts":"${ts}","subject_ref":"r","kind":"view"}`, 'f', KINDS);
      expect(tsText(s!)).toBe(ts);
    }
  });

  it('without ts_digits: whole seconds bare, else three digits', () => {
    expect(tsText({ ts_ms: Date.parse('2026-01-15T13:04:05Z') })).toBe('2026-01-15T13:04:05Z');
    expect(tsText({ ts_ms: Date.parse('2026-01-15T13:04:05.25Z') })).toBe('2026-01-15T13:04:05.250Z');
  });
});

describe('the counted digest', () => {
  it('hashes the ids sorted by code unit, one a line', () => {
    // sha256("rwd_a\nrwd_b\nrwd_c\n"), first 16 hex digits, computed outside this code.
    expect(countedDigest(['rwd_c', 'rwd_a', 'rwd_b'])).toBe('59d4a2aa3ec5ad44');
    expect(countedDigest([])).toBe(EMPTY_DIGEST);
  });
});
