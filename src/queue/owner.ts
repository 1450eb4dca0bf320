import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Owner } from './types.js';

export const HOST = hostname();

/** A fresh owner identity for this process: unique even when a pid is reused. */
export function makeOwner(pid = process.pid): Owner {
  return { id: `${pid}-${randomBytes(4).toString('hex')}`, pid, host: HOST };
}

/** Is the process with this pid alive on this machine? EPERM means it exists but is not ours. */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** An owner on another host cannot be checked from here: only its lease expiry tells. */
export function ownerAlive(o: Owner): boolean {
  return o.host !== HOST || pidAlive(o.pid);
}
