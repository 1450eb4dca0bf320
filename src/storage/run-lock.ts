/**
 * The file backend's run locks, on kernel locks: `locks/<name>.lock` says who runs; each
 * acquisition holds a kernel lock on its own liveness file `locks/<name>.held.<lock_id>` for the
 * whole run (alive = locked, so a SIGKILLed holder is taken over at once and a stopped one never);
 * `locks/<name>.gate`, held for milliseconds, serialises every change of hands and every fenced
 * publish (`RunLock.whileHeld`). What they promise is in src/guard/run-lock.ts.
 */
export { acquireRunLock, removeLivenessIfDead, type AcquireRunLockOptions } from './run-lock/acquire.js';
export { FileRunLocks } from './run-lock/file-locks.js';
export { probeLiveness, readLockStatus, type Liveness } from './run-lock/inspect.js';
export { livenessFiles, livenessPath, lockPaths, type LockPaths } from './run-lock/payload.js';
export { LOCK_TIMING } from './run-lock/timing.js';
export { RunLockLostError, type LockPayload, type LockStatus, type RunLock, type RunLockFence, type RunLockLog, type RunLocks, type StaleReason } from '../guard/run-lock.js';
