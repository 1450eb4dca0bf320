import { closeSync, fstatSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { readWith } from '../storage/io.js';
import type { WorkspacePaths } from '../storage/paths.js';
import { safeOpen, safeReaddir } from '../storage/safe-path.js';
import { DateIndexFiles } from '../storage/store/date-index.js';
import { plainScanner } from '../storage/store/plain-lines.js';
import type { Findings } from './finding.js';

export function storeFiles(ws: WorkspacePaths): string[] {
  return safeReaddir(ws.store)
    .filter((f) => f.endsWith('.jsonl'))
    .sort()
    .map((f) => join(ws.store, f));
}

export interface StoreCheck {
  tornTail: boolean;
  indexStale: boolean;
}

/**
 * One artifact file: every line a JSON row with an id and a date, no id twice, no torn tail,
 * and its per-date index in step with it.
 */
export function checkStore(ws: WorkspacePaths, path: string, f: Findings): StoreCheck {
  const rel = relative(ws.root, path);
  const fd = safeOpen(path, 'r');
  const ids = new Set<string>();
  const perDate = new Map<string, number>();
  const bad: number[] = [];
  const dupes: string[] = [];
  let line = 0;
  let tornTail = false;
  let size = 0;
  try {
    const r = readWith(
      fd,
      0,
      plainScanner((l) => {
        line++;
        const id = l.row?.id;
        const date = l.row?.date;
        if (typeof id !== 'string' || typeof date !== 'string') {
          bad.push(line);
          return;
        }
        if (ids.has(id)) dupes.push(id);
        ids.add(id);
        perDate.set(date, (perDate.get(date) ?? 0) + 1);
      }),
    );
    if (r.tail > 0) {
      tornTail = true;
      f.error('store', rel, `torn last line: ${r.tail} bytes without a newline (a crash mid-append)`, '--repair sets them aside in quarantine/ and cuts them off; the next run writes the row again');
    }
    size = fstatSync(fd).size - r.tail;
  } finally {
    closeSync(fd);
  }
  if (bad.length)
    f.error(
      'store',
      rel,
      `${bad.length} line(s) are not JSON rows with an id and a date (lines ${bad.slice(0, 5).join(', ')}${bad.length > 5 ? ', …' : ''})`,
      'not repaired automatically (it would mean deleting data): restore the file from a backup, or move the lines out by hand',
    );
  if (dupes.length) f.error('store', rel, `${dupes.length} id(s) appear twice (first ${dupes[0]})`, 'artifacts must be written once: restore from a backup; re-runs never write an id twice');
  const index = new DateIndexFiles(join(ws.store, '.index', basename(path, '.jsonl')));
  const meta = index.meta();
  let indexStale = meta.covered !== size || Object.keys(meta.counts).some((d) => !perDate.has(d));
  for (const [date, n] of perDate) {
    if (indexStale) break;
    if (meta.counts[date] !== n || index.read(date, n) === null) indexStale = true;
  }
  if (indexStale) f.warn('store', relative(ws.root, index.dir), 'the per-date index is not in step with the file', '--repair rebuilds it from the file (any write also catches it up)');
  return { tornTail, indexStale };
}
