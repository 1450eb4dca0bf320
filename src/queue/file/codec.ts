import { crc32 } from 'node:zlib';
import { expandRecord } from './records.js';

/**
 * One record a line: `{"c":"<crc32 hex>","r":<record JSON>}`. The checksum covers the record's
 * bytes exactly as written, so a torn or altered line is detected without trusting its JSON.
 */
const HEAD = '{"c":"';
const MID = '","r":';
const BODY_START = HEAD.length + 8 + MID.length;
const NL = 0x0a;
const HEAD_BYTES = Buffer.from(HEAD);
const MID_BYTES = Buffer.from(MID);

export function encodeLine(record: object): string {
  const body = JSON.stringify(record);
  return `${HEAD}${crc32(body).toString(16).padStart(8, '0')}${MID}${body}}\n`;
}

/**
 * The same line as bytes, encoding the record's text once (the string form encodes it three times:
 * for the checksum, for its length, for the write).
 */
export function encodeRecord(record: object): Buffer {
  const body = JSON.stringify(record);
  const len = Buffer.byteLength(body);
  const buf = Buffer.allocUnsafe(BODY_START + len + 2);
  buf.write(HEAD, 0, 'latin1');
  buf.write(MID, HEAD.length + 8, 'latin1');
  buf.write(body, BODY_START, 'utf8');
  buf.write('}\n', BODY_START + len, 'latin1');
  buf.write(crc32(buf.subarray(BODY_START, BODY_START + len)).toString(16).padStart(8, '0'), HEAD.length, 'latin1');
  return buf;
}

const HEX = Buffer.from('0123456789abcdef', 'latin1');

/**
 * Encodes many lines into one growing buffer: the bytes a round appends, without a buffer per
 * record or a concatenation at the end.
 */
export class LineBuffer {
  private buf = Buffer.allocUnsafe(1 << 16);
  length = 0;

  /** Appends one record's line; returns its length in bytes. */
  add(record: object): number {
    const body = JSON.stringify(record);
    const start = this.length;
    this.reserve(start + BODY_START + body.length * 3 + 2);
    const b = this.buf;
    HEAD_BYTES.copy(b, start);
    MID_BYTES.copy(b, start + HEAD.length + 8);
    const n = b.write(body, start + BODY_START, 'utf8');
    const end = start + BODY_START + n;
    b[end] = 0x7d;
    b[end + 1] = NL;
    let crc = crc32(b.subarray(start + BODY_START, end));
    for (let i = start + HEAD.length + 7; i >= start + HEAD.length; i--) {
      b[i] = HEX[crc & 15]!;
      crc >>>= 4;
    }
    this.length = end + 2;
    return end + 2 - start;
  }

  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }

  /** Empties it for the next round, keeping its memory (up to 4 MiB): a round no longer allocates 64 KiB. */
  reset(): void {
    this.length = 0;
    if (this.buf.length > 4 << 20) this.buf = Buffer.allocUnsafe(1 << 16);
  }

  private reserve(size: number): void {
    if (size <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(size, this.buf.length * 2));
    this.buf.copy(bigger, 0, 0, this.length);
    this.buf = bigger;
  }
}

/** The record in bytes [start, end) (no newline), or null when the line does not verify. */
export function decodeLine(buf: Buffer, start: number, end: number): unknown {
  if (end - start < BODY_START + 2) return null;
  if (buf[end - 1] !== 0x7d /* } */) return null;
  if (buf.compare(HEAD_BYTES, 0, HEAD_BYTES.length, start, start + HEAD_BYTES.length) !== 0) return null;
  const mid = start + HEAD.length + 8;
  if (buf.compare(MID_BYTES, 0, MID_BYTES.length, mid, mid + MID_BYTES.length) !== 0) return null;
  const want = hex32(buf, start + HEAD.length);
  if (want < 0) return null;
  const body = buf.subarray(start + BODY_START, end - 1);
  if (crc32(body) !== want) return null;
  try {
    return expandRecord(JSON.parse(body.toString('utf8')));
  } catch {
    return null;
  }
}

/** Eight lowercase hex digits as a number; -1 when they are not. */
function hex32(buf: Buffer, at: number): number {
  let v = 0;
  for (let i = at; i < at + 8; i++) {
    const c = buf[i]!;
    const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

export interface ScannedLine {
  /** Byte offset of the line in the file. */
  offset: number;
  /** Bytes including the newline. */
  length: number;
  /** The record; null for a corrupt stretch that was set aside. */
  record: unknown;
}

/**
 * Splits complete lines out of `buf` (which starts at file offset `base`) and decodes them.
 * A line that does not verify is searched for a record that starts inside it: a writer that died
 * without its newline leaves garbage that the next append glues onto a good record, and that good
 * record must not be lost with the garbage. Returns how many bytes were consumed (up to the last newline).
 */
export function scanLines(buf: Buffer, base: number, out: (line: ScannedLine) => void): number {
  let start = 0;
  for (;;) {
    const nl = buf.indexOf(NL, start);
    if (nl < 0) return start;
    const record = decodeLine(buf, start, nl);
    if (record !== null) {
      out({ offset: base + start, length: nl + 1 - start, record });
    } else {
      recoverInside(buf, base, start, nl, out);
    }
    start = nl + 1;
  }
}

function recoverInside(buf: Buffer, base: number, start: number, nl: number, out: (line: ScannedLine) => void): void {
  let from = start + 1;
  for (;;) {
    const at = buf.indexOf(HEAD_BYTES, from);
    if (at < 0 || at >= nl) break;
    const record = decodeLine(buf, at, nl);
    if (record !== null) {
      out({ offset: base + start, length: at - start, record: null });
      out({ offset: base + at, length: nl + 1 - at, record });
      return;
    }
    from = at + 1;
  }
  out({ offset: base + start, length: nl + 1 - start, record: null });
}
