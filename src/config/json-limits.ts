import { Buffer, isUtf8 } from 'node:buffer';
import { DataInvalidError } from '../guard/errors.js';
import { LIMITS } from './limits.js';

/**
 * The limits of every reader of outside JSON (task files and --payload, signals, the config
 * file; the HTTP API should use them too): nesting depth, line length, and numbers that JSON.parse
 * would not carry exactly (a literal beyond the largest double becomes Infinity, or null once
 * written back; an integer literal beyond 2^53-1 is silently rounded). Refused, never altered.
 */

const MAX_DEPTH = LIMITS.json_depth.max;

/**
 * The first limit `text` breaks (as a rule for an error message), or null. Looks at the text, not
 * the parsed value: only the text shows that `12345678901234567890` lost digits (an integer
 * literal beyond 2^53-1 is refused unless it reads back as itself, as a JavaScript number written
 * by JSON.stringify does). Strings are skipped; text that is not JSON is left to JSON.parse.
 */
export function jsonLimitBroken(text: string, maxDepth: number = MAX_DEPTH): string | null {
  const n = text.length;
  let depth = 0;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 34) {
      // A string: skip to its closing quote.
      for (i++; i < n; i++) {
        const d = text.charCodeAt(i);
        if (d === 92) i++;
        else if (d === 34) break;
      }
    } else if (c === 123 || c === 91) {
      if (++depth > maxDepth) return `nested deeper than ${maxDepth} levels of arrays and objects (limit json_depth)`;
    } else if (c === 125 || c === 93) {
      depth--;
    } else if (c === 45 || (c >= 48 && c <= 57)) {
      let j = i + 1;
      let exponent = false;
      let plain = true;
      for (; j < n; j++) {
        const d = text.charCodeAt(j);
        if (d >= 48 && d <= 57) continue;
        if (d === 101 || d === 69) exponent = true;
        else if (d !== 46 && d !== 43 && d !== 45) break;
        plain = false;
      }
      // Only an exponent or a long literal can leave the doubles or the safe integers.
      if (exponent || j - i >= 16) {
        const token = text.slice(i, j);
        const v = Number(token);
        const shown = token.length > 40 ? `${token.slice(0, 37)}...` : token;
        if (!Number.isFinite(v)) return `number ${shown} is beyond the largest number JSON readers carry (about 1.8e308); it would become Infinity`;
        if (plain && !Number.isSafeInteger(v) && !carried(token, v)) {
          return `integer ${shown} is beyond 2^53-1 (9007199254740991) and would be read as ${JSON.stringify(v)} (limit json_integer); send it as a string`;
        }
      }
      i = j - 1;
    }
  }
  return null;
}

/**
 * Whether an integer literal beyond 2^53-1 still reads back as itself: `100000000000000000000`
 * (what JSON.stringify writes for 1e20) does, `12345678901234567890` (read as
 * 12345678901234567000) does not.
 */
function carried(token: string, v: number): boolean {
  return JSON.stringify(v) === token || BigInt(v) === BigInt(token);
}

export type Parsed = { ok: true; value: unknown } | { ok: false; rule: string; /** JSON.parse's own message, when the text is not JSON. */ syntax?: string };

/** A parsed number that may stand for a literal JSON did not carry exactly. */
function suspicious(v: unknown): boolean {
  return typeof v === 'number' && !Number.isSafeInteger(v) && (Number.isInteger(v) || !Number.isFinite(v));
}

/**
 * JSON.parse within the limits: a text longer than `maxChars` (default: the JSONL line limit),
 * nested too deep, or holding a number JSON cannot carry exactly is refused with the rule it
 * breaks; so is text that is not JSON (`not valid JSON: …`, and `syntax` holds the parser's
 * message). A flat text (one object or a scalar, the common case of a signal line) is scanned only
 * when a parsed number looks wrong, so the check costs next to nothing there.
 */
export function parseJsonWithin(text: string, o: { maxChars?: number; what?: string; limit?: string } = {}): Parsed {
  const maxChars = o.maxChars ?? LIMITS.json_line_chars.max;
  if (text.length > maxChars) {
    return { ok: false, rule: `${o.what ?? 'line'} is ${text.length} characters long, more than ${maxChars} (limit ${o.limit ?? 'json_line_chars'})` };
  }
  const open = text.indexOf('{');
  const flat = text.indexOf('[') === -1 && (open === -1 || text.indexOf('{', open + 1) === -1);
  if (!flat) {
    const broken = jsonLimitBroken(text);
    if (broken !== null) return { ok: false, rule: broken };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return { ok: false, rule: `not valid JSON: ${reason.length > 100 ? `${reason.slice(0, 97)}...` : reason}`, syntax: reason };
  }
  if (flat && (suspicious(value) || (typeof value === 'object' && value !== null && Object.values(value).some(suspicious)))) {
    const broken = jsonLimitBroken(text);
    if (broken !== null) return { ok: false, rule: broken };
  }
  return { ok: true, value };
}

/** Where bytes stop being UTF-8: the first bad byte, its offset, its 1-based line and its 1-based byte in that line. */
export interface Utf8Fault {
  byte: number;
  offset: number;
  line: number;
  column: number;
}

/**
 * null when `bytes` are UTF-8, else the first byte that is not. Outside text is decoded only after
 * this check: Node's decoder would put U+FFFD in place of each bad sequence, so two different
 * byte strings would read as one (another subject, task or key) without a word.
 */
export function utf8Fault(bytes: Uint8Array): Utf8Fault | null {
  if (isUtf8(bytes)) return null;
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const at = firstBadSequence(buf);
  let line = 1;
  for (let nl = buf.indexOf(10); nl !== -1 && nl < at; nl = buf.indexOf(10, nl + 1)) line++;
  return { byte: buf[at]!, offset: at, line, column: at - buf.lastIndexOf(10, at) };
}

/**
 * The offset of the first byte that does not start a well-formed UTF-8 sequence (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or of the lead byte of a sequence cut
 * short (by another byte or by the end). Comparing the bytes with their decoded text encoded again
 * does not tell: a sequence cut short decodes to U+FFFD, whose encoding (EF BF BD) starts as
 * `EF` and `EF BF` do. `buf` must hold a bad sequence (`isUtf8` false).
 */
function firstBadSequence(buf: Buffer): number {
  for (let i = 0; i < buf.length;) {
    const c = buf[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    // Continuation bytes after the lead, and the range of the first of them.
    let more: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) more = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      more = 2;
      if (c === 0xe0) lo = 0xa0;
      else if (c === 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      more = 3;
      if (c === 0xf0) lo = 0x90;
      else if (c === 0xf4) hi = 0x8f;
    } else return i;
    if (i + more >= buf.length) return i;
    const first = buf[i + 1]!;
    if (first < lo || first > hi) return i;
    for (let k = 2; k <= more; k++) if ((buf[i + k]! & 0xc0) !== 0x80) return i;
    i += more + 1;
  }
  return buf.length;
}

/** The rule of a file's {@link Utf8Fault}, for `error: <file>:<line>: <rule>`. */
export function utf8Rule(f: Utf8Fault): string {
  return `not UTF-8: byte 0x${f.byte.toString(16).padStart(2, '0')} at byte ${f.column} of the line; save the file as UTF-8`;
}

/**
 * A whole file's bytes as text, refused when they are not UTF-8.
 * @throws DataInvalidError `<file>:<line>: not UTF-8: …` ({@link utf8Rule}), with `hint` if given.
 */
export function utf8Text(bytes: Buffer, file: string, hint?: string): string {
  const bad = utf8Fault(bytes);
  if (bad) throw new DataInvalidError(file, bad.line, utf8Rule(bad), hint ? { hint } : undefined);
  return bytes.toString('utf8');
}
