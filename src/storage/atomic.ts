import { closeSync, fsyncSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import writeFileAtomic from 'write-file-atomic';

/** fsync a directory so a rename or a new file in it survives power loss. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Replace `path` atomically and durably: temp file, fsync, rename, fsync of the directory.
 * A reader sees the old content or the new, never a mix; a crash leaves one of the two.
 */
export function writeAtomicSync(path: string, data: string | Buffer): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileAtomic.sync(path, data, { fsync: true });
  fsyncDir(dirname(path));
}

export async function writeAtomic(path: string, data: string | Buffer): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  await writeFileAtomic(path, data, { fsync: true });
  fsyncDir(dirname(path));
}
