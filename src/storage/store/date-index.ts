import { MetaspnError } from '../../guard/errors.js';
import { safeAppendFile, safeExists, safeMkdir, safeReadFile, safeRename, safeRm, safeWriteFile } from '../safe-path.js';
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
  constructor(readonly dir: string) {}

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

  /** Replaced whole (rename): a reader sees the old meta or the new, never half of one. */
  setMeta(m: IndexMeta): void {
    safeMkdir(this.dir);
    const tmp = join(this.dir, `meta.json.${process.pid}.tmp`);
    safeWriteFile(tmp, JSON.stringify(m));
    safeRename(tmp, join(this.dir, 'meta.json'));
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
    safeMkdir(this.dir);
    for (const [date, entries] of byDate) {
      safeAppendFile(this.file(date), entries.map((e) => `${JSON.stringify(e)}\n`).join(''));
    }
  }

  clear(): void {
    safeRm(this.dir, { recursive: true, force: true });
  }
}
