// visible() and jsonText() (src/strings.ts): what the CLI writes to a terminal from data.
import { describe, expect, it } from 'vitest';
import { jsonText, visible } from '../../src/strings.js';

describe('visible', () => {
  it('escapes C0, DEL, C1 and bidi controls; keeps other text', () => {
    expect(visible('a\x1b[2J\x07\r\n\t\x00\x7f\u0085\u009b\u202e\u2066 é 日本 \u2028')).toBe('a\\x1b[2J\\x07\\r\\n\\t\\x00\\x7f\\u0085\\u009b\\u202e\\u2066 é 日本 \u2028');
  });
  it('keeps line feeds when asked, and nothing else', () => {
    expect(visible('one\ntwo\r\n\x1b', true)).toBe('one\ntwo\\r\n\\x1b');
  });
});

describe('jsonText', () => {
  it('is the same JSON value with C1, U+2028/2029 and bidi controls as \\u escapes', () => {
    const value = { s: 'a\u0085b\u2028c\u2029d\u202ee\x1b' };
    const text = jsonText(value);
    // eslint-disable-next-line no-control-regex
    expect(/[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/.test(text)).toBe(false);
    expect(JSON.parse(text)).toEqual(value);
  });
});
