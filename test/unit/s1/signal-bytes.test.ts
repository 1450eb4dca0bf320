import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DataInvalidError } from '../../../src/guard/errors.js';
import { tempDir } from '../../temp.js';
import { utcInstantMs } from '../../../workers/s1/dates.js';
import { instantOfBytes, PlainLine, scanPlainLine } from '../../../workers/s1/signal-bytes.js';
import { TextTable, textHash, type Signal } from '../../../workers/s1/signal-table.js';
import { parseSignalText, readSignals, readSignalTable } from '../../../workers/s1/signals.js';

const KINDS: ReadonlySet<string> = new Set(['view', 'like', 'reply', 'share', 'follow']);

/** What reading gave: the signals, or the error's message and exit code. */
type Outcome = { signals: Signal[] } | { error: string; exit: number };

async function outcomeOf(read: () => Promise<Signal[]>): Promise<Outcome> {
  try {
    return { signals: await read() };
  } catch (err) {
    if (!(err instanceof DataInvalidError)) throw err;
    return { error: err.message, exit: err.exitCode };
  }
}

/** A ts near the accepted shape: valid instants, and texts one edit away from one. */
const tsArb = fc.oneof(
  fc
    .record({
      y: fc.integer({ min: 0, max: 9999 }),
      mo: fc.integer({ min: 0, max: 13 }),
      d: fc.integer({ min: 0, max: 32 }),
      h: fc.integer({ min: 0, max: 24 }),
      mi: fc.integer({ min: 0, max: 60 }),
      s: fc.integer({ min: 0, max: 60 }),
      frac: fc.constantFrom('', '.', '.5', '.05', '.123', '.1234', '.x'),
    })
    .map(
      ({ y, mo, d, h, mi, s, frac }) =>
        `${String(y).padStart(4, '0')}-${String(mo).padStart(2, '0')}-${String(d).padStart(2, '0')}T${String(h).padStart(2, '0')}:${String(mi).padStart(2, '0')}:${String(s).padStart(2, '0')}${frac}Z`,
    ),
  fc.constantFrom('2026-01-15T13:04:05Z', '2024-02-29T00:00:00.000Z', '2026-02-29T00:00:00Z', '2026-01-15 13:04:05Z', '2026-01-15T13:04:05', '2026-1-15T13:04:05Z', ''),
  fc.string({ maxLength: 26 }),
);

describe('instantOfBytes', () => {
  it('accepts the instants utcInstantMs accepts, with the same value', () => {
    fc.assert(
      fc.property(tsArb, (ts) => {
        fc.pre(/^[\x20-\x7e]*$/.test(ts));
        const bytes = Buffer.from(`"${ts}"`, 'latin1');
        const got = instantOfBytes(bytes, 1, bytes.length - 1);
        expect(Number.isNaN(got) ? null : got).toBe(utcInstantMs(ts));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('TextTable', () => {
  it('finds what was added, by text and by ASCII bytes, as a Map does', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('a', 'b', 'é', 'x\ud800')), { maxLength: 300 }), (texts) => {
        const table = new TextTable();
        const map = new Map<string, number>();
        for (const t of texts) {
          const at = table.intern(t);
          if (!map.has(t)) map.set(t, map.size);
          expect(at).toBe(map.get(t));
          if ([...t].every((c) => c.charCodeAt(0) < 0x80)) {
            const bytes = Buffer.from(`[${t}]`, 'latin1');
            expect(table.findAscii(bytes, 1, bytes.length - 1, textHash(t))).toBe(at);
          }
        }
        expect(table.texts).toEqual([...map.keys()]);
        expect(table.find('not added?')).toBe(map.get('not added?') ?? -1);
      }),
    );
  });
});

/** Mostly `usual`, sometimes `odd`: most lines plain, each field now and then what the scanner must leave to the text reader. */
const mostly = <T>(usual: fc.Arbitrary<T>, odd: fc.Arbitrary<T>): fc.Arbitrary<T> => fc.oneof({ weight: 6, arbitrary: usual }, { weight: 1, arbitrary: odd });

/** A signal line: mostly plain, with every kind of departure the scanner must leave to the text reader. */
const lineArb = fc
  .record({
    id: mostly(
      fc.oneof(
        fc.integer({ min: 0, max: 400 }).map((n) => `sig_${n}`),
        fc.constantFrom('a', 'b'),
      ),
      fc.oneof(fc.string({ maxLength: 5 }), fc.constantFrom('é', 'a"b', 'a\\b', 'x\u0001', '\ud800', 'id with space', 'a/b')),
    ),
    ts: mostly(fc.constantFrom('2026-01-15T13:04:05Z', '2026-01-15T13:04:05.5Z', '1969-12-31T23:59:59.999Z', '2026-01-16T00:00:00.01Z'), tsArb),
    subject: mostly(fc.constantFrom('creator:alice', 'creator:bob', 'c'), fc.oneof(fc.string({ maxLength: 4 }), fc.constantFrom('é', '', 'a\\b'))),
    kind: mostly(fc.constantFrom('view', 'like', 'follow'), fc.constantFrom('poke', '', 'Like', 'view ')),
    value: fc.option(
      mostly(
        fc.constantFrom<unknown>(0, 1, 2.5, 0.1, 3, 10, 123456789012345),
        fc.oneof(fc.constantFrom<unknown>(1e21, 1234567890123456, -1, null, '2', 1e-7, 0.1234567890123456), fc.double({ noNaN: true })),
      ),
      { nil: undefined },
    ),
    extra: mostly(fc.constant(false), fc.constant(true)),
    order: fc.constantFrom('spec', 'spec', 'reversed', 'value first'),
  })
  .map(({ id, ts, subject, kind, value, extra, order }) => {
    const fields: [string, unknown][] = [
      ['signal_id', id],
      ['ts', ts],
      ['subject_ref', subject],
      ['kind', kind],
    ];
    if (value !== undefined) fields.push(['value', value]);
    if (extra) fields.push(['source', 'x']);
    if (order === 'reversed') fields.reverse();
    if (order === 'value first') fields.unshift(fields.pop()!);
    return JSON.stringify(Object.fromEntries(fields));
  });

/** Raw lines that are not JSON.stringify's: spaces, escapes, repeated keys, numbers JSON spells oddly, blanks. */
const oddArb = fc.constantFrom(
  '{ "signal_id":"s","ts":"2026-01-15T13:04:05Z","subject_ref":"a","kind":"view"}',
  '{"signal_id":"s","ts":"2026-01-15T13:04:05Z","subject_ref":"a","kind":"view"} ',
  '{"signal_id":"s","signal_id":"t","ts":"2026-01-15T13:04:05Z","subject_ref":"a","kind":"view"}',
  '{"signal\\u005fid":"s","ts":"2026-01-15T13:04:05Z","subject_ref":"a","kind":"view"}',
  '{"signal_id":"\\u0073","ts":"2026-01-15T13:04:05Z","subject_ref":"a","kind":"view"}',
  '{"signal_id":"s","ts":"2026-01-15T13:04:05Z","subject_ref":"a","kind":"view","value":01}',
  '{"signal_id":"s","ts":"2026-01-15T13:04:05Z","subject_ref":"a","kind":"view","value":1.}',
  '{"signal_id":"s","ts":"2026-01-15T13:04:05Z","subject_ref":"a","kind":"view","value":1e2}',
  '{"signal_id":"s","ts":"2026-01-15T13:04:05Z","subject_ref":"a","kind":"view","value":-0}',
  '{"signal_id":"s","ts":"2026-01-15T13:04:05Z","subject_ref":"a","kind":"view","value":12345678901234567890}',
  '{"signal_id":"s","ts":"2026-01-15T13:04:05Z","subject_ref":"a","kind":"view",}',
  '{"signal_id":"s","ts":"2026-01-15T13:04:05Z","subject_ref":"a","kind":"view"}}',
  '{"signal_id":"s","ts":"2026-01-15T13:04:05Z","subject_ref":"a","kind":"view"',
  '{"signal_id":"s","ts":"2026-01-15T13:04:05Z","subject_ref":"a","kind":"view","value":{"a":1}}',
  '{"signal_id":"s","ts":"2026-01-15T13:04:05Z","subject_ref":"a","kind":"view","value":',
  '{"signal_id":"s","ts":"2026-01-15T13:04:05Z","subject_ref":"a","kind":"view","value":1',
  '{"signal_id":"s","ts":"2026-01-15T13:04:05Z","subject_ref":"a","kind":"view"}\r',
  '{"signal_id":"s\tx","ts":"2026-01-15T13:04:05Z","subject_ref":"a","kind":"view"}',
  '{}',
  '{"ts":"2026-01-15T13:04:05Z","subject_ref":"a","kind":"view"}',
  '{"signal_id":"s2","ts":"2026-01-15T13:04:05Z","kind":"view"}',
  '{"signal_id"',
  '',
  '  ',
  '\r',
  '[]',
  'null',
  '\uFEFF{"signal_id":"bom","ts":"2026-01-15T13:04:05Z","subject_ref":"a","kind":"view"}',
);

describe('reading a file from its bytes', () => {
  it('gives the signals, or the error (file, line, rule), that reading its text gives', async () => {
    const path = join(tempDir(), 'signals.jsonl');
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof({ weight: 4, arbitrary: lineArb }, { weight: 1, arbitrary: oddArb }), { maxLength: 12 }),
        fc.constantFrom('\n', '\r\n'),
        fc.boolean(),
        async (lines, eol, bom) => {
          const text = `${bom ? '\uFEFF' : ''}${lines.join(eol)}${n++ % 2 === 0 ? eol : ''}`;
          await writeFile(path, text);
          const want = await outcomeOf(async () => parseSignalText(text, path, KINDS));
          expect(await outcomeOf(() => readSignals(path, KINDS))).toEqual(want);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('is the text reader across chunk boundaries, with invalid UTF-8 and non-ASCII text', async () => {
    const path = join(tempDir(), 'big.jsonl');
    const parts: Buffer[] = [];
    for (let i = 0; i < 40_000; i++) {
      const subject = i % 7 === 0 ? `creator:é${i % 50}` : `creator:c${i % 300}`;
      parts.push(
        Buffer.from(
          `${JSON.stringify({ signal_id: `sig-${i}`, ts: `2026-01-${String(1 + (i % 28)).padStart(2, '0')}T10:00:0${i % 10}.${i % 1000}Z`, subject_ref: subject, kind: 'like', value: i % 3 === 0 ? i / 8 : undefined })}\n`,
        ),
      );
    }
    const clean = Buffer.concat(parts);
    await writeFile(path, clean);
    const text = clean.toString('utf8');
    expect(await outcomeOf(() => readSignals(path, KINDS))).toEqual(await outcomeOf(async () => parseSignalText(text, path, KINDS)));
    expect((await readSignals(path, KINDS)).length).toBe(40_000);
    // A stray byte that is not UTF-8 in a subject, past the first 1 MiB chunk: refused at its line
    // (decoded, it would be U+FFFD, and two different byte strings one subject).
    const at = clean.indexOf('creator:c', 1_500_000);
    const broken = Buffer.from(clean);
    broken[at + 8] = 0xff;
    await writeFile(path, broken);
    const line = clean.subarray(0, at).toString('latin1').split('\n').length;
    const column = at + 8 - clean.lastIndexOf(10, at);
    await expect(readSignals(path, KINDS)).rejects.toThrow(`${path}:${line}: not UTF-8: byte 0xff at byte ${column} of the line; save the file as UTF-8`);
  });

  it("hashes the file's bytes as it reads them: the file's sha256, the same signals or error", async () => {
    const path = join(tempDir(), 'hashed.jsonl');
    const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
    const line = (i: number): string => JSON.stringify({ signal_id: `sig-${i}`, ts: '2026-01-15T13:04:05Z', subject_ref: `creator:é${i % 9}`, kind: 'view' });
    // Empty, one line, and past one and two 1 MiB chunks (a line across each boundary).
    for (const n of [0, 1, 20_000, 45_000]) {
      const bytes = Buffer.from(Array.from({ length: n }, (_, i) => `${line(i)}\n`).join(''));
      await writeFile(path, bytes);
      const h = createHash('sha256');
      const table = await readSignalTable(path, KINDS, h);
      expect(h.digest('hex')).toBe(sha(bytes));
      expect(table.toSignals()).toEqual(await readSignals(path, KINDS));
    }
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof({ weight: 4, arbitrary: lineArb }, { weight: 1, arbitrary: oddArb }), { maxLength: 12 }), async (lines) => {
        const text = lines.join('\n');
        await writeFile(path, text);
        const h = createHash('sha256');
        const got = await outcomeOf(async () => (await readSignalTable(path, KINDS, h)).toSignals());
        expect(got).toEqual(await outcomeOf(() => readSignals(path, KINDS)));
        if ('signals' in got) expect(h.digest('hex')).toBe(sha(text));
      }),
      { numRuns: 200 },
    );
    await expect(readSignalTable(join(tempDir(), 'missing.jsonl'), KINDS, createHash('sha256'))).rejects.toThrow('file not found');
  });

  it('names a duplicate id found from bytes at the first line it was on', async () => {
    const path = join(tempDir(), 'dup.jsonl');
    const line = (id: string, subject = 'a'): string => JSON.stringify({ signal_id: id, ts: '2026-01-15T13:04:05Z', subject_ref: subject, kind: 'view' });
    await writeFile(path, [line('é1'), line('x'), line('y'), line('x')].join('\n'));
    await expect(readSignals(path, KINDS)).rejects.toThrow(`${path}:4: duplicate signal_id "x" (first on line 2)`);
    await writeFile(path, [line('é1'), line('x', 'é'), line('é1')].join('\n'));
    await expect(readSignals(path, KINDS)).rejects.toThrow(`${path}:3: duplicate signal_id "é1" (first on line 1)`);
  });
});

describe('scanPlainLine', () => {
  it('reads a plain line and leaves any other', () => {
    const kinds = [...KINDS];
    const out = new PlainLine();
    const scan = (text: string): boolean => {
      const b = Buffer.from(text, 'latin1');
      return scanPlainLine(b, 0, b.length, kinds, out);
    };
    expect(scan('{"signal_id":"s1","ts":"2026-01-15T13:04:05.25Z","subject_ref":"creator:a","kind":"share","value":2.5}')).toBe(true);
    expect([out.tsMs, out.digits, kinds[out.kind], out.value, out.idTo - out.idFrom, out.idHash]).toEqual([Date.UTC(2026, 0, 15, 13, 4, 5, 250), 2, 'share', 2.5, 2, textHash('s1')]);
    expect(scan('{"kind":"view","subject_ref":"b","ts":"2026-01-15T13:04:05Z","signal_id":"s"}')).toBe(true);
    expect(out.value).toBe(1);
    expect(scan('{"signal_id":"s","ts":"2026-01-15T13:04:05Z","subject_ref":"b","kind":"view","source":"x"}')).toBe(false);
    expect(scan('{"signal_id":"s","ts":"2026-01-15T13:04:05Z","subject_ref":"b"}')).toBe(false);
    expect(scan('{"signal_id":"","ts":"2026-01-15T13:04:05Z","subject_ref":"b","kind":"view"}')).toBe(false);
    expect(scan('{"signal_id":"s","ts":"2026-01-15T13:04:05Z","subject_ref":"b","kind":"view","value":1234567890123456}')).toBe(false);
  });
});
