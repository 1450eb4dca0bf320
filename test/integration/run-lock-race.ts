/**
 * The run lock on PostgreSQL held to account through the real CLI: two `pipeline run`s of one
 * pipeline started together against one database, round after round (exactly one runs to exit 0,
 * the other exits 11 naming it), and a SIGKILLed holder taken over by a waiting run. The pipeline
 * is test/fixtures/race-pipeline.mjs: its one task holds the run until the test releases it, so
 * the winner is still running when the loser asks, whatever the two processes' start-up times.
 * Used by test/integration/run-lock-race-pg.test.ts (a few rounds) and the chaos suite (200).
 */
import { cpSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { PgRunLocks } from '../../src/backend/pg/run-locks.js';
import { exit, ROOT, start, tempWorkspace, until, waitFor, type Run } from './cli.js';

/** A workspace whose config names the race pipeline (test/fixtures/race-pipeline.mjs), with `metaspn` linked beside it. */
export function raceWorkspace(): string {
  const dir = tempWorkspace({ demo: false, config: { pipelines: { race: './race.mjs' } } });
  cpSync(join(ROOT, 'test', 'fixtures', 'race-pipeline.mjs'), join(dir, 'race.mjs'));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(ROOT, join(dir, 'node_modules', 'metaspn'), 'dir');
  return dir;
}

/** The i-th partition of a race (a past date: every round runs a fresh one, so its task runs). */
export function raceDate(i: number): string {
  return new Date(Date.UTC(2024, 0, 1) + i * 86_400_000).toISOString().slice(0, 10);
}

function runArgs(ws: string, url: string, date: string, extra: string[] = []): string[] {
  return ['pipeline', 'run', 'race', '--workspace', ws, '--date', date, '--database-url', url, ...extra];
}

/** What one round of a race ended with. */
export interface RaceRound {
  date: string;
  winner: Run;
  loser: Run;
}

/**
 * One round: two `pipeline run race` started together; once one has exited, the other's task is
 * released. Asserts exactly one exit 0 (published) and one exit 11 whose message names the
 * winner's pid.
 */
export async function raceRound(ws: string, url: string, i: number): Promise<RaceRound> {
  const date = raceDate(i);
  const env = { RACE_DIR: ws };
  const pair = [start(runArgs(ws, url, date), { env }), start(runArgs(ws, url, date), { env })];
  // The first to end must be the one refused: the winner waits for the release.
  const first = await Promise.race(pair.map((p, k) => p.exited.then((r) => ({ r, k }))));
  writeFileSync(join(ws, `release-${date}`), '');
  const second = await exit(pair[1 - first.k]!, 60_000);
  const loser = first.r;
  const winner = second;
  expect([loser.code, winner.code], `round ${i} (${date}): loser ${loser.stderr} / winner ${winner.stderr}`).toEqual([11, 0]);
  const winnerPid = pair[1 - first.k]!.child.pid;
  expect(loser.stderr.split('\n')[0], `round ${i}`).toMatch(new RegExp(`^error: run lock race is held by pid ${String(winnerPid)} on \\S+`));
  expect(winner.stdout, `round ${i}`).toContain(`race run ${date}`);
  expect(winner.stdout, `round ${i}`).toMatch(/^published: /m);
  expect(readFileSync(join(ws, `started-${date}`), 'utf8'), `round ${i}: only the winner ran the task`).toBe(String(winnerPid));
  return { date, winner, loser };
}

/**
 * One takeover: a holder runs (its task started), a second run waits for the lock (`--on-lock-held
 * wait`), the holder is SIGKILLed; returns the ms from the kill until the lock's row names the
 * waiter (read every 5 ms), and checks the waiter then runs to exit 0.
 */
export async function takeoverRound(ws: string, url: string, i: number): Promise<number> {
  const date = raceDate(900 + i);
  const env = { RACE_DIR: ws };
  const locks = new PgRunLocks({ setting: { url, source: 'test' } });
  const holder = start(runArgs(ws, url, date), { env });
  await waitFor(() => existsSync(join(ws, `started-${date}`)), 30_000, `round ${i}: the holder's task to start`);
  const generation = (await locks.status('race')).payload!.generation!;
  const log = join(ws, 'logs', 'metaspn.jsonl');
  const logged = (): number =>
    existsSync(log)
      ? readFileSync(log, 'utf8')
          .split('\n')
          .filter((l) => l.includes('"wait_sec"')).length
      : 0;
  const before = logged();
  const waiter = start(runArgs(ws, url, date, ['--on-lock-held', 'wait', '--lock-wait-sec', '60']), { env });
  // The waiter has found the lock held and waits (it logs that once).
  await waitFor(() => logged() > before, 30_000, `round ${i}: the second run to wait for the lock`);
  holder.child.kill('SIGKILL');
  const killedAt = performance.now();
  const took = await until(
    async () => {
      const s = await locks.status('race');
      return s.payload?.pid === waiter.child.pid && s.payload?.generation === generation + 1 ? performance.now() - killedAt : null;
    },
    30_000,
    `round ${i}: the waiting run to take the lock over`,
    5,
  );
  expect((await exit(holder)).signal).toBe('SIGKILL');
  writeFileSync(join(ws, `release-${date}`), '');
  const w = await exit(waiter, 60_000);
  expect(w.code, w.stderr).toBe(0);
  expect(w.stdout).toMatch(/^published: /m);
  return took;
}
