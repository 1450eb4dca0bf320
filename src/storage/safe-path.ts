import { closeSync, constants, type Dirent, fsyncSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, type RmOptions, statSync, type Stats } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { StateCorruptError } from '../guard/errors.js';
import { writeAll } from './atomic.js';

/**
 * The workspace is a boundary: every file metaspn creates, opens, reads, lists, appends to,
 * renames or removes inside a workspace goes through here. A symbolic link anywhere between the workspace
 * root and the file is refused (exit 30) rather than followed, so a link planted in queue/, store/
 * or logs/ can never make metaspn (often run by cron, sometimes as root) write or truncate a file
 * outside the workspace. The root itself may be a link: users do that, and it is not checked.
 *
 * Modes are explicit, never what the umask leaves: the umask only narrows a mode, so passing it at
 * creation is what keeps a file from being group- or world-writable under `umask 000`.
 */

/** Mode of the files metaspn creates in a workspace. */
export const FILE_MODE = 0o640;
/** Mode of files that may carry secrets (ops/ state: callback and signature records). */
export const SECRET_FILE_MODE = 0o600;
/** Mode of the folders metaspn creates in a workspace. */
export const DIR_MODE = 0o750;

const roots = new Set<string>();

/** Declares a workspace root (done by `workspacePaths`): paths below it are checked for links. */
export function registerWorkspaceRoot(root: string): void {
  roots.add(resolve(root));
}

function under(path: string, root: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
}

/** The innermost registered workspace root holding `abs`, or null. */
function rootOf(abs: string): string | null {
  let best: string | null = null;
  for (const r of roots) if (under(abs, r) && (best === null || r.length > best.length)) best = r;
  return best;
}

/** A link inside the workspace: refused, naming it. */
export function linkRefused(path: string): StateCorruptError {
  const err = new StateCorruptError(`${path}: is a symbolic link inside the workspace; metaspn does not follow links`, {
    hint: 'remove the link (move the real file into the workspace if it belongs there), then run `metaspn doctor`',
    details: { path },
  });
  // Inside a task (a store file is opened by a handler) no retry can help: no five attempts per task.
  return Object.assign(err, { unrecoverable: true });
}

/**
 * Throws when a component of `path` below its workspace root is a symbolic link (the last one
 * too, with `includeLast`). A missing component ends the walk: nothing below it exists yet. Paths
 * outside every registered workspace are left alone (a module used on its own, as in unit tests:
 * the file itself is still opened with O_NOFOLLOW).
 */
export function assertNoLinks(path: string, opts: { includeLast?: boolean } = {}): void {
  const abs = resolve(path);
  const root = rootOf(abs);
  if (root === null) return;
  const parts = relative(root, abs)
    .split(sep)
    .filter((p) => p.length > 0);
  const n = opts.includeLast ? parts.length : parts.length - 1;
  let cur = root;
  for (let i = 0; i < n; i++) {
    cur = join(cur, parts[i]!);
    let link: boolean;
    try {
      link = lstatSync(cur).isSymbolicLink();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return;
      throw err;
    }
    if (link) throw linkRefused(cur);
  }
}

const NOFOLLOW = constants.O_NOFOLLOW ?? 0;

const FLAGS: Record<string, number> = {
  r: constants.O_RDONLY,
  'r+': constants.O_RDWR,
  w: constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC,
  'w+': constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC,
  wx: constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_EXCL,
  a: constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND,
  'a+': constants.O_RDWR | constants.O_CREAT | constants.O_APPEND,
};

export type OpenFlags = 'r' | 'r+' | 'w' | 'w+' | 'wx' | 'a' | 'a+';

/**
 * openSync that refuses a link: the folders on the way are checked with lstat, the file itself is
 * opened with O_NOFOLLOW (a link there fails with ELOOP, reported as the link it is). `mode` applies
 * when the file is created (default FILE_MODE).
 */
export function safeOpen(path: string, flags: OpenFlags, mode: number = FILE_MODE): number {
  assertNoLinks(path, { includeLast: NOFOLLOW === 0 });
  try {
    return openSync(path, FLAGS[flags]! | NOFOLLOW, mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP' && isLink(path)) throw linkRefused(path);
    throw err;
  }
}

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/**
 * mkdirSync(recursive) that refuses a link: each folder below the workspace root is checked with
 * lstat and created (with `mode`, default DIR_MODE) when missing. Outside a workspace, a plain
 * recursive mkdir with the mode.
 */
export function safeMkdir(dir: string, mode: number = DIR_MODE): void {
  const abs = resolve(dir);
  assertNoLinks(dir, { includeLast: true });
  const root = rootOf(abs);
  if (root === null) {
    mkdirSync(abs, { recursive: true, mode });
    return;
  }
  mkdirSync(root, { recursive: true, mode });
  let cur = root;
  for (const part of relative(root, abs)
    .split(sep)
    .filter((p) => p.length > 0)) {
    cur = join(cur, part);
    try {
      mkdirSync(cur, { mode });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const st = lstatSync(cur);
      if (st.isSymbolicLink()) throw linkRefused(cur);
      if (!st.isDirectory()) throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${cur}'`), { code: 'ENOTDIR', path: cur });
    }
  }
}

/** readFileSync (as text) that refuses a link: a state file is never read from outside the workspace. */
export function safeReadFile(path: string): string {
  const fd = safeOpen(path, 'r');
  try {
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/** appendFileSync that refuses a link; creates the file with `mode` (default FILE_MODE). */
export function safeAppendFile(path: string, data: string | Buffer, mode: number = FILE_MODE): void {
  const fd = safeOpen(path, 'a', mode);
  try {
    writeAll(fd, typeof data === 'string' ? Buffer.from(data) : data);
  } finally {
    closeSync(fd);
  }
}

/** writeFileSync that refuses a link; creates the file with `mode` (default FILE_MODE). */
export function safeWriteFile(path: string, data: string | Buffer, mode: number = FILE_MODE): void {
  const fd = safeOpen(path, 'w', mode);
  try {
    writeAll(fd, typeof data === 'string' ? Buffer.from(data) : data);
  } finally {
    closeSync(fd);
  }
}

/** renameSync with no link in the folders of either path (rename itself replaces a link, never its target). */
export function safeRename(from: string, to: string): void {
  assertNoLinks(from);
  assertNoLinks(to);
  renameSync(from, to);
}

/** rmSync with no link in the folders on the way (a link as the last component is removed, not followed). */
export function safeRm(path: string, opts: RmOptions = {}): void {
  assertNoLinks(path);
  rmSync(path, opts);
}

/**
 * Whether `path` exists, never through a link: false when it (or a folder on the way) is missing;
 * StateCorruptError (30) naming the link when it, or a folder on the way below the workspace root,
 * is a symbolic link. Stands for existsSync, which follows links.
 */
export function safeExists(path: string): boolean {
  return safeLstat(path) !== null;
}

/**
 * lstat of `path` with no link on the way: null when missing; StateCorruptError (30) when `path`
 * or a folder on the way below the workspace root is a symbolic link. Stands for statSync, which
 * follows links (a link's own lstat is never returned: it is refused).
 */
export function safeLstat(path: string): Stats | null {
  assertNoLinks(path);
  const abs = resolve(path);
  const root = rootOf(abs);
  try {
    const st = lstatSync(path);
    if (!st.isSymbolicLink()) return st;
    // The root itself may be a link, and a path outside every workspace is not ours to judge.
    if (root === null || abs === root) return statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw err;
  }
  throw linkRefused(path);
}

/**
 * The names in folder `dir`, never through a link: [] when the folder does not exist (or is not a folder);
 * StateCorruptError (30) when `dir` or a folder on the way below the workspace root is a symbolic
 * link. Entries that are links are listed (as names): whoever opens one is refused.
 */
export function safeReaddir(dir: string): string[] {
  return listed(dir, () => readdirSync(dir));
}

/** safeReaddir with each entry's type (of the entry itself: a link is `isSymbolicLink()`, never a folder). */
export function safeReaddirEntries(dir: string): Dirent[] {
  return listed(dir, () => readdirSync(dir, { withFileTypes: true }));
}

function listed<T>(dir: string, read: () => T[]): T[] {
  assertNoLinks(dir, { includeLast: true });
  try {
    return read();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw err;
  }
}

/**
 * fsync of folder `dir` (so a rename or a new file in it survives power loss), opened with no
 * link on the way and O_NOFOLLOW.
 */
export function safeFsyncDir(dir: string): void {
  const abs = resolve(dir);
  const root = rootOf(abs);
  // The root itself may be a link: opened as it is (O_NOFOLLOW would refuse it).
  const fd = root === null || abs === root ? openSync(dir, 'r') : safeOpen(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
