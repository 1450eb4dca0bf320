import { closeSync, fstatSync, lstatSync, statfsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MetaspnError } from '../guard/errors.js';
import { FILE_MODE, safeMkdir, safeOpen } from './safe-path.js';

/**
 * Kernel file locks: open file description (OFD) locks through fs-native-extensions
 * (`fcntl(F_OFD_SETLK)` on Linux, `flock` on macOS). What the kernel guarantees, and why we use
 * it (docs/DECISIONS.md):
 * - a lock is held until its holder unlocks it or its last descriptor is closed, which the kernel
 *   does when the process dies, SIGKILL included: a dead holder is overtaken at once;
 * - nothing else can take it: a holder that is slow, stopped (SIGSTOP), swapping or in a long GC
 *   keeps it, however long;
 * - two descriptors opened separately conflict even inside one process, so two handles on one
 *   queue in one process exclude each other exactly as two processes do.
 * The lock file itself is never removed; `assertHeld` notices if someone replaced it anyway.
 */
interface NativeLocks {
  tryLock(fd: number, offset?: number, length?: number, opts?: { shared?: boolean }): boolean;
  unlock(fd: number, offset?: number, length?: number): void;
}

let nativeLocks: NativeLocks | undefined;
/** The native addon, loaded at the first lock taken or tested (a command that takes none does not load it). */
function native(): NativeLocks {
  return (nativeLocks ??= createRequire(import.meta.url)('fs-native-extensions') as NativeLocks);
}

/** statfs(2) magic numbers of file systems whose locks do not bind every host (linux/magic.h). */
const NETWORK_FS: ReadonlyMap<number, string> = new Map([
  [0x6969, 'nfs'],
  [0x517b, 'smb'],
  [0xff534d42, 'cifs'],
  [0xfe534d42, 'smb2'],
  [0x00c36400, 'ceph'],
  [0x5346414f, 'afs'],
  [0x73757245, 'coda'],
  [0x564c, 'ncp'],
  [0x01021997, '9p'],
  [0x47504653, 'gpfs'],
  [0x0bd00bd0, 'lustre'],
]);

/** The network file system a statfs(2) `f_type` names, or null for a local (or unknown) one. */
export function networkFsName(type: number): string | null {
  return NETWORK_FS.get(type >>> 0) ?? null;
}

/** Set to `1` to run on a network file system anyway (every metaspn process on one host). */
export const ALLOW_NETWORK_FS_ENV = 'METASPN_ALLOW_NETWORK_FS';

const checkedDirs = new Set<string>();

/**
 * Refuses a folder on a network file system (NFS, SMB/CIFS, Ceph, AFS, 9p, Lustre, GPFS, …):
 * there a lock taken on one host may not exclude another, and a client that loses its server
 * loses its locks silently. Throws MetaspnError DATA_INVALID (20) naming the folder, the file
 * system and the override (`METASPN_ALLOW_NETWORK_FS=1`, for when every process runs on one host).
 * Checked once per folder per process. `statfs` is injectable for tests.
 */
export function assertLocalFilesystem(dir: string, statfs: (dir: string) => { type: number | bigint } = statfsSync): void {
  if (checkedDirs.has(dir)) return;
  let type: number;
  try {
    type = Number(statfs(dir).type);
  } catch {
    return; // statfs unsupported here: nothing to tell
  }
  const kind = networkFsName(type);
  if (kind && process.env[ALLOW_NETWORK_FS_ENV] !== '1') {
    throw new MetaspnError('DATA_INVALID', `${dir}: the workspace is on a network file system (${kind}); metaspn's locks need a local one`, {
      hint: `move the workspace to a local disk, or use the PostgreSQL backend for several hosts; ${ALLOW_NETWORK_FS_ENV}=1 overrides when every metaspn process runs on one host`,
    });
  }
  checkedDirs.add(dir);
}

/** Poll delays while waiting: short at first (a mutex or the run lock's gate is held for microseconds to milliseconds), capped at 25 ms, jittered. */
function backoff(attempt: number): number {
  return Math.min(25, 0.5 * 1.5 ** Math.min(attempt, 12)) * (0.5 + Math.random());
}

/**
 * One exclusive kernel lock on the file at `path` (created when missing, never removed).
 * Not re-entrant: a second `FileLock` on the same path, in this process or another, waits.
 */
export class FileLock {
  #fd: number | null = null;
  #ino = -1;
  #locked = false;

  constructor(readonly path: string) {}

  /** True while this object holds the lock (as far as it knows; `assertHeld` checks the file). */
  get locked(): boolean {
    return this.#locked;
  }

  /**
   * Takes the lock if no other descriptor holds it; never blocks. Returns false when held
   * elsewhere. Throws the file system's error (EACCES, ENOSPC, …) when the lock file cannot be
   * opened, and DATA_INVALID (20) on a network file system.
   */
  tryAcquire(): boolean {
    if (this.#locked) throw new MetaspnError('INTERNAL_ERROR', `${this.path}: lock taken twice by one holder`);
    for (;;) {
      const fd = this.open();
      if (!native().tryLock(fd)) return false;
      // Locked what we opened; still the file at `path`? (Someone may have replaced it.)
      let pathIno = -1;
      try {
        pathIno = lstatSync(this.path).ino; // lstat: a link swapped in is another file, never followed
      } catch {
        // removed: reopen below
      }
      if (pathIno === this.#ino) {
        this.#locked = true;
        return true;
      }
      native().unlock(fd);
      this.closeFd();
    }
  }

  /**
   * Waits up to `timeoutMs` for the lock, polling with a short capped backoff. Throws
   * MetaspnError LOCK_TIMEOUT (40) when it stays held that long; the message names the file and
   * `what` (e.g. "queue project_rewards").
   */
  async acquire(timeoutMs: number, what: string): Promise<void> {
    if (!(await this.tryFor(timeoutMs))) {
      throw new MetaspnError('LOCK_TIMEOUT', `waited ${Math.round(timeoutMs / 1000)}s for the lock of ${what} (${this.path})`, {
        hint: 'a live process holds it (a stopped or hung one keeps it until it exits); find it with `fuser -v` on that file',
      });
    }
  }

  /**
   * The one lock-wait loop: tries the lock until it is taken (true) or `waitMs` passed (false),
   * polling with a short capped jittered backoff. Throws what {@link tryAcquire} throws.
   */
  async tryFor(waitMs: number): Promise<boolean> {
    const deadline = performance.now() + waitMs;
    for (let attempt = 0; ; attempt++) {
      if (this.tryAcquire()) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await sleep(Math.min(left, backoff(attempt)));
    }
  }

  /**
   * The fence: throws STATE_CORRUPT (30) unless this object holds the lock and the file at `path`
   * is still the one it locked. Called before every write made under the lock.
   */
  assertHeld(): void {
    let ino = -2;
    try {
      ino = lstatSync(this.path).ino;
    } catch {
      // removed
    }
    if (!this.#locked || ino !== this.#ino) {
      throw new MetaspnError('STATE_CORRUPT', `${this.path}: write refused, this process does not hold the lock`, {
        hint: 'something removed or replaced the lock file; nothing was written. Re-run; `metaspn doctor` checks the rest',
      });
    }
  }

  /** Frees the lock; the descriptor stays open for the next acquisition. Idempotent. */
  release(): void {
    if (!this.#locked) return;
    this.#locked = false;
    try {
      native().unlock(this.#fd!);
    } catch {
      // The descriptor is gone; closing frees anything left.
      this.closeFd();
    }
  }

  /** Frees the lock and closes the descriptor. */
  close(): void {
    this.release();
    this.closeFd();
  }

  private open(): number {
    if (this.#fd !== null) return this.#fd;
    const dir = dirname(this.path);
    safeMkdir(dir);
    assertLocalFilesystem(dir);
    const fd = safeOpen(this.path, 'a+', FILE_MODE);
    this.#fd = fd;
    this.#ino = fstatSync(fd).ino;
    return fd;
  }

  private closeFd(): void {
    const fd = this.#fd;
    this.#fd = null;
    this.#ino = -1;
    if (fd !== null) {
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
    }
  }
}

/**
 * Is the lock at `path` held by anyone (this process included)? Tries it on a descriptor of its
 * own and frees it at once. `'missing'` when the file does not exist. Never creates the file.
 */
export function probeLock(path: string): 'held' | 'free' | 'missing' {
  let fd: number;
  try {
    fd = safeOpen(path, 'r+');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw err;
  }
  try {
    if (!native().tryLock(fd)) return 'held';
    native().unlock(fd);
    return 'free';
  } finally {
    closeSync(fd);
  }
}
