import { MetaspnError } from '../../guard/errors.js';
import { closeSync, fstatSync, writeSync } from 'node:fs';
import { safeAppendFile, safeExists, safeMkdir, safeOpen, safeReadFile, safeRm, safeWriteFile } from '../safe-path.js';
import { join } from 'node:path';

/** Where one row of a store file lives, and what it holds (by hash). */
export interface IndexEntry {
  id: string;
  /** Hash of the row's params: rows of different runs of a date differ here. */
  p: string;
  /** Byte offset and length (with the newline) in the store file. */
  o: number;
  l: number;
  /** Hash of the row text: equal content, equal hash. */
  h: string;
}

/** Index lines appended in one write at most. */
const APPEND_SLICE = 8192;

/** How far the index goes, and how many entries each date's file must have. */
export interface IndexMeta {
  /** Bytes of the store file that are indexed. */
  covered: number;
  counts: Record<string, number>;
}

/**
 * store/.index/<store>/: the ids of a store file, one JSONL file per date, and meta.json (how far
 * the index goes and how many entries each date has). Derived data: written without fsync, and
 * rebuilt from the store file whenever it does not add up.
 */
export class DateIndexFiles {
  /** Whether this object made (or found) {@link dir}: a store commits hundreds of times a stage, and each made it again (a mkdir and an lstat per folder from the workspace root). */
  private made = false;

  constructor(readonly dir: string) {}

  /**
   * Runs `fn`, a write into {@link dir}, the folder made first if this object has not made it.
   * Another process's rebuild may have removed it since (it clears the index under the store's
   * lock, between this process's commits): a write that finds it missing makes it again and runs
   * once more.
   */
  private inDir<T>(fn: () => T): T {
    if (!this.made) {
      safeMkdir(this.dir);
      this.made = true;
    }
    try {
      return fn();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      safeMkdir(this.dir);
      return fn();
    }
  }

  private file(date: string): string {
    return join(this.dir, `date=${date}.jsonl`);
  }

  meta(): IndexMeta {
    try {
      const m = JSON.parse(safeReadFile(join(this.dir, 'meta.json'))) as IndexMeta;
      if (Number.isSafeInteger(m.covered) && m.covered >= 0 && m.counts && typeof m.counts === 'object') return m;
    } catch (err) {
      // A link is refused (30); missing or damaged: rebuilt from the store file.
      if (err instanceof MetaspnError) throw err;
    }
    return { covered: 0, counts: {} };
  }

  /**
   * Written over in place, padded with spaces to the length it had (JSON allows them): one write
   * into an open file instead of a temporary file renamed over it per store flush (a rename and
   * its journal entry were a sixth of the store's cost). Readers hold the store's lock; a write cut
   * by a crash leaves a meta that does not parse or add up, and the index is rebuilt from the store.
   */
  setMeta(m: IndexMeta): void {
    const path = join(this.dir, 'meta.json');
    const text = JSON.stringify(m);
    let fd: number;
    try {
      fd = safeOpen(path, 'r+');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.inDir(() => safeWriteFile(path, text));
      return;
    }
    try {
      const size = fstatSync(fd).size;
      const bytes = Buffer.from(text);
      const buf = bytes.length < size ? Buffer.concat([bytes, Buffer.alloc(size - bytes.length, 0x20)]) : bytes;
      for (let at = 0; at < buf.length; ) at += writeSync(fd, buf, at, buf.length - at, at);
    } finally {
      closeSync(fd);
    }
  }

  /** A date's entries; null when the file does not hold as many as meta.json says (lost or garbled lines). */
  read(date: string, expected: number): IndexEntry[] | null {
    const f = this.file(date);
    const out: IndexEntry[] = [];
    if (safeExists(f)) {
      for (const line of safeReadFile(f).split('\n')) {
        if (!line) continue;
        try {
          out.push(JSON.parse(line) as IndexEntry);
        } catch {
          return null;
        }
      }
    }
    return out.length === expected ? out : null;
  }

  append(byDate: Map<string, IndexEntry[]>): void {
    for (const [date, entries] of byDate) {
      // In slices: the entries of a 100k-row put are never one string of all their lines.
      for (let i = 0; i < entries.length; i += APPEND_SLICE) {
        let text = '';
        for (const e of entries.slice(i, i + APPEND_SLICE)) text += `${JSON.stringify(e)}\n`;
        this.inDir(() => safeAppendFile(this.file(date), text));
      }
    }
  }

  clear(): void {
    this.made = false;
    safeRm(this.dir, { recursive: true, force: true });
  }
}
