/**
 * The one module for line files on disk: reading complete lines from a descriptor with any line
 * scanner, reading byte ranges, appending whole or not at all, splitting a JSONL text into its
 * complete lines and its torn tail, and setting damaged bytes aside in a quarantine file. The
 * queue log, the artifact store, the ledger and the alert log all read and quarantine through it.
 */
import { closeSync, fstatSync, ftruncateSync, readSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeAll } from './atomic.js';
import { safeAppendFile, safeMkdir } from './safe-path.js';

/** Consumes complete lines from `buf` (at file offset `base`); returns the bytes it used. */
export type Scanner = (buf: Buffer, base: number) => number;

/** Where a read of complete lines stopped. */
export interface ReadResult {
  /** Offset just past the last complete line. */
  end: number;
  /** Bytes after `end` with no newline yet: a torn tail, or a write in progress. */
  tail: number;
}

/** The most a read takes at once; a line longer than this grows the buffer. */
const CHUNK = 4 << 20;
/** The least: small files and small catch-ups read into a small buffer. */
const MIN_CHUNK = 64 << 10;

/**
 * Reads complete lines from `from` to the end of the file with a line scanner. The buffer is the
 * call's own (sized to what is left to read, 64 KiB to 4 MiB, grown for a longer line): nothing is
 * shared between calls.
 */
export function readWith(fd: number, from: number, scan: Scanner, onChunk?: () => void): ReadResult {
  const left = Math.max(0, fstatSync(fd).size - from);
  let buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(MIN_CHUNK, left + 1)));
  let have = 0;
  let base = from;
  let pos = from;
  for (;;) {
    if (have === buf.length) {
      const bigger = Buffer.allocUnsafe(buf.length * 2);
      buf.copy(bigger, 0, 0, have);
      buf = bigger;
    }
    const n = readSync(fd, buf, have, buf.length - have, pos);
    if (n === 0) break;
    pos += n;
    have += n;
    const used = scan(buf.subarray(0, have), base);
    onChunk?.();
    if (used > 0) {
      buf.copy(buf, 0, used, have);
      have -= used;
      base += used;
    }
  }
  return { end: base, tail: have };
}

/** Ranges further apart than this are read separately. */
const GAP = 64 << 10;
/** At most this many bytes in one read. */
const SPAN = 4 << 20;

/**
 * Reads many [offset, length) ranges in as few reads as their layout allows (things written
 * together sit together), returning each range's bytes in the order asked.
 */
export function readMany(fd: number, ranges: readonly { offset: number; length: number }[]): Buffer[] {
  const out = new Array<Buffer>(ranges.length);
  const order = ranges.map((_, i) => i).sort((a, b) => ranges[a]!.offset - ranges[b]!.offset);
  let i = 0;
  while (i < order.length) {
    const base = ranges[order[i]!]!.offset;
    let stop = base + ranges[order[i]!]!.length;
    let j = i + 1;
    while (j < order.length) {
      const r = ranges[order[j]!]!;
      if (r.offset - stop > GAP || r.offset + r.length - base > SPAN) break;
      stop = Math.max(stop, r.offset + r.length);
      j++;
    }
    const buf = readAt(fd, base, stop - base);
    for (let k = i; k < j; k++) {
      const r = ranges[order[k]!]!;
      out[order[k]!] = buf.subarray(r.offset - base, r.offset - base + r.length);
    }
    i = j;
  }
  return out;
}

/** Reads `length` bytes at `offset` (fewer when the file ends first). */
export function readAt(fd: number, offset: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  const got = readInto(fd, buf, offset);
  return got === length ? buf : buf.subarray(0, got);
}

/**
 * Fills `buf` with the bytes of `fd` from `offset` on (short reads repeated), fewer at the end of
 * the file. @returns how many bytes were read.
 */
export function readInto(fd: number, buf: Buffer, offset: number): number {
  let got = 0;
  while (got < buf.length) {
    const n = readSync(fd, buf, got, buf.length - got, offset + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

/**
 * Appends `data` whole or not at all: a short or failed write (ENOSPC) is cut back off,
 * so no half record is left for the next writer to glue onto.
 * @throws what the write threw, after cutting back.
 */
export function appendAll(fd: number, data: Buffer, expectedEnd: number): void {
  try {
    writeAll(fd, data);
  } catch (err) {
    const off = (err as { written?: number }).written ?? 0;
    try {
      if (off > 0 && fstatSync(fd).size === expectedEnd + off) ftruncateSync(fd, expectedEnd);
    } catch {
      // The write error below is what the caller needs to hear.
    }
    throw err;
  }
}

/** Closes a descriptor, ignoring one already closed; null is nothing to close. */
export function closeQuietly(fd: number | null): void {
  if (fd === null) return;
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

/**
 * A JSONL text as its complete lines (each ended by a newline; blank ones kept, so a line's index
 * + 1 is its line number) and whether it ends in a torn line (bytes after the last newline: a
 * crash during an append). The one place that decides what a torn last line is.
 */
export function splitJsonl(text: string): { lines: string[]; torn: boolean } {
  const lines = text.split('\n');
  const torn = lines.pop() !== '';
  return { lines, torn };
}

/** Bytes set aside: where they were and why. */
export interface SetAsideBytes {
  /** The file they were cut from. */
  file: string;
  offset: number;
  bytes: Buffer;
  /** `torn tail (no newline)` or `checksum mismatch`. */
  reason: string;
}

/**
 * Appends one JSON line per stretch to the quarantine file `to` (its folder created): the file,
 * offset and length they came from, when and why they were set aside, and the bytes in base64.
 * Nothing set aside is ever deleted by metaspn.
 */
export function setAside(to: string, stretches: readonly SetAsideBytes[], at: Date = new Date()): void {
  if (stretches.length === 0) return;
  safeMkdir(dirname(to));
  const lines = stretches.map((s) =>
    JSON.stringify({ file: s.file, offset: s.offset, length: s.bytes.length, set_aside_at: at.toISOString(), reason: s.reason, bytes_base64: s.bytes.toString('base64') }),
  );
  safeAppendFile(to, `${lines.join('\n')}\n`);
}

/**
 * A writer died mid-line: sets the `tail` bytes after `end` aside in the quarantine file `to`,
 * then cuts them off the file (open as `fd`), so the next append starts on a line of its own.
 */
export function cutTornTail(fd: number, file: string, end: number, tail: number, to: string, at: Date = new Date()): void {
  setAside(to, [{ file, offset: end, bytes: readAt(fd, end, tail), reason: 'torn tail (no newline)' }], at);
  ftruncateSync(fd, end);
}
