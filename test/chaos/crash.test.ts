// Crash suite, short: 20 kill-and-rerun rounds of run-local and 20 of a backfill (npm run chaos: 200 each).
import { describe, expect, it } from 'vitest';
import { crashBackfill, crashRunLocal, type CrashFigures } from '../../chaos/crash.js';
import { report, scale } from '../../chaos/lib.js';

const s = scale();

/** After the kills and re-runs: the store as a clean run's, nothing twice, nothing left, doctor clean. */
function expectWhole(f: CrashFigures): void {
  expect(f.anomalies).toEqual([]);
  expect(f.store_identical).toBe(true);
  expect(f.duplicate_ids).toBe(0);
  expect(f.undrained).toEqual([]);
  expect(f.doctor_problems).toEqual([]);
  expect(f.doctor_exit).toBe(0);
}

describe('chaos: crash', () => {
  it(
    `s1 run-local SIGKILLed at random ${s.iterations} times, re-run each time: store byte-identical to a clean run, nothing lost (seed ${s.seed})`,
    async () => {
      const f = await crashRunLocal({ iterations: s.iterations, seed: s.seed });
      report('crash-run-local', { ...f });
      expectWhole(f);
    },
    // About 60-100 s on a 2-core machine; twice that and more under heavy load.
    s.full ? 3_600_000 : 300_000,
  );

  it(
    `s1 backfill SIGKILLed at random ${s.iterations} times, re-run (every other time with --resume): store byte-identical to a clean backfill (seed ${s.seed})`,
    async () => {
      const f = await crashBackfill({ iterations: s.iterations, seed: s.seed + 1 });
      report('crash-backfill', { ...f });
      expectWhole(f);
    },
    // About 60-100 s on a 2-core machine; twice that and more under heavy load.
    s.full ? 3_600_000 : 300_000,
  );
});
