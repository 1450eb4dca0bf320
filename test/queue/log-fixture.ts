import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeLine } from '../../src/queue/file/codec.js';
import { logPath } from '../../src/queue/file/log-io.js';
import type { LogRecord } from '../../src/queue/file/records.js';
import { tempDir } from '../temp.js';

/**
 * A workspace whose queue `jobs` has a log of exactly these records (generation 1, each line
 * checksummed as a writer writes it), and the byte offset of each line: for replay and salvage
 * tests that need records no writer of this version would write.
 */
export function workspaceWithLog(lines: LogRecord[], prefix = 'metaspn-log-'): { w: string; offsets: number[] } {
  const w = tempDir(prefix);
  const dir = join(w, 'queue', 'jobs');
  mkdirSync(dir, { recursive: true });
  const text = lines.map((l) => encodeLine(l));
  const offsets: number[] = [];
  let at = 0;
  for (const t of text) {
    offsets.push(at);
    at += Buffer.byteLength(t);
  }
  writeFileSync(logPath(dir, 1), text.join(''));
  return { w, offsets };
}
