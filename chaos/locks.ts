// Lock suite (promises 3, 6): two run-locals started together, exactly one runs and the other exits
// 11 naming the holder; a holder SIGKILLed mid-run has its lock broken by the next run, which logs it;
// a holder SIGSTOPped mid-run, for longer than any stale time the lock ever had, keeps it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../test/wait.js';
import { alive, doctor, finish, kill, logEvents, problems, type Rng, run, sleep, STACK, start, type DoctorFinding } from './lib.js';

/** How often a run looks at a stopped holder's lock during its stop. */
const LOOK_MS = 2_000;

export interface RaceRound {
  codes: (number | null)[];
  /** Both exited 0: the first finished before the second looked (no overlap; not a failure). */
  overlapped: boolean;
  failures: string[];
}

/** Two run-locals of one date started in the same tick. */
export async function raceRound(ws: string, date: string): Promise<RaceRound> {
  const args = ['s1', 'run-local', '--workspace', ws, '--date', date];
  const [a, b] = await Promise.all([run(args), run(args)]);
  const codes = [a.code, b.code].sort((x, y) => (x ?? -1) - (y ?? -1));
  const failures: string[] = [];
  for (const r of [a, b]) if (STACK.test(r.stderr)) failures.push(`a stack trace: ${r.stderr.slice(0, 300)}`);
  const overlapped = !(codes[0] === 0 && codes[1] === 0);
  if (overlapped) {
    if (codes[0] !== 0 || codes[1] !== 11) failures.push(`exit codes ${codes.join(', ')}, want 0 and 11`);
    const loser = a.code === 11 ? a : b;
    const first = loser.stderr.split('\n')[0] ?? '';
    if (!/^error: run lock s1 is held by .*pid \d+/.test(first)) failures.push(`the 11 does not name the holder: ${first}`);
  }
  return { codes, overlapped, failures };
}

export interface KillRound {
  /** ms after the lock was taken that the holder was killed; null when it finished first. */
  killed_after_ms: number | null;
  next_code: number | null;
  /** Its payload still named it (active) when it died: the next run must take the lock over. */
  held_at_death: boolean;
  /** The next run logged that it broke the dead holder's lock (a warning naming its pid). */
  logged_break: boolean;
  /**
   * From the SIGKILL to the next run's `run lock s1 acquired` log line, in ms (its Node start-up
   * included); null when there was no kill or no such line.
   */
  takeover_ms: number | null;
  failures: string[];
}

/** The payload's holder is this process and says active. */
function holdingLock(ws: string, pid: number | undefined): boolean {
  try {
    const l = JSON.parse(readFileSync(join(ws, 'locks', 's1.lock'), 'utf8')) as { active?: number; pid?: number };
    return l.active === 1 && l.pid === pid;
  } catch {
    return false;
  }
}

/** A run-local SIGKILLed at a random moment while it holds the lock; the next one must take it over and say so. */
export async function killRound(ws: string, date: string, rng: Rng): Promise<KillRound> {
  const args = ['s1', 'run-local', '--workspace', ws, '--date', date];
  const failures: string[] = [];
  const p = start(args);
  while (alive(p) && !holdingLock(ws, p.child.pid)) await sleep(2);
  let killedAfter: number | null = null;
  let killedAt = 0;
  if (alive(p)) {
    // A demo run holds the lock for a few hundred ms on a fast machine: kill inside that window.
    const delay = rng.int(0, 150);
    await sleep(delay);
    killedAt = Date.now();
    const k = await kill(p);
    if (k.signal === 'SIGKILL') killedAfter = delay;
  } else await finish(p);
  const pid = p.child.pid!;
  // Killed after it had released the lock (between its release and its exit) leaves nothing to break.
  const heldAtDeath = killedAfter !== null && holdingLock(ws, pid);
  const before = logEvents(ws).length;
  const r = await run(args);
  if (r.code !== 0) failures.push(`the run after the kill exited ${r.code}: ${r.stderr.trim().slice(0, 300)}`);
  if (STACK.test(r.stderr)) failures.push(`a stack trace: ${r.stderr.slice(0, 300)}`);
  const events = logEvents(ws).slice(before);
  const broke = events.some((e) => e.level === 40 && typeof e.msg === 'string' && e.msg.includes('run lock s1') && (e.pid === pid || e.msg.includes(`pid ${pid}`)));
  const acquired = events.find((e) => e.msg === 'run lock s1 acquired');
  const acquiredAt = typeof acquired?.time === 'string' ? Date.parse(acquired.time) : NaN;
  const takeoverMs = heldAtDeath && Number.isFinite(acquiredAt) ? acquiredAt - killedAt : null;
  // Killed before its payload was written, or after it was marked released, leaves nothing to break;
  // killed while the payload named it, the break is logged.
  if (heldAtDeath && !broke) failures.push(`the next run did not log breaking the lock of pid ${pid}`);
  if (!heldAtDeath && broke) failures.push(`the next run broke a lock pid ${pid} no longer held`);
  return { killed_after_ms: killedAfter, next_code: r.code, held_at_death: heldAtDeath, logged_break: broke, takeover_ms: takeoverMs, failures };
}

export interface StopRound {
  /** How long the holder was stopped, in ms; null when it finished before it could be stopped. */
  stopped_ms: number | null;
  /** Runs started while it was stopped (each must exit 11 naming it). */
  tries: number;
  /** The stopped holder's exit code after SIGCONT (0: it kept the lock and published). */
  holder_code: number | null;
  failures: string[];
}

/**
 * A run-local SIGSTOPped at a random moment while it holds the lock, for `stopMs` (longer than any
 * stale time the lock ever had): every run started meanwhile must exit 11 naming it, and after
 * SIGCONT it must finish, publish and release. The process is always continued before returning.
 */
export async function stopRound(ws: string, date: string, rng: Rng, stopMs: number): Promise<StopRound> {
  const args = ['s1', 'run-local', '--workspace', ws, '--date', date];
  const failures: string[] = [];
  const p = start(args);
  const pid = p.child.pid!;
  while (alive(p) && !holdingLock(ws, pid)) await sleep(2);
  await sleep(rng.int(0, 300));
  let stoppedMs: number | null = null;
  let tries = 0;
  if (alive(p)) {
    p.child.kill('SIGSTOP');
    try {
      // A stopped process cannot release: if the payload still names it now, it holds the lock.
      if (holdingLock(ws, pid)) {
        const t0 = Date.now();
        for (;;) {
          const r = await run(args);
          tries++;
          if (r.code !== 11) failures.push(`a run while the holder was stopped exited ${r.code}, want 11: ${r.stderr.trim().slice(0, 300)}`);
          else if (!r.stderr.includes(`pid ${pid}`)) failures.push(`the 11 does not name the stopped holder ${pid}: ${r.stderr.split('\n')[0]}`);
          if (Date.now() - t0 >= stopMs && tries >= 2) break;
          // One run every LOOK_MS of the stop, the last past `stopMs`: back to back they were 20-30
          // runs of the same look on a quiet machine (0.5 s of CPU each). A run that took longer is
          // followed at once.
          await waitFor(() => Date.now() - t0 >= Math.min(tries * LOOK_MS, stopMs), stopMs + 10_000, 'the next look at the stopped holder', 50);
        }
        stoppedMs = Date.now() - t0;
      }
    } finally {
      p.child.kill('SIGCONT');
    }
  }
  const r = await finish(p);
  if (STACK.test(r.stderr)) failures.push(`a stack trace: ${r.stderr.slice(0, 300)}`);
  if (stoppedMs !== null) {
    if (r.code !== 0) failures.push(`the stopped holder exited ${r.code} after SIGCONT, want 0: ${r.stderr.trim().slice(0, 300)}`);
    if (!/published: /.test(r.stdout)) failures.push('the stopped holder did not publish after SIGCONT');
  }
  return { stopped_ms: stoppedMs, tries, holder_code: r.code, failures };
}

export async function finalDoctor(ws: string): Promise<{ code: number | null; problems: DoctorFinding[] }> {
  const d = await doctor(ws);
  return { code: d.code, problems: problems(d) };
}
