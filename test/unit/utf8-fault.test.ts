// utf8Fault names the first byte of the first sequence that is not UTF-8, wherever it is (a file
// that ends in the middle of a character too): what every reader of outside bytes reports.
import { describe, expect, it } from 'vitest';
import { utf8Fault, utf8Rule } from '../../src/config/json-limits.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/ /g, ''), 'hex');

describe('utf8Fault', () => {
  it('null for UTF-8, U+FFFD itself included', () => {
    expect(utf8Fault(hex('61 e282ac efbfbd f09f9880 0a'))).toBeNull();
  });

  it('the lead byte of a truncated sequence, whatever follows it', () => {
    const cases: [string, { byte: number; offset: number; line: number; column: number }][] = [
      ['616263 e282 41', { byte: 0xe2, offset: 3, line: 1, column: 4 }],
      // EF and EF BF are the first bytes of U+FFFD's own encoding: they were taken for good.
      ['616263 ef 41', { byte: 0xef, offset: 3, line: 1, column: 4 }],
      ['616263 efbf 41', { byte: 0xef, offset: 3, line: 1, column: 4 }],
      ['0a 61 ef 0a', { byte: 0xef, offset: 2, line: 2, column: 2 }],
      // A stray continuation byte, an overlong form, a surrogate, a byte never in UTF-8.
      ['61 80', { byte: 0x80, offset: 1, line: 1, column: 2 }],
      ['c0af', { byte: 0xc0, offset: 0, line: 1, column: 1 }],
      ['61 eda080', { byte: 0xed, offset: 1, line: 1, column: 2 }],
      ['0a0a 6162 ff', { byte: 0xff, offset: 4, line: 3, column: 3 }],
    ];
    for (const [bytes, fault] of cases) expect({ bytes, fault: utf8Fault(hex(bytes)) }).toEqual({ bytes, fault });
  });

  it('a file that ends in the middle of a character: its last bytes, not a TypeError', () => {
    for (const [bytes, byte, offset] of [
      ['616263 ef', 0xef, 3],
      ['616263 efbf', 0xef, 3],
      ['616263 e282', 0xe2, 3],
      ['f09f98', 0xf0, 0],
    ] as const) {
      const f = utf8Fault(hex(bytes));
      expect({ bytes, byte: f?.byte, offset: f?.offset }).toEqual({ bytes, byte, offset });
      expect(utf8Rule(f!)).toBe(`not UTF-8: byte 0x${byte.toString(16)} at byte ${offset + 1} of the line; save the file as UTF-8`);
    }
  });

  it('a view into a larger buffer reads only its own bytes', () => {
    const whole = hex('ff 61 ef 62 ff');
    expect(utf8Fault(whole.subarray(1, 4))).toEqual({ byte: 0xef, offset: 1, line: 1, column: 2 });
  });
});
