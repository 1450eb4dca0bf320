import { hash } from 'node:crypto';
import fc from 'fast-check';
import stringify from 'fast-json-stable-stringify';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../../workers/s1/canonical.js';
import { inputsDigest, sortedOrder, SortedSignals, windowBounds } from '../../../workers/s1/digests.js';
import { deterministicId, idMaker, makeParams, STAGE_PREFIX, STAGES, withCounted } from '../../../workers/s1/ids.js';
import {
  attentionForColumns,
  attentionForSubject,
  attentionRow,
  attentionRowMaker,
  attentionRowText,
  compareSignals,
  groupBySubject,
  projectionRow,
  projectionRowMaker,
  projectionRowText,
  settlementRow,
  settlementRowMaker,
  settlementRowText,
} from '../../../workers/s1/math.js';
import { SignalTable, SubjectGroups, type Signal } from '../../../workers/s1/signal-table.js';
import { compareText } from '../../../workers/s1/math/order.js';

const DAY = 86_400_000;
const BASE = Date.parse('2026-01-01T00:00:00Z');

/** Signals with few distinct instants and subjects (ties and shared groups), over a few days around BASE. */
const signalsArb = fc
  .array(
    fc.record({
      id: fc.string({ minLength: 1, maxLength: 4 }),
      ms: fc.oneof(fc.integer({ min: -3 * DAY, max: 30 * DAY }), fc.constantFrom(0, 1000, DAY - 1, DAY)),
      subject: fc.constantFrom('a', 'B', 'b', 'creator:é', 'x\ud800'),
      kind: fc.constantFrom('view', 'like', 'follow'),
      value: fc.constantFrom(1, 0, 0.5, 2),
    }),
    { maxLength: 60 },
  )
  .map((xs) => {
    const seen = new Set<string>();
    return xs.filter((x) => !seen.has(x.id) && seen.add(x.id)).map((x): Signal => ({ signal_id: x.id, ts_ms: BASE + x.ms, subject_ref: x.subject, kind: x.kind, value: x.value }));
  });

describe('signals in columns', () => {
  it('give back the signals they were made of', () => {
    fc.assert(
      fc.property(signalsArb, (signals) => {
        const t = SignalTable.of(signals);
        expect(t.length).toBe(signals.length);
        expect(t.toSignals().map(({ ts_digits: _d, ...s }) => s)).toEqual(signals);
      }),
    );
  });

  it('sort as compareSignals does (instant, then signal_id by code unit), by day buckets or by the comparator', () => {
    fc.assert(
      fc.property(signalsArb, (signals) => {
        const expected = [...signals].sort(compareSignals).map((s) => s.signal_id);
        const t = SignalTable.of(signals);
        expect([...sortedOrder(t)].map((i) => t.ids[i])).toEqual(expected);
        // A fractional instant takes the comparator: the same order.
        const odd = SignalTable.of([...signals, { signal_id: 'frac', ts_ms: BASE + 0.5, subject_ref: 'a', kind: 'view', value: 1 }]);
        const withOdd = [...signals, { signal_id: 'frac', ts_ms: BASE + 0.5, subject_ref: 'a', kind: 'view', value: 1 }].sort(compareSignals).map((s) => s.signal_id);
        expect([...sortedOrder(odd)].map((i) => odd.ids[i])).toEqual(withOdd);
      }),
      { numRuns: 300 },
    );
  });

  it('digest and count every window as inputsDigest over the objects does', () => {
    fc.assert(
      fc.property(signalsArb, fc.integer({ min: 0, max: 30 }), fc.integer({ min: 1, max: 28 }), (signals, day, window) => {
        const date = new Date(BASE + day * DAY).toISOString().slice(0, 10);
        const asOf = BASE + (day + 1) * DAY;
        const sorted = new SortedSignals(SignalTable.of(signals));
        expect(sorted.digest(date, asOf, window)).toBe(inputsDigest(signals, date, asOf, window));
        const { from_ms, to_ms } = windowBounds(date, asOf, window);
        expect(sorted.count(date, asOf, window)).toBe(signals.filter((s) => s.ts_ms >= from_ms && s.ts_ms < to_ms).length);
      }),
      { numRuns: 300 },
    );
  });

  it('group by subject as groupBySubject does, and find who has a signal in a window', () => {
    fc.assert(
      fc.property(signalsArb, fc.integer({ min: -2, max: 30 }), (signals, day) => {
        const groups = new SubjectGroups(SignalTable.of(signals));
        const expected = groupBySubject(signals);
        const strip = (xs: readonly Signal[] | undefined) => xs?.map(({ ts_digits: _d, ...s }) => s);
        expect([...groups.keys()]).toEqual([...expected.keys()]);
        expect(groups.size).toBe(expected.size);
        for (const [subject, list] of expected) expect(strip(groups.get(subject))).toEqual(list);
        expect([...groups].map(([k, v]) => [k, strip(v)])).toEqual([...expected]);
        expect(groups.get('nobody')).toBeUndefined();
        const from = BASE + day * DAY;
        const to = from + 3 * DAY;
        expect(groups.subjectsWithin(from, to)).toEqual([...expected].filter(([, xs]) => xs.some((s) => s.ts_ms >= from && s.ts_ms < to)).map(([k]) => k));
      }),
      { numRuns: 300 },
    );
  });

  it('order any subjects as compareText does (the default sort of distinct strings)', () => {
    const subjectArb = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.string({ unit: 'binary-ascii' }), fc.constantFrom('\ud800', '\udfff', '\uffff', '\u{10000}', 'a\u0000', ''));
    fc.assert(
      fc.property(fc.array(fc.record({ subject: subjectArb, ms: fc.integer({ min: 0, max: 3 * DAY }) }), { maxLength: 80 }), (xs) => {
        const signals = xs.map((x, i): Signal => ({ signal_id: `s${i}`, ts_ms: BASE + x.ms, subject_ref: x.subject, kind: 'view', value: 1 }));
        const groups = new SubjectGroups(SignalTable.of(signals));
        const expected = groupBySubject(signals);
        expect([...groups.keys()]).toEqual([...new Set(xs.map((x) => x.subject))].sort(compareText));
        expect([...groups.keys()]).toEqual([...expected.keys()]);
        for (const [subject, list] of expected) expect([...groups.membersOf(subject)!].map((i) => signals[i])).toEqual(list);
      }),
      { numRuns: 500 },
    );
  });

  it('score a subject from the columns as attentionForSubject does from its signals, under any half-life, window and weights', () => {
    // Half-lives and windows of the config's range and past it (a window not a whole number of
    // days, beyond the limit), weights of any size, a kind without one (both throw the same).
    const attentionArb = fc.record({
      half_life_days: fc.oneof(fc.constant(7), fc.double({ min: 0.01, max: 400, noNaN: true }), fc.integer({ min: 1, max: 30 })),
      window_days: fc.oneof(fc.constant(28), fc.integer({ min: 1, max: 40 }), fc.double({ min: 0.5, max: 40, noNaN: true }), fc.constant(5000)),
      weights: fc.oneof(
        fc.constant<Record<string, number>>({ view: 1, like: 3, follow: 10 }),
        fc.record({ view: fc.double({ min: 0, max: 1e6, noNaN: true }), like: fc.double({ min: 0, max: 1e6, noNaN: true }), follow: fc.double({ min: 0, max: 1e6, noNaN: true }) }),
        fc.constant<Record<string, number>>({ view: 1, like: 3 }),
      ),
    });
    const outcome = (f: () => unknown): unknown => {
      try {
        return f();
      } catch (err) {
        return String(err);
      }
    };
    fc.assert(
      fc.property(signalsArb, fc.integer({ min: -2, max: 30 }), fc.integer({ min: 0, max: 2 * DAY }), attentionArb, (signals, day, cut, attention) => {
        const groups = new SubjectGroups(SignalTable.of(signals));
        const date = new Date(BASE + day * DAY).toISOString().slice(0, 10);
        const asOf = BASE + day * DAY + cut;
        for (const [subject, list] of groupBySubject(signals)) {
          expect(outcome(() => attentionForColumns(groups.table, groups.membersOf(subject)!, date, asOf, attention))).toEqual(outcome(() => attentionForSubject(list, date, asOf, attention)));
        }
        expect(groups.membersOf('nobody')).toBeUndefined();
      }),
      { numRuns: 300 },
    );
  });
});

describe('texts written out by hand', () => {
  const text = fc.string({ unit: 'binary', maxLength: 12 });

  it('ids: sha256 of the fast-json-stable-stringify text, for any subject and params', () => {
    fc.assert(
      fc.property(fc.constantFrom(...STAGES), text, text, text, text, text, (stage, date, subject, asOf, inputs, counted) => {
        const params = withCounted(makeParams(asOf, 'cfg"\\', inputs), counted);
        const p = stage === 'settle_season' || stage === 'publish_season_summary' ? params : makeParams(asOf, 'cfg"\\', inputs);
        const expected = `${STAGE_PREFIX[stage]}_${hash('sha256', stringify({ stage, date, subject_ref: subject, params: p }), 'hex').slice(0, 24)}`;
        expect(idMaker(stage, date, params)(subject)).toBe(expected);
        expect(deterministicId(stage, date, subject, params)).toBe(expected);
      }),
      { numRuns: 500 },
    );
  });

  it('rows: their canonical JSON, for any subject and number', () => {
    const num = fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer(), fc.constantFrom(0, -0, 1e21, 5e-324));
    const season = { id: 's"1', start: '2026-01-01', end: '2026-03-31', daily_pool_units: 1000000 };
    fc.assert(
      fc.property(text, text, num, num, num, (date, subject, a, b, c) => {
        const params = makeParams('2026-01-16T00:00:00.000Z', '3bbf9e591339f3a2', '0123456789abcdef');
        const counted = withCounted(params, 'fedcba9876543210');
        const att = attentionRow(date, { subject_ref: subject, score: a, signal_count: b }, params);
        expect(attentionRowText(att)).toBe(canonicalJson(att));
        const rwd = projectionRow(date, { subject_ref: subject, score: a, projected_units: c }, params);
        expect(projectionRowText(rwd)).toBe(canonicalJson(rwd));
        const stl = settlementRow('2026-01-15', season, { subject_ref: subject, settled_units: b, days_counted: c }, counted);
        expect(settlementRowText(stl)).toBe(canonicalJson(stl));
        // The makers: the same ids and texts without the row objects.
        expect(attentionRowMaker(date, params)({ subject_ref: subject, score: a, signal_count: b })).toEqual({ id: att.id, text: attentionRowText(att) });
        expect(projectionRowMaker(date, params)({ subject_ref: subject, score: a, projected_units: c })).toEqual({ id: rwd.id, text: projectionRowText(rwd) });
        expect(settlementRowMaker('2026-01-15', season, counted)({ subject_ref: subject, settled_units: b, days_counted: c })).toEqual({ id: stl.id, text: settlementRowText(stl) });
      }),
      { numRuns: 1000 },
    );
  });
});
