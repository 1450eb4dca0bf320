import { closeSync, fstatSync, ftruncateSync, readSync } from 'node:fs';
import { safeMkdir, safeOpen, safeReaddir } from '../../storage/safe-path.js';
import { join } from 'node:path';
import { fsyncDir, writeAll } from '../../storage/atomic.js';
import { scanLines, type ScannedLine } from './codec.js';

/** Consumes complete lines from `buf` (at file offset `base`); returns the bytes it used. */
export type Scanner = (buf: Buffer, base: number) => number;

const LOG_NAME = /^log\.(\d{6,})\.jsonl$/;
const CHUNK = 4 << 20;

export function logPath(dir: string, gen: number): string {
  return join(dir, `log.${String(gen).padStart(6, '0')}.jsonl`);
}

/** Generations present in `dir`, oldest first. The highest is current: a compaction renames it into place whole. */
export function listGens(dir: string): number[] {
  return safeReaddir(dir)
    .map((f) => LOG_NAME.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

/** Opens (creating when absent, durably) the current generation for appending. */
export function openCurrent(dir: string): { gen: number; fd: number } {
  const gens = listGens(dir);
  if (gens.length > 0) {
    const gen = gens[gens.length - 1]!;
    return { gen, fd: safeOpen(logPath(dir, gen), 'a+') };
  }
  safeMkdir(dir);
  const fd = safeOpen(logPath(dir, 1), 'a+');
  fsyncDir(dir);
  return { gen: 1, fd };
}

export interface ReadResult {
  /** Offset just past the last complete line. */
  end: number;
  /** Bytes after `end` with no newline yet: a torn tail, or a write in progress. */
  tail: number;
}

/** Reads complete lines from `from` to the end of the file, calling `onLine` for each. */
/** One read buffer for the process: reads are synchronous, so they never overlap. */
let shared: Buffer | null = null;

export function readLines(fd: number, from: number, onLine: (l: ScannedLine) => void, onChunk?: () => void): ReadResult {
  return readWith(fd, from, (buf, base) => scanLines(buf, base, onLine), onChunk);
}

/** Reads complete lines from `from` to the end of the file with any line scanner. */
export function readWith(fd: number, from: number, scan: Scanner, onChunk?: () => void): ReadResult {
  let buf = (shared ??= Buffer.allocUnsafe(CHUNK));
  let have = 0;
  let base = from;
  let pos = from;
  for (;;) {
    if (have === buf.length) {
      const bigger = Buffer.allocUnsafe(buf.length * 2);
      buf.copy(bigger, 0, 0, have);
      buf = shared = bigger;
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

/** Reads `length` bytes at `offset`. */
export function readAt(fd: number, offset: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, offset + got);
    if (n === 0) break;
    got += n;
  }
  return got === length ? buf : buf.subarray(0, got);
}

/**
 * Appends `data` whole or not at all: a short or failed write (ENOSPC) is cut back off,
 * so no half record is left for the next writer to glue onto.
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

export function closeQuietly(fd: number | null): void {
  if (fd === null) return;
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
