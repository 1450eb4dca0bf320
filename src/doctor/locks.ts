import { basename, join, relative } from 'node:path';
import { LOCK_TIMING } from '../storage/run-lock.js';
import { livenessFiles, lockPaths, probeLiveness, readLockStatus, removeLivenessIfDead } from '../storage/run-lock.js';
import type { WorkspacePaths } from '../storage/paths.js';
import { safeExists, safeLstat, safeReaddir, safeReaddirEntries, safeRm } from '../storage/safe-path.js';
import type { Findings } from './finding.js';

/**
 * Run locks and lock files. Never counts a lock as removable while a live process holds it:
 * - `staleRunLocks`: run locks whose payload says `active: 1` but whose holder is gone (its
 *   liveness file is no longer locked), or whose payload is unreadable with no live holder; the
 *   repair takes each one and releases it. A live holder past its TTL is only reported: the next
 *   run takes it over, and stopping it is the operator's call.
 * - `staleMutexes`: files and folders to remove: liveness files (`locks/<name>.held.<lock_id>`)
 *   nobody holds (removed by `removeMutex`, which checks again inside the run lock's gate), and
 *   proper-lockfile directories left by versions before the kernel locks (`*.lock.d`,
 *   `*.lock.gate`, the old mutexes' `.lock` folders) untouched for LOCK_TIMING.legacyStaleMs.
 * `now` (ms since the epoch) feeds the TTL check and the age of old directories.
 */
export function checkLocks(ws: WorkspacePaths, f: Findings, now = Date.now()): { staleRunLocks: string[]; staleMutexes: string[] } {
  const staleRunLocks: string[] = [];
  const staleMutexes: string[] = [];
  const rel = (p: string): string => relative(ws.root, p);
  for (const name of runLockNames(ws)) {
    const st = readLockStatus(ws.locks, name, { now: () => now });
    const p = st.payload;
    if (p?.active === 1 && (st.stale_reason === 'pid_dead' || st.stale_reason === 'holder_gone')) {
      staleRunLocks.push(name);
      f.warn(
        'lock',
        rel(st.path),
        `run lock ${name} is stale (${st.stale_reason}): pid ${p.pid} on ${p.host} since ${p.start_ts_utc} no longer holds it`,
        'the next run takes it over by itself; --repair releases it now',
      );
    } else if (p?.active === 1 && st.stale_reason === 'ttl_expired') {
      f.warn(
        'lock',
        rel(st.path),
        `run lock ${name} is held past its TTL (${p.ttl_sec}s): pid ${p.pid} on ${p.host} since ${p.start_ts_utc} is still alive`,
        'the next run takes it over (and this one then refuses to publish); if it is hung, stop it. --repair never takes a lock from a live process',
      );
    } else if (st.exists && !p && !st.held) {
      staleRunLocks.push(name);
      f.warn('lock', rel(st.path), `run lock ${name}: the payload is unreadable and no live process holds the lock`, 'the next run takes it over and rewrites it; --repair does it now');
    }
    const paths = lockPaths(ws.locks, name);
    for (const file of livenessFiles(paths)) {
      if (probeLiveness(file) !== 'free') continue;
      staleMutexes.push(file);
      f.warn('lock', rel(file), `liveness file of a run lock holder that is gone (run lock ${name})`, 'harmless; the next run removes it; --repair removes it now');
    }
    for (const dir of paths.legacy) legacyDir(dir);
  }
  for (const d of oldMutexDirs(ws)) legacyDir(d);
  return { staleRunLocks, staleMutexes };

  function legacyDir(dir: string): void {
    const st = safeLstat(dir);
    if (!st?.isDirectory()) return;
    const mtimeMs = st.mtimeMs;
    // Refreshed lately: an older metaspn may still be running on this workspace; leave it be.
    if (now - mtimeMs <= LOCK_TIMING.legacyStaleMs) return;
    staleMutexes.push(dir);
    f.warn('lock', rel(dir), 'a proper-lockfile directory left by an older metaspn (locks are kernel locks now; nothing reads it)', 'harmless; --repair removes it');
  }
}

/** Run locks named by a payload file `locks/<name>.lock` or by a liveness file `locks/<name>.held.<id>`. */
function runLockNames(ws: WorkspacePaths): string[] {
  const names = new Set<string>();
  for (const file of safeReaddirEntries(ws.locks)) {
    if (!file.isFile()) continue;
    if (file.name.endsWith('.lock')) names.add(file.name.slice(0, -'.lock'.length));
    const at = file.name.lastIndexOf('.held.');
    if (at > 0) names.add(file.name.slice(0, at));
  }
  return [...names].filter((n) => {
    try {
      lockPaths(ws.locks, n);
      return true;
    } catch {
      return false;
    }
  });
}

/** Where versions before the kernel locks kept proper-lockfile's mutex directories. */
function oldMutexDirs(ws: WorkspacePaths): string[] {
  const out: string[] = [];
  const add = (p: string): void => {
    if (safeExists(p)) out.push(p);
  };
  for (const q of safeReaddir(ws.queues)) add(join(ws.queues, q, '.lock'));
  const idx = join(ws.store, '.index');
  for (const s of safeReaddir(idx)) add(join(idx, s, '.lock'));
  add(join(ws.locks, 'ledger.lock'));
  return out;
}

/**
 * Removes one entry of `staleMutexes`: a liveness file only if still nobody holds it (checked
 * inside its lock's gate), an old proper-lockfile directory outright. Never throws for a path
 * that is already gone.
 */
export function removeMutex(path: string): void {
  if (basename(path).includes('.held.')) {
    removeLivenessIfDead(path);
    return;
  }
  safeRm(path, { recursive: true, force: true });
}
