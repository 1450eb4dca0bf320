import type { Scanner } from '../../queue/file/log-io.js';

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
