import { acquireRunLock } from './acquire.js';
import { readLockStatus, type LockStatus } from './inspect.js';
import type { RunLock, RunLockRequest, RunLocks } from '../../guard/run-lock/types.js';

/** The file backend's run locks: `locks/<name>.lock` and its liveness files, on kernel locks. */
export class FileRunLocks implements RunLocks {
  /** @param locksDir the workspace's `locks/` folder (created on the first acquire). */
  constructor(readonly locksDir: string) {}

  acquire(opts: RunLockRequest): Promise<RunLock> {
    return acquireRunLock({ ...opts, locksDir: this.locksDir });
  }

  status(name: string, opts: { now?: () => number } = {}): Promise<LockStatus> {
    return Promise.resolve(readLockStatus(this.locksDir, name, opts));
  }
}
