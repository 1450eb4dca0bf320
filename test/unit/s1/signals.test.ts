import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataInvalidError } from '../../../src/guard/errors.js';
import { checkMagnitudes, parseSignalLine, parseSignalText, readSignals } from '../../../workers/s1/signals.js';

const FILE = 'inputs/s1_signals.jsonl';
const KINDS: ReadonlySet<string> = new Set(['view', 'like', 'reply', 'share', 'follow']);

function line(fields: Record<string, unknown>): string {
  return JSON.stringify({ signal_id: 's1', ts: '2026-01-15T13:04:05Z', subject_ref: 'creator:alice', kind: 'like', ...fields });
}

/** The DataInvalidError that parsing `text` throws. */
function errorOf(text: string): DataInvalidError {
  try {
    parseSignalText(text, FILE, KINDS);
  } catch (err) {
    expect(err).toBeInstanceOf(DataInvalidError);
    return err as DataInvalidError;
  }
  throw new Error('expected a DataInvalidError');
}

describe('parseSignalLine', () => {
  it('parses a valid line, value defaulting to 1', () => {
    expect(parseSignalLine(line({}), 1, FILE, KINDS)).toEqual({
      signal_id: 's1',
      ts_ms: Date.UTC(2026, 0, 15, 13, 4, 5),
      subject_ref: 'creator:alice',
      kind: 'like',
      value: 1,
      ts_digits: 0,
    });
    expect(parseSignalLine(line({ value: 2.5 }), 1, FILE, KINDS).value).toBe(2.5);
    expect(parseSignalLine(line({ value: 0 }), 1, FILE, KINDS).value).toBe(0);
  });

  it('ignores fields the spec does not list', () => {
    expect(parseSignalLine(line({ source: 'x', meta: { a: 1 } }), 1, FILE, KINDS).signal_id).toBe('s1');
  });
});

describe('parse errors name the file, the line and the rule', () => {
  const ok = line({ signal_id: 'ok' });
  const cases: [string, string][] = [
    ['{"signal_id": "a",', 'not valid JSON'],
    ['[1,2]', 'the line must be a JSON object, got an array'],
    ['42', 'the line must be a JSON object, got 42'],
    ['"text"', 'the line must be a JSON object, got "text"'],
    ['null', 'the line must be a JSON object, got null'],
    [line({ signal_id: undefined }), 'signal_id must be a non-empty string, got nothing'],
    [line({ signal_id: '' }), 'signal_id must be a non-empty string, got ""'],
    [line({ signal_id: 7 }), 'signal_id must be a non-empty string, got 7'],
    [line({ subject_ref: '' }), 'subject_ref must be a non-empty string, got ""'],
    [line({ subject_ref: undefined }), 'subject_ref must be a non-empty string, got nothing'],
    [line({ ts: '2026-01-15T13:04:05+01:00' }), 'ts must be an ISO-8601 UTC instant YYYY-MM-DDTHH:MM:SS[.fff]Z on a real calendar date, got "2026-01-15T13:04:05+01:00"'],
    [line({ ts: '2026-02-30T00:00:00Z' }), 'got "2026-02-30T00:00:00Z"'],
    [line({ ts: 1768482245000 }), 'ts must be an ISO-8601 UTC instant'],
    [line({ kind: 'poke' }), 'kind must be one of follow, like, reply, share, view (the keys of attention.weights), got "poke"'],
    [line({ kind: undefined }), 'kind must be one of follow, like, reply, share, view (the keys of attention.weights), got nothing'],
    [line({ value: -1 }), 'value must be a finite number >= 0 when present (default 1), got -1'],
    [line({ value: '2' }), 'value must be a finite number >= 0 when present (default 1), got "2"'],
    [line({ value: null }), 'value must be a finite number >= 0 when present (default 1), got null'],
  ];

  for (const [bad, rule] of cases) {
    it(rule, () => {
      const err = errorOf(`${ok}\n${bad}\n`);
      expect(err.message.startsWith(`${FILE}:2: `)).toBe(true);
      expect(err.message).toContain(rule);
      expect(err.message).not.toContain('\n');
      expect(err.exitCode).toBe(20);
    });
  }

  it('reports the first broken field in the spec order', () => {
    expect(errorOf(line({ signal_id: '', ts: 'x', value: -1 })).message).toContain('signal_id must be');
    expect(errorOf(line({ ts: 'x', value: -1 })).message).toContain('ts must be');
  });

  it('names the line of the first occurrence of a duplicate signal_id', () => {
    const text = [line({ signal_id: 'a' }), line({ signal_id: 'b' }), line({ signal_id: 'a' })].join('\n');
    expect(errorOf(text).message).toBe(`${FILE}:3: duplicate signal_id "a" (first on line 1)`);
  });

  it('rejects a blank line in the middle, at its own line number', () => {
    const text = `${line({ signal_id: 'a' })}\n\n  \n${line({ signal_id: 'b' })}\n`;
    expect(errorOf(text).message).toBe(`${FILE}:2: blank line (blank lines are allowed only at the end of the file)`);
  });
});

describe('whole-text rules', () => {
  it('accepts blank lines at the end, and no final newline', () => {
    const a = line({ signal_id: 'a' });
    expect(parseSignalText(`${a}\n`, FILE, KINDS)).toHaveLength(1);
    expect(parseSignalText(`${a}\n\n \n`, FILE, KINDS)).toHaveLength(1);
    expect(parseSignalText(a, FILE, KINDS)).toHaveLength(1);
  });

  it('reads an empty text as zero signals', () => {
    expect(parseSignalText('', FILE, KINDS)).toEqual([]);
    expect(parseSignalText('\n', FILE, KINDS)).toEqual([]);
    expect(parseSignalText('\uFEFF', FILE, KINDS)).toEqual([]);
  });

  it('strips a BOM on line 1 and CRLF endings, keeping line numbers', () => {
    const text = `\uFEFF${line({ signal_id: 'a' })}\r\n${line({ signal_id: 'b' })}\r\n`;
    expect(parseSignalText(text, FILE, KINDS).map((s) => s.signal_id)).toEqual(['a', 'b']);
    const bad = `\uFEFF${line({ signal_id: 'a' })}\r\n${line({ signal_id: 'b', kind: 'x' })}\r\n`;
    expect(errorOf(bad).message).toMatch(/^inputs\/s1_signals\.jsonl:2: kind must be one of/);
  });

  it('treats a BOM after line 1 as data (not valid JSON)', () => {
    expect(errorOf(`${line({ signal_id: 'a' })}\n\uFEFF${line({ signal_id: 'b' })}`).message).toMatch(/:2: not valid JSON/);
  });

  it('keeps signals in file order', () => {
    const text = [line({ signal_id: 'z' }), line({ signal_id: 'a' })].join('\n');
    expect(parseSignalText(text, FILE, KINDS).map((s) => s.signal_id)).toEqual(['z', 'a']);
  });
});

describe('readSignals', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 's1-signals-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reports a missing file with no line', async () => {
    const path = join(dir, 'missing.jsonl');
    await expect(readSignals(path, KINDS)).rejects.toThrow(`${path}: file not found`);
    await expect(readSignals(path, KINDS)).rejects.toBeInstanceOf(DataInvalidError);
  });

  it('reads an empty file as zero signals', async () => {
    const path = join(dir, 'empty.jsonl');
    await writeFile(path, '');
    expect(await readSignals(path, KINDS)).toEqual([]);
  });

  it('handles BOM and CRLF', async () => {
    const path = join(dir, 'crlf.jsonl');
    await writeFile(path, `\uFEFF${line({ signal_id: 'a' })}\r\n${line({ signal_id: 'b', value: 3 })}\r\n`);
    const signals = await readSignals(path, KINDS);
    expect(signals.map((s) => [s.signal_id, s.value])).toEqual([
      ['a', 1],
      ['b', 3],
    ]);
  });

  it('counts lines correctly across read chunks (several MB)', async () => {
    const path = join(dir, 'big.jsonl');
    const lines: string[] = [];
    for (let i = 1; i <= 30_000; i++) lines.push(line({ signal_id: `sig-${i}`, pad: 'x'.repeat(100) }));
    lines[24_999] = line({ signal_id: 'sig-25000', value: -2 });
    await writeFile(path, `${lines.join('\n')}\n`);
    await expect(readSignals(path, KINDS)).rejects.toThrow(`${path}:25000: value must be`);
    lines[24_999] = line({ signal_id: 'sig-1' });
    await writeFile(path, lines.join('\n'));
    await expect(readSignals(path, KINDS)).rejects.toThrow(`${path}:25000: duplicate signal_id "sig-1" (first on line 1)`);
    lines[24_999] = line({ signal_id: 'sig-25000' });
    await writeFile(path, lines.join('\n'));
    expect(await readSignals(path, KINDS)).toHaveLength(30_000);
  });
});

describe('checkMagnitudes', () => {
  const WEIGHTS = { view: 0.1, like: 1, reply: 3, share: 5, follow: 10 };

  it('accepts large values whose weighted sum stays within the bound (1e290: round6 and the pool multiply it)', () => {
    const signals = parseSignalText([line({ signal_id: 'a', value: 1e280 }), line({ signal_id: 'b', kind: 'follow', value: 1e285 })].join('\n'), FILE, KINDS);
    expect(() => checkMagnitudes(signals, WEIGHTS, FILE)).not.toThrow();
  });

  it('refuses a finite value whose weighted sum is past the bound though not Infinity (1e303 overflowed in round6)', () => {
    const signals = parseSignalText([line({ signal_id: 'a' }), line({ signal_id: 'b', kind: 'follow', value: 1e303 })].join('\n'), FILE, KINDS);
    expect(() => checkMagnitudes(signals, WEIGHTS, FILE)).toThrow(`${FILE}:2: value 1e+303 is too large`);
  });

  it('names the line whose value makes the weighted sum overflow', () => {
    const text = [line({ signal_id: 'a' }), line({ signal_id: 'b', kind: 'reply', value: 1e308 }), line({ signal_id: 'c', value: 1e308 })].join('\n');
    const signals = parseSignalText(text, FILE, KINDS);
    expect(() => checkMagnitudes(signals, WEIGHTS, FILE)).toThrow(`${FILE}:2: value 1e+308 is too large: the weighted sum of the signals (weight of "reply" × value) overflows`);
    // Two values that fit alone overflow together: the second is named.
    const pair = parseSignalText([line({ signal_id: 'a', value: 8e289 }), line({ signal_id: 'b', value: 8e289 })].join('\n'), FILE, KINDS);
    expect(() => checkMagnitudes(pair, WEIGHTS, FILE)).toThrow(`${FILE}:2: value`);
  });
});
