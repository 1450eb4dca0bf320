import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { writeAtomicSync } from '../../storage/atomic.js';
import { UsageError } from '../errors.js';

/**
 * What `locks/<name>.lock` holds: who runs (or ran last) and why. Operators read it with `cat`;
 * it stays after release with `active: 0` so they can see who ran last.
 */
export interface LockPayload {
  /** 1 while the lock is held, 0 after a clean release. */
  active: 0 | 1;
  pid: number;
  host: string;
  /** ISO-8601 UTC, from the acquirer's clock (`now`). */
  start_ts_utc: string;
  /** The holder may be broken once `start_ts_utc + ttl_sec` has passed. */
  ttl_sec: number;
  reason: string;
  cmd: string;
  /**
   * Not one of the seed's fields: identifies this acquisition, so a holder whose lock was broken
   * never releases or overwrites its successor's lock (pid, host and start can repeat in one process).
   */
  lock_id?: string;
}

const payloadSchema = z.object({
  active: z.union([z.literal(0), z.literal(1)]),
  pid: z.number().int(),
  host: z.string(),
  start_ts_utc: z.string(),
  ttl_sec: z.number().positive(),
  reason: z.string(),
  cmd: z.string(),
  lock_id: z.string().optional(),
});

/** The three paths of one run lock. */
export interface LockPaths {
  name: string;
  /** `locks/<name>.lock`: the JSON payload (the contract operators see). */
  payload: string;
  /** `locks/<name>.lock.d`: proper-lockfile's directory, the mutual exclusion itself. */
  dir: string;
  /** `locks/<name>.lock.gate`: a short-held lock that serialises take-over decisions (see gate.ts). */
  gate: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function lockPaths(locksDir: string, name: string): LockPaths {
  if (!NAME.test(name)) throw new UsageError(`lock name must match ${NAME.source}, got ${JSON.stringify(name)}`);
  const payload = join(locksDir, `${name}.lock`);
  return { name, payload, dir: `${payload}.d`, gate: `${payload}.gate` };
}

/** The payload file as found: `raw` null when missing; `payload` null when missing, empty or unparsable. */
export interface PayloadRead {
  raw: string | null;
  payload: LockPayload | null;
}

export function parsePayload(raw: string): LockPayload | null {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return null;
  }
  const r = payloadSchema.safeParse(json);
  if (!r.success) return null;
  const { lock_id, ...rest } = r.data;
  return lock_id === undefined ? rest : { ...rest, lock_id };
}

export function readPayload(path: string): PayloadRead {
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch (err) {
    // A payload we cannot read is an unknown holder, never a crash.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { raw: null, payload: null };
    return { raw: '', payload: null };
  }
  return { raw, payload: parsePayload(raw) };
}

export function writePayload(path: string, payload: LockPayload): void {
  writeAtomicSync(path, `${JSON.stringify(payload, null, 2)}\n`);
}
