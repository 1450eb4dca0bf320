import { join } from 'node:path';
import { fsyncDir } from '../../storage/atomic.js';
import { readWith, type ReadResult } from '../../storage/io.js';
import { safeMkdir, safeOpen, safeReaddir } from '../../storage/safe-path.js';
import { scanLines, type ScannedLine } from './codec.js';

const LOG_NAME = /^log\.(\d{6,})\.jsonl$/;

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

/** Reads complete lines of the queue's line format from `from` to the end of the file, calling `onLine` for each. */
export function readLines(fd: number, from: number, onLine: (l: ScannedLine) => void, onChunk?: () => void): ReadResult {
  return readWith(fd, from, (buf, base) => scanLines(buf, base, onLine), onChunk);
}
