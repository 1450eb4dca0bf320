// Long work shows progress: a line per step as it ends (run-local, pipeline run), and a backfill
// on a terminal lists the dates that did not publish, with why, above its bar and again at the end.
import { spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { generateSignals } from '../../scripts/gen-signals.js';
import { BIN, cleanWorkspaces, cli, exampleWorkspace, tempWorkspace } from './cli.js';
import { cliIn } from './in-process.js';

afterEach(() => cleanWorkspaces());

const STEP_LINE = /^2026-01-13 {2}(\w+) +success +exit 0 {2}\d+\.\ds {2}(\d+)\/\2 tasks$/;

describe('progress lines', () => {
  it('s1 run-local: one line per stage on stderr (METASPN_PROGRESS=1 as on a terminal); none with --json', async () => {
    const ws = tempWorkspace();
    const r = await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-13'], { env: { METASPN_PROGRESS: '1' } });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => STEP_LINE.test(l));
    expect(lines.map((l) => STEP_LINE.exec(l)![1])).toEqual(['update_attention_scores', 'project_rewards', 'settle_season', 'publish_season_summary']);
    // stdout is the report, untouched.
    expect(r.stdout).toMatch(/^s1 run-local 2026-01-13 {2}run /);
    const json = await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-14', '--json'], { env: { METASPN_PROGRESS: '1' } });
    expect(json.code).toBe(0);
    expect(json.stderr).not.toMatch(/update_attention_scores +success/);
    // Without a terminal and without the variable: no progress lines.
    const quiet = await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15']);
    expect(quiet.stderr).not.toMatch(/update_attention_scores +success/);
  }, 60_000);

  it('pipeline run: one line per step as it ends, on stderr', () => {
    const dir = exampleWorkspace();
    const r = cli(['pipeline', 'run', 'daily-projections', '--workspace', dir, '--date', '2026-03-03'], { env: { METASPN_PROGRESS: '1' } });
    expect(r.code, r.stderr).toBe(0);
    const steps = r.stderr
      .split('\n')
      .map((l) => /^2026-03-03 {2}(\w+) +success +exit 0 /.exec(l)?.[1])
      .filter(Boolean);
    expect(steps.sort()).toEqual(['finalize', 'ingest', 'minutes', 'ownership', 'rates', 'sim']);
    expect(steps.length).toBe(6);
  }, 60_000);

  it.skipIf(spawnSync('script', ['--version']).status !== 0)(
    's1 backfill on a terminal: the dates that did not publish, with why, listed with the summary',
    () => {
      const ws = tempWorkspace({ signals: `${generateSignals({ subjects: 10, perSubject: 20, start: '2026-01-01', days: 3, seed: 1 }).join('\n')}\n`, config: { attention: { window_days: 1 } } });
      // A pseudo-terminal (util-linux script): stderr is a TTY, so the bar is drawn.
      const r = spawnSync('script', ['-qec', `${process.execPath} ${BIN} s1 backfill --workspace ${ws} --start 2026-01-01 --end 2026-01-06`, '/dev/null'], { encoding: 'utf8', timeout: 120_000 });
      const out = r.stdout
        .replace(/\r\n/g, '\n')
        .replace(/\r/g, '\n')
        .replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[A-Za-z]`, 'g'), '');
      expect(out).toContain('backfill [');
      expect(out).toMatch(/not published:\n {2}2026-01-04 {2}failed +exit 60 .*window_has_signals/);
      expect(out).toMatch(/^ {2}2026-01-05 {2}blocked +exit 11 .*not run: 2026-01-04 failed/m);
      expect(out).toMatch(/2026-01-01\.\.2026-01-06: 3 published, 1 failed, 2 blocked\n(?:.*\n)*exit 60/);
    },
    120_000,
  );
});
