/**
 * The run lock that guards one pipeline run (`metaspn s1 run-local`, backfill, rollback) on kernel
 * locks: `locks/<name>.lock` says who runs; each acquisition holds a kernel lock on its own liveness
 * file `locks/<name>.held.<lock_id>` for the whole run (alive = locked, so a SIGKILLed holder is
 * taken over at once and a stopped one never); `locks/<name>.gate`, held for milliseconds,
 * serialises every change of hands and every fenced publish (`RunLock.whileHeld`).
 */
export { acquireRunLock, removeLivenessIfDead } from './run-lock/acquire.js';
export { RunLockLostError } from './run-lock/held.js';
export { probeLiveness, readLockStatus, type Liveness, type LockStatus, type StaleReason } from './run-lock/inspect.js';
export { livenessFiles, livenessPath, lockPaths, type LockPaths, type LockPayload } from './run-lock/payload.js';
export { FileRunLocks } from './run-lock/file-locks.js';
export type { AcquireRunLockOptions, BrokenLock, OnLockHeld, RunLock, RunLockFence, RunLockLog, RunLockRequest, RunLocks } from './run-lock/types.js';
