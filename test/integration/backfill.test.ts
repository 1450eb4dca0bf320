import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generateSignals } from '../../scripts/gen-signals.js';
import { cliSpawn, tempWorkspace, waitFor } from './cli.js';
import { cliIn } from './in-process.js';

const STORE = ['s1_attention_scores.jsonl', 's1_reward_projections.jsonl', 's1_settlements.jsonl', 's1_summaries.jsonl'];
/** A small season: enough subjects and days for settlement to matter, quick to run a dozen times. */
const SIGNALS = `${generateSignals({ subjects: 40, perSubject: 30, start: '2026-01-01', days: 30, seed: 3 }).join('\n')}\n`;

const hashes = (ws: string): string[] =>
  STORE.map((f) =>
    createHash('sha256')
      .update(readFileSync(join(ws, 'store', f)))
      .digest('hex'),
  );
const dates = (n: number): string[] => Array.from({ length: n }, (_, i) => `2026-01-${String(i + 1).padStart(2, '0')}`);

interface Summary {
  backfill_id: string;
  exit_code: number;
  dates: Record<string, { status: string; run_id: string | null; exit_code: number }>;
}

function summaryOf(stdout: string): Summary {
  return JSON.parse(stdout) as Summary;
}

/**
 * The reference every backfill is compared with: one workspace where run-local published the dates
 * one after the other, and its store's hashes after the first n of them. Made once for the file
 * (each test asks for the dates it needs), so no test repeats the same run-locals.
 */
const reference = (() => {
  let ws: string | undefined;
  let published = 0;
  const hashesAfter = new Map<number, string[]>();
  afterAll(() => ws && rmSync(ws, { recursive: true, force: true }));
  return async (n: number): Promise<string[]> => {
    if (!ws) {
      ws = mkdtempSync(join(tmpdir(), 'metaspn-it-ref-'));
      mkdirSync(join(ws, 'inputs'));
      writeFileSync(join(ws, 'inputs', 's1_signals.jsonl'), SIGNALS);
    }
    for (const d of dates(n).slice(published)) {
      const r = await cliIn(['s1', 'run-local', '--workspace', ws, '--date', d]);
      expect(r.code, `${d}: ${r.stderr}`).toBe(0);
      published++;
      hashesAfter.set(published, hashes(ws));
    }
    return hashesAfter.get(n)!;
  };
})();

describe('metaspn s1 backfill', () => {
  // Twelve dates: three rounds of four at once, each date settling on the ones before it, as the
  // 30 dates this test took before (whose reference cost 30 sequential run-locals).
  it('12 dates with --max-parallel 4 leave the store byte-identical to run-local date by date', async () => {
    const par = tempWorkspace({ signals: SIGNALS });
    const r = await cliIn(['s1', 'backfill', '--workspace', par, '--start', '2026-01-01', '--end', '2026-01-12', '--max-parallel', '4', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const s = summaryOf(r.stdout);
    expect(Object.values(s.dates).every((d) => d.status === 'published' && d.exit_code === 0)).toBe(true);
    expect(Object.keys(s.dates)).toHaveLength(12);
    expect(hashes(par)).toEqual(await reference(12));
    const onDisk = JSON.parse(readFileSync(join(par, 'manifests', 'backfills', s.backfill_id, 'summary.json'), 'utf8'));
    expect(onDisk.finished_at).not.toBeNull();
    expect(Object.keys(onDisk.dates)).toHaveLength(12);
  }, 240_000);

  it('SIGKILLed halfway, --resume redoes only the unfinished dates and ends byte-identical', async () => {
    const ws = tempWorkspace({ signals: SIGNALS });
    const child = cliSpawn(['s1', 'backfill', '--workspace', ws, '--start', '2026-01-01', '--end', '2026-01-10', '--max-parallel', '2', '--json']);
    const published = (): string[] =>
      ['2026-01-01', '2026-01-02', '2026-01-03', '2026-01-04', '2026-01-05', '2026-01-06', '2026-01-07', '2026-01-08', '2026-01-09', '2026-01-10'].filter((d) =>
        existsSync(join(ws, 'manifests', 'current', 's1', `date=${d}.json`)),
      );
    await waitFor(() => published().length >= 3 || child.exitCode !== null, 60_000, 'three dates published');
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
    const before = published();
    expect(before.length).toBeGreaterThanOrEqual(3);
    expect(before.length).toBeLessThan(10);

    const r = await cliIn(['s1', 'backfill', '--workspace', ws, '--start', '2026-01-01', '--end', '2026-01-10', '--max-parallel', '2', '--resume', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const s = summaryOf(r.stdout);
    for (const d of before) expect(s.dates[d]?.status, d).toBe('skipped');
    const redone = Object.entries(s.dates)
      .filter(([, v]) => v.status === 'published')
      .map(([d]) => d);
    expect(redone.sort()).toEqual(dates(10).filter((d) => !before.includes(d)));
    expect(hashes(ws)).toEqual(await reference(10));
  }, 180_000);

  it('rejects a range outside the season (10) and a reversed one (64)', async () => {
    const ws = tempWorkspace({ signals: SIGNALS });
    expect((await cliIn(['s1', 'backfill', '--workspace', ws, '--start', '2026-03-30', '--end', '2026-04-02'])).code).toBe(10);
    expect((await cliIn(['s1', 'backfill', '--workspace', ws, '--start', '2026-01-05', '--end', '2026-01-02'])).code).toBe(64);
  });
  it('--resume cancels the tasks an interrupted run left of a date it skips as published (nothing stays ready)', async () => {
    const ws = tempWorkspace({ signals: SIGNALS });
    expect((await cliIn(['s1', 'backfill', '--workspace', ws, '--start', '2026-01-01', '--end', '2026-01-03'])).code).toBe(0);
    const before = hashes(ws);
    // What a run of 01-02 killed after its enqueue leaves: a task of its group ready in a stage queue.
    const left = join(ws, 'leftover.jsonl');
    writeFileSync(left, `${JSON.stringify({ id: 'leftover-1', payload: { date: '2026-01-02' }, group: 's1/2026-01-02' })}\n`);
    expect((await cliIn(['queue', 'enqueue', 'settle_season', '--file', left, '--workspace', ws])).code).toBe(0);
    const r = await cliIn(['s1', 'backfill', '--workspace', ws, '--start', '2026-01-01', '--end', '2026-01-03', '--resume', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(Object.values(summaryOf(r.stdout).dates).map((d) => d.status)).toEqual(['skipped', 'skipped', 'skipped']);
    const st = JSON.parse((await cliIn(['queue', 'stats', 'settle_season', '--workspace', ws, '--json'])).stdout) as { ready: number; cancelled: number; completed: number };
    expect([st.ready, st.cancelled, st.completed]).toEqual([0, 1, 3]);
    expect(hashes(ws)).toEqual(before);
  }, 60_000);
});
