import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeLine, encodeLine, encodeRecord, LineBuffer, scanLines, type ScannedLine } from '../../src/queue/file/codec.js';
import { shortForm, type LogRecord } from '../../src/queue/file/records.js';
import { newRecord } from '../../src/queue/record.js';

const record = fc.record({ t: fc.constantFrom('enq', 'done'), n: fc.nat(), s: fc.string({ unit: 'grapheme' }) });

function scan(buf: Buffer): { lines: ScannedLine[]; used: number } {
  const lines: ScannedLine[] = [];
  const used = scanLines(buf, 0, (l) => lines.push(l));
  return { lines, used };
}

describe('queue record codec', () => {
  it('encodes a record the same as bytes and as text, and decodes it back', () => {
    fc.assert(
      fc.property(record, (r) => {
        const bytes = encodeRecord(r);
        expect(bytes.equals(Buffer.from(encodeLine(r)))).toBe(true);
        expect(decodeLine(bytes, 0, bytes.length - 1)).toEqual(r);
      }),
    );
  });

  it('a line buffer holds the same bytes as the lines encoded one by one', () => {
    fc.assert(
      fc.property(fc.array(record, { maxLength: 50 }), (rs) => {
        const lb = new LineBuffer();
        const sizes = rs.map((r) => lb.add(r));
        const one = rs.map((r) => encodeRecord(r));
        expect(lb.bytes().equals(Buffer.concat(one))).toBe(true);
        expect(sizes).toEqual(one.map((b) => b.length));
      }),
    );
  });

  it('a changed byte anywhere in a line is detected', () => {
    fc.assert(
      fc.property(record, fc.nat(), fc.integer({ min: 1, max: 255 }), (r, at, flip) => {
        const bytes = encodeRecord(r);
        const i = at % (bytes.length - 1);
        bytes[i] = bytes[i]! ^ flip;
        const back = decodeLine(bytes, 0, bytes.length - 1);
        // Either rejected, or (a flip inside the hex digits' case, say) still exactly the record.
        if (back !== null) expect(back).toEqual(r);
      }),
    );
  });

  it('never throws on garbage and keeps every intact line around a damaged one', () => {
    fc.assert(
      fc.property(fc.array(record, { minLength: 1, maxLength: 12 }), fc.nat(), fc.uint8Array({ maxLength: 40 }), fc.boolean(), (rs, which, junk, glue) => {
        const lines = rs.map((r) => encodeRecord(r));
        const k = which % lines.length;
        // Damage line k: cut it short (a torn write) and maybe glue the next record onto it.
        const torn = Buffer.concat([lines[k]!.subarray(0, Math.max(1, lines[k]!.length >> 1)), Buffer.from(junk.filter((b) => b !== 0x0a))]);
        const parts = lines.map((l, i) => (i === k ? (glue ? torn : Buffer.concat([torn, Buffer.from('\n')])) : l));
        const { lines: got } = scan(Buffer.concat(parts));
        const good = got.filter((l) => l.record !== null).map((l) => l.record);
        const expected = rs.filter((_, i) => i !== k);
        expect(good).toEqual(expected);
      }),
      { numRuns: 500 },
    );
  });

  it('leaves an unterminated tail unconsumed', () => {
    const a = encodeRecord({ t: 'done', n: 1 });
    const b = encodeRecord({ t: 'done', n: 2 }).subarray(0, 10);
    const { lines, used } = scan(Buffer.concat([a, b]));
    expect(lines).toHaveLength(1);
    expect(used).toBe(a.length);
  });

  it('an enq of a fresh task is written short and reads back as the long form; long enq lines of older logs read as they are', () => {
    const json = fc.jsonValue().map((v) => JSON.parse(JSON.stringify(v)) as unknown);
    fc.assert(
      fc.property(
        fc.nat(),
        fc.integer({ min: 0, max: 4e12 }),
        json,
        fc.integer({ min: 1, max: 100 }),
        fc.option(fc.constant('s1/2026-01-02'), { nil: undefined }),
        fc.option(fc.double({ min: 0, max: 1e9, noNaN: true }), { nil: undefined }),
        (n, at, payload, max, group, m) => {
          const task = newRecord('update_attention_scores', { id: `t${n}`, payload, ...(group !== undefined ? { group } : {}) }, max, at);
          const long: LogRecord = { t: 'enq', n, at, task, ...(m !== undefined ? { m } : {}) };
          const short = encodeRecord(shortForm(long));
          const old = encodeRecord(long);
          expect(short.length).toBeLessThan(old.length - 90);
          expect(JSON.stringify(decodeLine(short, 0, short.length - 1))).toBe(JSON.stringify(long));
          expect(decodeLine(old, 0, old.length - 1)).toEqual(long);
        },
      ),
    );
  });

  it('an enq whose task is not fresh (attempts, errors, retries, other times) is written long', () => {
    const task = { ...newRecord('q', { id: 'a', payload: 1 }, 3, 1000), attempt_count: 1 };
    const rec: LogRecord = { t: 'enq', n: 0, at: 1000, task };
    expect(shortForm(rec)).toBe(rec);
    expect('task' in shortForm({ t: 'enq', n: 0, at: 2000, task: newRecord('q', { id: 'a', payload: 1 }, 3, 1000) })).toBe(true);
  });
});
