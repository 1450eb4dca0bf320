import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Seconds each of the longest test files took, the mean of two runs of every file (four files at
 * a time, load 12-19 from other work beside them, 2026-11-30): only their order matters. A long
 * file that starts last sets the wall time of the whole run, so these start first, longest first,
 * whatever their project; every other file follows in vitest's own order (the durations it cached, else the largest first).
 * A file missing here is no error: it only starts later than it might.
 */
export const LONGEST_FILES: Readonly<Record<string, number>> = {
  'test/chaos/crash.test.ts': 145,
  'test/integration/package.test.ts': 117,
  'test/integration/runbook-000.test.ts': 77,
  'test/chaos/pg-effects.test.ts': 77,
  'test/integration/s1-cases.test.ts': 74,
  'test/chaos/lock-holders.test.ts': 71,
  'test/chaos/concurrency.test.ts': 71,
  'test/integration/run-lock-pg.test.ts': 63,
  'test/integration/worker-misbehaving.test.ts': 61,
  'test/integration/pg-s1.test.ts': 58,
  'test/integration/run-lock-cli.test.ts': 53,
  'test/integration/worker-crash.test.ts': 53,
  'test/integration/run-lock.test.ts': 52,
  'test/queue/pg.test.ts': 52,
  'test/integration/serve-hardening.test.ts': 51,
  'test/chaos/locks.test.ts': 50,
  'test/chaos/pg-s1.test.ts': 49,
  'test/integration/worker-isolation.test.ts': 46,
  'test/queue/pg-cases.test.ts': 46,
  'test/integration/serve.test.ts': 45,
  'test/chaos/fair-attempts.test.ts': 42,
  'test/integration/backfill.test.ts': 40,
  'test/integration/workspace-boundary.test.ts': 39,
  'test/integration/pg-cli.test.ts': 34,
  'test/integration/json-schema.test.ts': 33,
  'test/chaos/pg-run-lock.test.ts': 32,
  'test/chaos/corruption.test.ts': 31,
  'test/integration/ops-page-views.test.ts': 31,
  'test/integration/pipeline-example.test.ts': 31,
  'test/chaos/diskfull.test.ts': 31,
  'test/chaos/fuzz.test.ts': 27,
  'test/integration/s1-history.test.ts': 27,
  'test/pipeline/stores-pg.test.ts': 26,
  'test/queue/pg-effects.test.ts': 26,
};

/** vitest's order, with the files of LONGEST_FILES moved to the front, longest first. */
export class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const base = await super.sort(files);
    const weight = (f: TestSpecification): number => LONGEST_FILES[relative(this.ctx.config.root, f.moduleId)] ?? 0;
    return base
      .map((f, i) => ({ f, i, w: weight(f) }))
      .sort((a, b) => b.w - a.w || a.i - b.i)
      .map((x) => x.f);
  }
}
