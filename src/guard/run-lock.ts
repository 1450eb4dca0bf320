/**
 * The run lock that guards one pipeline run (`metaspn s1 run-local`, `pipeline run`, backfill,
 * rollback), as the runner sees it: what a backend's run locks promise (`RunLocks`, `RunLock`,
 * the fence around a publish) and the error of a lock lost mid-run. The file backend's are in
 * src/storage/run-lock.ts; a database backend brings its own.
 */
export { describeHolder, RunLockLostError } from './run-lock/types.js';
export type { BrokenLock, LockPayload, LockStatus, OnLockHeld, RunLock, RunLockFence, RunLockLog, RunLockRequest, RunLocks, StaleReason } from './run-lock/types.js';
