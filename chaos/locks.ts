// Lock suite (promises 3, 6): two run-locals started together, exactly one runs and the other exits
// 11 naming the holder; a holder SIGKILLed mid-run has its lock broken by the next run, which logs it.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { alive, doctor, finish, kill, logEvents, problems, type Rng, run, sleep, STACK, start, type DoctorFinding } from './lib.js';

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
  /** The next run logged that it broke the dead holder's lock (a warning naming its pid). */
  logged_break: boolean;
  failures: string[];
}

/** A run-local SIGKILLed at a random moment while it holds the lock; the next one must take it over and say so. */
export async function killRound(ws: string, date: string, rng: Rng): Promise<KillRound> {
  const args = ['s1', 'run-local', '--workspace', ws, '--date', date];
  const failures: string[] = [];
  const p = start(args);
  const lock = join(ws, 'locks', 's1.lock');
  const holding = (): boolean => {
    try {
      const l = JSON.parse(readFileSync(lock, 'utf8')) as { active?: number; pid?: number };
      return l.active === 1 && l.pid === p.child.pid;
    } catch {
      return false;
    }
  };
  while (alive(p) && !holding()) await sleep(2);
  let killedAfter: number | null = null;
  if (alive(p)) {
    const delay = rng.int(0, 300);
    await sleep(delay);
    const k = await kill(p);
    if (k.signal === 'SIGKILL') killedAfter = delay;
  } else await finish(p);
  const pid = p.child.pid!;
  const before = logEvents(ws).length;
  const r = await run(args);
  if (r.code !== 0) failures.push(`the run after the kill exited ${r.code}: ${r.stderr.trim().slice(0, 300)}`);
  if (STACK.test(r.stderr)) failures.push(`a stack trace: ${r.stderr.slice(0, 300)}`);
  const broke = logEvents(ws)
    .slice(before)
    .some((e) => e.level === 40 && typeof e.msg === 'string' && e.msg.includes('run lock s1') && (e.pid === pid || e.msg.includes(`pid ${pid}`)));
  // Killed before the payload was marked active leaves nothing to break; killed after, the break is logged.
  if (killedAfter !== null && existsSync(lock) && !broke) failures.push(`the next run did not log breaking the lock of pid ${pid}`);
  return { killed_after_ms: killedAfter, next_code: r.code, logged_break: broke, failures };
}

export async function finalDoctor(ws: string): Promise<{ code: number | null; problems: DoctorFinding[] }> {
  const d = await doctor(ws);
  return { code: d.code, problems: problems(d) };
}
