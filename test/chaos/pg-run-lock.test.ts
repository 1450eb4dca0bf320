// The run lock on PostgreSQL, raced through the real CLI (test/integration/run-lock-race.ts): two
// `pipeline run`s started together against one database, exactly one runs and the other exits 11,
// 3 rounds here and 200 under `npm run chaos` (CHAOS_ITERATIONS); and a SIGKILLed holder taken over
// by a waiting run within 1 s (2 rounds here, 20 under npm run chaos), the slowest printed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { report, scale } from '../../chaos/lib.js';
import { raceRound, raceWorkspace, takeoverRound } from '../integration/run-lock-race.js';
import { createTestDatabase, pgAvailable, type TestDatabase } from '../queue/pg-db.js';

const up = await pgAvailable();
const s = scale();
const rounds = s.full ? s.iterations : 3;
const takeovers = s.full ? Math.max(2, Math.round(s.iterations / 10)) : 2;
let db: TestDatabase;

describe.skipIf(!up)('chaos: the run lock on PostgreSQL', () => {
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it(
    `two pipeline runs started together, ${rounds} times against one database: exactly one runs (exit 0), the other exits 11 naming it`,
    async () => {
      const ws = raceWorkspace();
      const t0 = performance.now();
      const loserMs: number[] = [];
      for (let i = 0; i < rounds; i++) loserMs.push((await raceRound(ws, db.url, i)).loser.ms);
      loserMs.sort((a, b) => a - b);
      report('pg-run-lock-race', {
        rounds,
        seconds: Math.round((performance.now() - t0) / 1000),
        loser_exit_ms_median: Math.round(loserMs[loserMs.length >> 1]!),
        loser_exit_ms_max: Math.round(loserMs.at(-1)!),
      });
    },
    s.full ? 3_600_000 : 120_000,
  );

  it(
    `a SIGKILLed holder is taken over by a waiting run within 1 s (${takeovers} rounds)`,
    async () => {
      const ws = raceWorkspace();
      const took: number[] = [];
      for (let i = 0; i < takeovers; i++) took.push(await takeoverRound(ws, db.url, i));
      const sorted = [...took].sort((a, b) => a - b);
      report('pg-run-lock-takeover', { rounds: takeovers, ms: took.map((t) => Math.round(t)), median_ms: Math.round(sorted[sorted.length >> 1]!), max_ms: Math.round(sorted.at(-1)!) });
      expect(Math.max(...took)).toBeLessThan(1000);
    },
    s.full ? 1_800_000 : 120_000,
  );
});
