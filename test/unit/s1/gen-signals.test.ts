import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { generateSignals, mulberry32, type GenOptions } from '../../../scripts/gen-signals.js';
import { DEFAULT_WEIGHTS } from '../../../workers/s1/config.js';
import { parseSignalText } from '../../../workers/s1/signals.js';

const KINDS: ReadonlySet<string> = new Set(Object.keys(DEFAULT_WEIGHTS));
const SMALL: GenOptions = { subjects: 7, perSubject: 5, start: '2026-01-30', days: 3, seed: 42 };

describe('mulberry32', () => {
  it('is deterministic and in [0, 1)', () => {
    const a = mulberry32(1);
    const b = mulberry32(1);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, () => b())).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(mulberry32(2)()).not.toBe(xs[0]);
  });
});

describe('generateSignals', () => {
  it('gives the same lines for the same options and others for another seed', () => {
    expect(generateSignals(SMALL)).toEqual(generateSignals(SMALL));
    expect(generateSignals({ ...SMALL, seed: 43 })).not.toEqual(generateSignals(SMALL));
  });

  it('writes valid signals: distinct ids, exact counts per subject, ts in the span and in order', () => {
    const lines = generateSignals(SMALL);
    expect(lines).toHaveLength(35);
    const signals = parseSignalText(lines.join('\n'), 'gen', KINDS); // throws on any broken rule or duplicate
    const perSubject = new Map<string, number>();
    for (const s of signals) perSubject.set(s.subject_ref, (perSubject.get(s.subject_ref) ?? 0) + 1);
    expect([...perSubject.values()]).toEqual(Array(7).fill(5));
    const day = (s: { ts_ms: number }): string => new Date(s.ts_ms).toISOString().slice(0, 10);
    expect(signals.every((s) => day(s) >= '2026-01-30' && day(s) <= '2026-02-01')).toBe(true);
    expect(signals.every((s, i) => i === 0 || (signals[i - 1]?.ts_ms ?? 0) <= s.ts_ms)).toBe(true);
  });

  it('rejects bad options', () => {
    expect(() => generateSignals({ ...SMALL, subjects: 0 })).toThrow(RangeError);
    expect(() => generateSignals({ ...SMALL, days: 1.5 })).toThrow(RangeError);
    expect(() => generateSignals({ ...SMALL, start: '2026-02-30' })).toThrow(RangeError);
  });

  it('reproduces the bundled demo file from the command in scripts/README.md', async () => {
    const lines = generateSignals({ subjects: 300, perSubject: 40, start: '2026-01-01', days: 42, seed: 1 });
    const file = await readFile(new URL('../../../inputs/s1_signals.jsonl', import.meta.url), 'utf8');
    expect(file).toBe(`${lines.join('\n')}\n`);
    expect(parseSignalText(file, 'inputs/s1_signals.jsonl', KINDS)).toHaveLength(12_000);
  });
});
