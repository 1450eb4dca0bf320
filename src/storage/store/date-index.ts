import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
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

/**
 * store/.index/<store>/: the ids of a store file, one JSONL file per date, plus `covered` (how many
 * bytes of the store file are indexed). Derived data: when it is missing or behind, the store file
 * itself rebuilds it; so it is written without fsync.
 */
export class DateIndexFiles {
  private coveredFd: number | null = null;

  constructor(readonly dir: string) {}

  private file(date: string): string {
    return join(this.dir, `date=${date}.jsonl`);
  }

  covered(): number {
    try {
      const n = Number(readFileSync(join(this.dir, 'covered'), 'utf8').trim());
      return Number.isSafeInteger(n) && n >= 0 ? n : 0;
    } catch {
      return 0;
    }
  }

  /** Rewritten in place (one pwrite, fixed width): it changes with every append. */
  setCovered(n: number): void {
    if (this.coveredFd === null) {
      mkdirSync(this.dir, { recursive: true });
      this.coveredFd = openSync(join(this.dir, 'covered'), 'w');
    }
    writeSync(this.coveredFd, String(n).padStart(20, ' '), 0);
  }

  close(): void {
    if (this.coveredFd !== null) closeSync(this.coveredFd);
    this.coveredFd = null;
  }

  read(date: string): IndexEntry[] {
    const f = this.file(date);
    if (!existsSync(f)) return [];
    const out: IndexEntry[] = [];
    for (const line of readFileSync(f, 'utf8').split('\n')) {
      if (!line) continue;
      try {
        out.push(JSON.parse(line) as IndexEntry);
      } catch {
        // A torn index line: the store scan that follows a crash re-adds what it described.
      }
    }
    return out;
  }

  append(byDate: Map<string, IndexEntry[]>): void {
    mkdirSync(this.dir, { recursive: true });
    for (const [date, entries] of byDate) {
      appendFileSync(this.file(date), entries.map((e) => `${JSON.stringify(e)}\n`).join(''));
    }
  }

  clear(): void {
    this.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
