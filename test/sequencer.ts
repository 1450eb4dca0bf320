import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Seconds each of the longest test files took in one `npm test` (four files at a time, load 12-30
 * from other work beside it): only their order matters. A long file that starts last sets the
 * wall time of the whole run, so these start first, longest first, whatever their project; every
 * other file follows in vitest's own order (the durations it cached, else the largest first).
 * A file missing here is no error: it only starts later than it might.
 */
export const LONGEST_FILES: Readonly<Record<string, number>> = {
  'test/integration/runbook-000.test.ts': 135,
  'test/chaos/crash.test.ts': 134,
  'test/integration/serve-hardening.test.ts': 87,
  'test/chaos/lock-holders.test.ts': 73,
  'test/integration/worker-isolation.test.ts': 70,
  'test/chaos/locks.test.ts': 68,
  'test/integration/ops-page.test.ts': 66,
  'test/integration/s1-cases.test.ts': 64,
  'test/integration/worker-misbehaving.test.ts': 63,
  'test/chaos/pg-s1.test.ts': 62,
  'test/queue/pg-cases.test.ts': 59,
  'test/integration/run-lock.test.ts': 55,
  'test/integration/serve.test.ts': 53,
  'test/integration/pg-s1.test.ts': 51,
  'test/chaos/corruption.test.ts': 50,
  'test/integration/package.test.ts': 50,
  'test/queue/pg.test.ts': 50,
  'test/chaos/concurrency.test.ts': 48,
  'test/integration/run-lock-cli.test.ts': 48,
  'test/chaos/pg-effects.test.ts': 47,
  'test/integration/run-lock-pg.test.ts': 46,
  'test/integration/worker-crash.test.ts': 46,
  'test/integration/backfill.test.ts': 41,
  'test/integration/pg-cli.test.ts': 39,
  'test/integration/ops-page-views.test.ts': 38,
  'test/integration/pipeline-example.test.ts': 37,
  'test/integration/workspace-boundary.test.ts': 37,
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
