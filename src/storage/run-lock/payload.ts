import { join } from 'node:path';
import * as z from '../../zod.js';
import { writeAtomicSync } from '../atomic.js';
import { safeReadFile, safeReaddir } from '../safe-path.js';
import { StateCorruptError } from '../../guard/errors.js';
import { assertLockName } from '../../guard/run-lock/request.js';
import type { LockPayload } from '../../guard/run-lock/types.js';

export type { LockPayload };

const payloadSchema = z.object({
  active: z.union([z.literal(0), z.literal(1)]),
  pid: z.number().int(),
  host: z.string(),
  start_ts_utc: z.string(),
  ttl_sec: z.number().positive(),
  reason: z.string(),
  cmd: z.string(),
  lock_id: z.string().optional(),
  generation: z.number().int().nonnegative().optional(),
});

/** The files of one run lock, all in the workspace's `locks/` folder. */
export interface LockPaths {
  name: string;
  /** The `locks/` folder. */
  locksDir: string;
  /** `locks/<name>.lock`: the JSON payload (the contract operators see). */
  payload: string;
  /** `locks/<name>.gate`: a kernel lock held for milliseconds by every change of hands (see gate.ts). */
  gate: string;
  /** File names (not paths) of liveness files start with this: `<name>.held.`. */
  livenessPrefix: string;
  /**
   * Left by versions before the kernel locks: proper-lockfile's directories `locks/<name>.lock.d`
   * and `locks/<name>.lock.gate`. Nothing uses them now; `metaspn doctor` reports them.
   */
  legacy: readonly string[];
}

/** A lock id that can name a file: what randomUUID() makes, and nothing that could leave the folder. */
const LOCK_ID = /^[A-Za-z0-9-]{1,64}$/;

/** Throws UsageError (64) for a name that is not letters, digits, `.`, `_` and `-` (LOCK_NAME: at most 128 characters). */
export function lockPaths(locksDir: string, name: string): LockPaths {
  assertLockName(name);
  const payload = join(locksDir, `${name}.lock`);
  return { name, locksDir, payload, gate: join(locksDir, `${name}.gate`), livenessPrefix: `${name}.held.`, legacy: [`${payload}.d`, `${payload}.gate`] };
}

/**
 * `locks/<name>.held.<lock_id>`: the liveness file of one acquisition. Its holder keeps a kernel
 * lock on it for the whole run, so "the holder is alive" is "this file is locked", whatever its pid
 * became. Null for a lock id that cannot name a file (a payload from elsewhere).
 */
export function livenessPath(paths: LockPaths, lockId: string | undefined): string | null {
  return lockId !== undefined && LOCK_ID.test(lockId) ? join(paths.locksDir, `${paths.livenessPrefix}${lockId}`) : null;
}

/** The liveness files present now (full paths), whoever left them. */
export function livenessFiles(paths: LockPaths): string[] {
  return safeReaddir(paths.locksDir)
    .filter((n) => n.startsWith(paths.livenessPrefix) && LOCK_ID.test(n.slice(paths.livenessPrefix.length)))
    .map((n) => join(paths.locksDir, n));
}

/** The payload file as found: `raw` null when missing; `payload` null when missing, empty or unparsable. */
export interface PayloadRead {
  raw: string | null;
  payload: LockPayload | null;
}

/** Null when `raw` is not JSON or not the payload's shape. */
export function parsePayload(raw: string): LockPayload | null {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return null;
  }
  const r = payloadSchema.safeParse(json);
  if (!r.success) return null;
  const { lock_id, generation, ...rest } = r.data;
  return { ...rest, ...(lock_id === undefined ? {} : { lock_id }), ...(generation === undefined ? {} : { generation }) };
}

/**
 * An unreadable payload reads as `{ raw: '', payload: null }`. Throws only for a symbolic link at
 * the payload or on the way to it (StateCorruptError, 30): it is never read through, nor replaced.
 */
export function readPayload(path: string): PayloadRead {
  let raw: string;
  try {
    raw = safeReadFile(path);
  } catch (err) {
    if (err instanceof StateCorruptError) throw err;
    // A payload we cannot read is an unknown holder, never a crash.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { raw: null, payload: null };
    return { raw: '', payload: null };
  }
  return { raw, payload: parsePayload(raw) };
}

/** Replaces the payload atomically (temp file, fsync, rename): a reader sees the old one or the new. */
export function writePayload(path: string, payload: LockPayload): void {
  writeAtomicSync(path, `${JSON.stringify(payload, null, 2)}\n`);
}
