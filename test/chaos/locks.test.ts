// Lock suite, short: 3 races, 3 killed holders and 1 holder stopped for 11 s (npm run chaos:
// iterations/10 of each).
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEMO_INPUTS } from '../integration/cli.js';
import { chaosWorkspace, report, Rng, scale } from '../../chaos/lib.js';
import { finalDoctor, killRound, raceRound, stopRound, type KillRound, type RaceRound, type StopRound } from '../../chaos/locks.js';

const s = scale();
const rounds = s.full ? Math.max(3, Math.round(s.iterations / 10)) : 3;
const stopRounds = s.full ? rounds : 1;
/** Longer than the 10 s after which the lock of versions before the kernel locks was taken over. */
const STOP_MS = 11_000;
const DATES = ['2026-01-10', '2026-01-11', '2026-01-12'];

/** The bundled demo input (12,000 signals): a run long enough for two to overlap. */
function demoWorkspace(): string {
  const ws = chaosWorkspace();
  copyFileSync(DEMO_INPUTS, join(ws, 'inputs', 's1_signals.jsonl'));
  return ws;
}

describe(`chaos: locks (seed ${s.seed})`, () => {
  it(
    `two run-locals started together, ${rounds} times: exactly one runs, the other exits 11 naming the holder`,
    async () => {
      const ws = demoWorkspace();
      const out: RaceRound[] = [];
      for (let i = 0; i < rounds; i++) out.push(await raceRound(ws, DATES[i % DATES.length]!));
      const d = await finalDoctor(ws);
      report('locks-race', { seed: s.seed, rounds, overlapped: out.filter((r) => r.overlapped).length, codes: out.map((r) => r.codes), failures: out.flatMap((r) => r.failures), doctor: d });
      expect(out.flatMap((r) => r.failures)).toEqual([]);
      expect(out.some((r) => r.overlapped)).toBe(true);
      expect(d.problems).toEqual([]);
    },
    s.full ? 900_000 : 90_000,
  );

  it(
    `a holder SIGKILLed mid-run, ${rounds} times: the next run breaks its lock, logs it and succeeds`,
    async () => {
      const ws = demoWorkspace();
      const rng = new Rng(s.seed);
      const out: KillRound[] = [];
      for (let i = 0; i < rounds; i++) out.push(await killRound(ws, DATES[i % DATES.length]!, rng));
      const d = await finalDoctor(ws);
      const takeovers = out.flatMap((r) => (r.takeover_ms === null ? [] : [r.takeover_ms]));
      report('locks-kill', {
        seed: s.seed,
        rounds,
        killed: out.filter((r) => r.killed_after_ms !== null).length,
        logged_break: out.filter((r) => r.logged_break).length,
        max_takeover_ms: takeovers.length ? Math.max(...takeovers) : null,
        rounds_detail: out,
        doctor: d,
      });
      expect(out.flatMap((r) => r.failures)).toEqual([]);
      expect(out.some((r) => r.killed_after_ms !== null && r.logged_break)).toBe(true);
      expect(d.problems).toEqual([]);
    },
    s.full ? 900_000 : 90_000,
  );

  it(
    `a holder SIGSTOPped mid-run for ${STOP_MS / 1000} s, ${stopRounds} time(s): every run meanwhile exits 11 naming it; continued, it finishes and publishes`,
    async () => {
      const ws = demoWorkspace();
      const rng = new Rng(s.seed);
      const out: StopRound[] = [];
      // A round whose holder finished before the stop proves nothing: up to two more tries for one that did not.
      for (let i = 0; i < stopRounds || (!out.some((r) => r.stopped_ms !== null) && i < stopRounds + 2); i++) {
        out.push(await stopRound(ws, DATES[i % DATES.length]!, rng, STOP_MS));
      }
      const d = await finalDoctor(ws);
      report('locks-stop', { seed: s.seed, rounds: out.length, stopped: out.filter((r) => r.stopped_ms !== null).length, rounds_detail: out, doctor: d });
      expect(out.flatMap((r) => r.failures)).toEqual([]);
      expect(out.some((r) => r.stopped_ms !== null && r.stopped_ms >= STOP_MS && r.tries > 0)).toBe(true);
      expect(d.problems).toEqual([]);
    },
    s.full ? 900_000 : 90_000,
  );
});
