import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { LOCK_TIMING } from '../guard/lock-timing.js';
import { readLockStatus } from '../guard/run-lock.js';
import type { WorkspacePaths } from '../storage/paths.js';
import type { Findings } from './finding.js';

/** Run locks whose holder is gone or past its TTL, and short mutexes nobody refreshed. */
export function checkLocks(ws: WorkspacePaths, f: Findings, now = Date.now()): { staleRunLocks: string[]; staleMutexes: string[] } {
  const staleRunLocks: string[] = [];
  if (existsSync(ws.locks)) {
    for (const file of readdirSync(ws.locks).filter((x) => x.endsWith('.lock') && !x.includes('ledger'))) {
      const name = file.slice(0, -'.lock'.length);
      const st = readLockStatus(ws.locks, name);
      if (st.payload?.active === 1 && (st.stale_reason || !st.held)) {
        staleRunLocks.push(name);
        f.warn('lock', relative(ws.root, st.path), `run lock ${name} is stale (${st.stale_reason ?? 'not refreshed'}): pid ${st.payload.pid} on ${st.payload.host} since ${st.payload.start_ts_utc}`, 'the next run takes it over by itself; --repair releases it now');
      }
    }
  }
  const staleMutexes = mutexDirs(ws).filter((d) => now - statSync(d).mtimeMs > LOCK_TIMING.mutex.stale);
  for (const d of staleMutexes) f.warn('lock', relative(ws.root, d), 'a mutex not refreshed for longer than its stale time (its holder died while holding it)', 'the next writer takes it over; --repair removes it now');
  return { staleRunLocks, staleMutexes };
}

function mutexDirs(ws: WorkspacePaths): string[] {
  const out: string[] = [];
  const add = (p: string): void => {
    if (existsSync(p)) out.push(p);
  };
  if (existsSync(ws.queues)) for (const q of readdirSync(ws.queues)) add(join(ws.queues, q, '.lock'));
  const idx = join(ws.store, '.index');
  if (existsSync(idx)) for (const s of readdirSync(idx)) add(join(idx, s, '.lock'));
  add(join(ws.locks, 'ledger.lock'));
  return out;
}

export function removeMutex(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
