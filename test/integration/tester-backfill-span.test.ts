// A backfill's range is bounded before anything is planned or locked: `--start 0001-01-01` on a
// pipeline without partition bounds, or on Season 1 with a season of centuries, is one line and
// exit 64 naming the rule of docs/LIMITS.md (backfill_partitions), not minutes of planning (a
// stopped 740,000-date s1 backfill then wrote its summary once per blocked date).
import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, run, tempWorkspace, type Run } from './cli.js';

function oneError(r: Run): string {
  expect(r.stderr).not.toMatch(/\n\s+at /);
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('error:'));
  expect(errors, r.stderr).toHaveLength(1);
  return errors[0]!;
}

const TINY = `import { definePipeline, defineStep, defineWorker } from 'metaspn';
const one = defineStep({ name: 'one', plan: () => [{ key: '*', payload: {} }], worker: defineWorker({ handle: () => [{ key: 'k', v: 1 }] }) });
export default definePipeline({ name: 'tiny', partition: 'date', steps: [one] });
`;

describe('backfill span (backfill_partitions: 1 to 3660 dates)', () => {
  it('pipeline backfill of an unbounded pipeline over 2,000 years: exit 64, nothing locked or written', async () => {
    const ws = tempWorkspace({ demo: false, config: { pipelines: { tiny: './p.mjs' } } });
    writeFileSync(join(ws, 'p.mjs'), TINY);
    mkdirSync(join(ws, 'node_modules'));
    symlinkSync(ROOT, join(ws, 'node_modules', 'metaspn'));
    const r = await run(['pipeline', 'backfill', 'tiny', '--workspace', ws, '--start', '0001-01-01', '--end', '2020-12-31']);
    expect(r.code, r.stderr).toBe(64);
    expect(oneError(r)).toBe('error: --start 0001-01-01 --end 2020-12-31 spans 737790 dates; a backfill covers a whole number from 1 to 3660 dates (10 years)');
    expect(existsSync(join(ws, 'manifests', 'backfills'))).toBe(false);
  });

  it('s1 backfill over a season of centuries: exit 64 before the lock, no summary written', async () => {
    const ws = tempWorkspace({ config: { season: { start: '1900-01-01', end: '2020-12-31' } } });
    const r = await run(['s1', 'backfill', '--workspace', ws, '--start', '1900-01-01', '--end', '2020-12-31']);
    expect(r.code, r.stderr).toBe(64);
    expect(oneError(r)).toBe('error: --start 1900-01-01 --end 2020-12-31 spans 44195 dates; a backfill covers a whole number from 1 to 3660 dates (10 years)');
    expect(existsSync(join(ws, 'manifests', 'backfills'))).toBe(false);
  });

  it('a date that fails blocks the rest: every blocked date is in the summary at the end', async () => {
    // 2025-06-01 has no signal: the built-in check halts it (60), and the 303 dates after it are blocked.
    const ws = tempWorkspace({ config: { season: { start: '2025-01-01', end: '2026-03-31' } } });
    const r = await run(['s1', 'backfill', '--workspace', ws, '--start', '2025-06-01', '--end', '2026-03-31'], { ms: 120_000 });
    expect(r.code, r.stderr).toBe(60);
    const dir = join(ws, 'manifests', 'backfills');
    const [id] = readdirSync(dir);
    const summary = JSON.parse(readFileSync(join(dir, id!, 'summary.json'), 'utf8')) as {
      exit_code: number;
      finished_at: string | null;
      dates: Record<string, { status: string; exit_code: number; reason?: string }>;
    };
    expect(summary.exit_code).toBe(60);
    expect(summary.finished_at).not.toBeNull();
    const dates = Object.entries(summary.dates);
    expect(dates).toHaveLength(304);
    expect(dates[0]).toEqual(['2025-06-01', expect.objectContaining({ status: 'failed', exit_code: 60 })]);
    expect(dates.slice(1).every(([, d]) => d.status === 'blocked' && d.exit_code === 11)).toBe(true);
    expect(dates.at(-1)![0]).toBe('2026-03-31');
  });
});
