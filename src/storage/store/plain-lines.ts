import { closeSync } from 'node:fs';
import { readWith, type Scanner } from '../io.js';
import { safeExists, safeOpen } from '../safe-path.js';
import { paramsKey } from './artifact-store.js';

export interface PlainLine {
  /** Byte offset of the line in the file. */
  offset: number;
  /** Bytes including the newline. */
  length: number;
  text: string;
  /** The parsed object; null when the line is not a JSON object. */
  row: Record<string, unknown> | null;
}

/** A line scanner for plain JSONL files (store, ledger): one JSON object a line, no checksum. */
export function plainScanner(onLine: (l: PlainLine) => void): Scanner {
  return (buf, base) => {
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(0x0a, start);
      if (nl < 0) return start;
      const text = buf.toString('utf8', start, nl).replace(/\r$/, '');
      let row: Record<string, unknown> | null = null;
      try {
        const v: unknown = JSON.parse(text);
        if (v && typeof v === 'object' && !Array.isArray(v)) row = v as Record<string, unknown>;
      } catch {
        row = null;
      }
      onLine({ offset: base + start, length: nl + 1 - start, text, row });
      start = nl + 1;
    }
  };
}

/**
 * The rows of a store file whose `date|paramsKey(params)` is one of `keys`, with their exact text,
 * in file order, read in one pass without the store's lock or index (doctor and staleness checks
 * read, they never write). A missing file has none; lines that are not rows are passed over.
 * @throws StateCorruptError (30) when the file or a folder on its way is a link.
 */
export function rowsByKey(
  path: string,
  keys: ReadonlySet<string>,
  /** The key of a row: by default `date|paramsKey(params)` (Season 1's rows); a pipeline's rows key on `date|identity`. */
  keyOf: (r: Record<string, unknown>) => string = (r) => `${r.date as string}|${paramsKey(r.params)}`,
): Map<string, { id: string; text: string }[]> {
  const out = new Map<string, { id: string; text: string }[]>();
  if (keys.size === 0 || !safeExists(path)) return out;
  const fd = safeOpen(path, 'r');
  try {
    readWith(
      fd,
      0,
      plainScanner((l) => {
        const r = l.row;
        if (!r || typeof r.id !== 'string' || typeof r.date !== 'string') return;
        const key = keyOf(r);
        if (!keys.has(key)) return;
        (out.get(key) ?? out.set(key, []).get(key)!).push({ id: r.id, text: l.text });
      }),
    );
  } finally {
    closeSync(fd);
  }
  return out;
}
