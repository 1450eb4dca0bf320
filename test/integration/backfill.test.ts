import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateSignals } from '../../scripts/gen-signals.js';
import { cli, cliSpawn, tempWorkspace, waitFor } from './cli.js';

const STORE = ['s1_attention_scores.jsonl', 's1_reward_projections.jsonl', 's1_settlements.jsonl', 's1_summaries.jsonl'];
/** A small season: enough subjects and days for settlement to matter, quick to run 30 times. */
const SIGNALS = `${generateSignals({ subjects: 40, perSubject: 30, start: '2026-01-01', days: 30, seed: 3 }).join('\n')}\n`;

const hashes = (ws: string): string[] => STORE.map((f) => createHash('sha256').update(readFileSync(join(ws, 'store', f))).digest('hex'));
const dates = (n: number): string[] => Array.from({ length: n }, (_, i) => `2026-01-${String(i + 1).padStart(2, '0')}`);

interface Summary {
  backfill_id: string;
  exit_code: number;
  dates: Record<string, { status: string; run_id: string | null; exit_code: number }>;
}

function summaryOf(stdout: string): Summary {
  return JSON.parse(stdout) as Summary;
}

describe('metaspn s1 backfill', () => {
  it('30 dates with --max-parallel 4 leave the store byte-identical to run-local date by date', () => {
    const seq = tempWorkspace({ signals: SIGNALS });
    for (const d of dates(30)) expect(cli(['s1', 'run-local', '--workspace', seq, '--date', d]).code, d).toBe(0);
    const par = tempWorkspace({ signals: SIGNALS });
    const r = cli(['s1', 'backfill', '--workspace', par, '--start', '2026-01-01', '--end', '2026-01-30', '--max-parallel', '4', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const s = summaryOf(r.stdout);
    expect(Object.values(s.dates).every((d) => d.status === 'published' && d.exit_code === 0)).toBe(true);
    expect(Object.keys(s.dates)).toHaveLength(30);
    expect(hashes(par)).toEqual(hashes(seq));
    const onDisk = JSON.parse(readFileSync(join(par, 'manifests', 'backfills', s.backfill_id, 'summary.json'), 'utf8'));
    expect(onDisk.finished_at).not.toBeNull();
    expect(Object.keys(onDisk.dates)).toHaveLength(30);
  }, 240_000);

  it('SIGKILLed halfway, --resume redoes only the unfinished dates and ends byte-identical', async () => {
    const clean = tempWorkspace({ signals: SIGNALS });
    expect(cli(['s1', 'backfill', '--workspace', clean, '--start', '2026-01-01', '--end', '2026-01-10', '--max-parallel', '2']).code).toBe(0);

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

    const r = cli(['s1', 'backfill', '--workspace', ws, '--start', '2026-01-01', '--end', '2026-01-10', '--max-parallel', '2', '--resume', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const s = summaryOf(r.stdout);
    for (const d of before) expect(s.dates[d]?.status, d).toBe('skipped');
    const redone = Object.entries(s.dates).filter(([, v]) => v.status === 'published').map(([d]) => d);
    expect(redone.sort()).toEqual(dates(10).filter((d) => !before.includes(d)));
    expect(hashes(ws)).toEqual(hashes(clean));
  }, 180_000);

  it('rejects a range outside the season (10) and a reversed one (64)', () => {
    const ws = tempWorkspace({ signals: SIGNALS });
    expect(cli(['s1', 'backfill', '--workspace', ws, '--start', '2026-03-30', '--end', '2026-04-02']).code).toBe(10);
    expect(cli(['s1', 'backfill', '--workspace', ws, '--start', '2026-01-05', '--end', '2026-01-02']).code).toBe(64);
  });
  it('--resume cancels the tasks an interrupted run left of a date it skips as published (nothing stays ready)', () => {
    const ws = tempWorkspace({ signals: SIGNALS });
    expect(cli(['s1', 'backfill', '--workspace', ws, '--start', '2026-01-01', '--end', '2026-01-03']).code).toBe(0);
    const before = hashes(ws);
    // What a run of 01-02 killed after its enqueue leaves: a task of its group ready in a stage queue.
    const left = join(ws, 'leftover.jsonl');
    writeFileSync(left, `${JSON.stringify({ id: 'leftover-1', payload: { date: '2026-01-02' }, group: 's1/2026-01-02' })}\n`);
    expect(cli(['queue', 'enqueue', 'settle_season', '--file', left, '--workspace', ws]).code).toBe(0);
    const r = cli(['s1', 'backfill', '--workspace', ws, '--start', '2026-01-01', '--end', '2026-01-03', '--resume', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(Object.values(summaryOf(r.stdout).dates).map((d) => d.status)).toEqual(['skipped', 'skipped', 'skipped']);
    const st = JSON.parse(cli(['queue', 'stats', 'settle_season', '--workspace', ws, '--json']).stdout) as { ready: number; cancelled: number; completed: number };
    expect([st.ready, st.cancelled, st.completed]).toEqual([0, 1, 3]);
    expect(hashes(ws)).toEqual(before);
  }, 60_000);
});
