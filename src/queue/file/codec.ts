import { crc32 } from 'node:zlib';
import type { NewTask } from '../types.js';
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

  /**
   * Appends the line of an `enqs` record of fresh tasks, encoded straight from them: `head` is the
   * record's JSON text up to its list (`{"t":"enqs",…,"l":[`), `tail` what follows the list (`]…}`),
   * and entry k is `tasks[picks[k]]` as `enqsOf` makes it with max_attempts `x`. The same bytes as
   * `add` of that record, without an entry array a task or the record's text. Ids and groups go
   * in as they are: their alphabets (src/queue/record.ts, src/queue/validate.ts) need no escape in
   * JSON; a caller passes only tasks that checkTaskId and checkGroup accepted. Returns the line's length.
   */
  addEnqs(head: string, tasks: readonly NewTask[], picks: Int32Array, count: number, x: number, tail: string): number {
    const start = this.length;
    let pos = start + BODY_START;
    this.reserve(pos + head.length + 16, start);
    HEAD_BYTES.copy(this.buf, start);
    MID_BYTES.copy(this.buf, start + HEAD.length + 8);
    pos = ascii(this.buf, pos, head);
    for (let k = 0; k < count; k++) {
      const t = tasks[picks[k]!]!;
      const id = t.id;
      const p = t.payload;
      const json = p === undefined || p === null ? 'null' : (JSON.stringify(p) ?? 'null');
      const max = t.max_attempts ?? x;
      const group = t.group;
      const more = group !== undefined ? `,${max},"${group}"` : max !== x ? `,${max}` : '';
      this.reserve(pos + id.length + json.length * 3 + more.length + 8, pos);
      const b = this.buf;
      if (k > 0) b[pos++] = 0x2c; // ,
      b[pos++] = 0x5b; // [
      b[pos++] = 0x22; // "
      pos = ascii(b, pos, id);
      b[pos++] = 0x22;
      b[pos++] = 0x2c;
      pos += json.length < 32 && isAscii(json) ? (ascii(b, pos, json), json.length) : b.write(json, pos, 'utf8');
      if (more !== '') pos = ascii(b, pos, more);
      b[pos++] = 0x5d; // ]
    }
    this.reserve(pos + tail.length + 2, pos);
    const b = this.buf;
    pos = ascii(b, pos, tail);
    let crc = crc32(b.subarray(start + BODY_START, pos));
    b[pos] = 0x7d;
    b[pos + 1] = NL;
    for (let i = start + HEAD.length + 7; i >= start + HEAD.length; i--) {
      b[i] = HEX[crc & 15]!;
      crc >>>= 4;
    }
    this.length = pos + 2;
    return pos + 2 - start;
  }

  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }

  /** Empties it for the next round, keeping its memory (up to 4 MiB): a round no longer allocates 64 KiB. */
  reset(): void {
    this.length = 0;
    if (this.buf.length > 4 << 20) this.buf = Buffer.allocUnsafe(1 << 16);
  }

  /** Room for `size` bytes; `keep`: the bytes written so far (a line being written may reach past `length`). */
  private reserve(size: number, keep = this.length): void {
    if (size <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(size, this.buf.length * 2));
    this.buf.copy(bigger, 0, 0, keep);
    this.buf = bigger;
  }
}

/** Writes `s`, whose characters are all below 0x80, at `pos`; returns the position after it. */
function ascii(b: Buffer, pos: number, s: string): number {
  for (let i = 0; i < s.length; i++) b[pos++] = s.charCodeAt(i);
  return pos;
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/**
 * A line a round has encoded but not yet appended (LoadedLog.unwritten), decoded from the round's
 * bytes when something reads it before the append: what lets a round write a line without
 * building its record (LineBuffer.addEnqs).
 */
export class BufferedLine {
  private decoded: unknown = undefined;

  constructor(
    private readonly lines: LineBuffer,
    private readonly start: number,
    private readonly length: number,
  ) {}

  /** The line's record (null when it does not verify, which a line this process encoded always does). */
  record(): unknown {
    if (this.decoded === undefined) this.decoded = decodeLine(this.lines.bytes(), this.start, this.start + this.length - 1);
    return this.decoded;
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
