/**
 * The run lock that guards one pipeline run (`metaspn s1 run-local`): `locks/<name>.lock` holds
 * who runs; proper-lockfile's directory `locks/<name>.lock.d` is the mutual exclusion.
 */
export { acquireRunLock } from './run-lock/acquire.js';
export { readLockStatus, type LockStatus, type StaleReason } from './run-lock/inspect.js';
export { lockPaths, type LockPaths, type LockPayload } from './run-lock/payload.js';
export type { AcquireRunLockOptions, OnLockHeld, RunLock, RunLockLog } from './run-lock/types.js';
