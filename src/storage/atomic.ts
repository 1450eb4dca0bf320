import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { FILE_MODE, safeFsyncDir, safeMkdir, safeOpen, safeRename, safeRm } from './safe-path.js';

/**
 * fsync a directory so a rename or a new file in it survives power loss. A link below the
 * workspace root on the way is refused (StateCorruptError, 30), as by every safe-path operation.
 */
export function fsyncDir(dir: string): void {
  safeFsyncDir(dir);
}

/**
 * Writes every byte of `data`: write(2) may take fewer than asked (a nearly full disk), and a
 * single unchecked call would leave the rest unwritten without an error. Returns nothing; throws
 * the write's error (ENOSPC) with `written` set to the bytes that did land.
 */
export function writeAll(fd: number, data: Buffer): void {
  let off = 0;
  try {
    while (off < data.length) {
      const n = writeSync(fd, data, off, data.length - off);
      if (n <= 0) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      off += n;
    }
  } catch (err) {
    if (err && typeof err === 'object') Object.assign(err, { written: off });
    throw err;
  }
}

/**
 * Replace `path` atomically and durably: temp file, fsync, rename, fsync of the directory.
 * A reader sees the old content or the new, never a mix; a crash leaves one of the two.
 *
 * Written here rather than with write-file-atomic, which issues one write(2) and ignores how many
 * bytes it took: on a nearly full disk write(2) may take fewer, and a truncated file was renamed
 * into place (found by the disk-full chaos suite). Every byte is written, or nothing is renamed.
 * `mode` is the new file's (default FILE_MODE, 0o640; SECRET_FILE_MODE for ops/ state).
 */
export function writeAtomicSync(path: string, data: string | Buffer, mode: number = FILE_MODE): void {
  const dir = dirname(path);
  safeMkdir(dir);
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  let fd: number | null = safeOpen(tmp, 'wx', mode);
  try {
    writeAll(fd, bytes);
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    safeRename(tmp, path);
  } catch (err) {
    if (fd !== null) {
      try {
        closeSync(fd);
      } catch {
        // Already failing: the write's error is the one to report.
      }
    }
    safeRm(tmp, { force: true });
    throw err;
  }
  fsyncDir(dir);
}
