import type { Command } from 'commander';
import { progressWanted } from '../../../src/cli/progress.js';
import { loadConfig } from '../../../src/config/load.js';
import { newRunId } from '../../../src/runtime/run-id.js';
import { backfill, backfillPlans, type DateResult } from '../backfill.js';
import { setExitCode } from '../../../src/cli/exit.js';
import { printJson } from '../../../src/cli/format.js';
import { collect, openWorkspace, positiveInt } from '../../../src/cli/options.js';
import { addLockFlags, runLocked, skipChecksOf, type LockFlags } from '../../../src/cli/locked.js';
import { backendFor, databaseUrlOption } from '../../../src/cli/backend.js';

export function registerBackfill(s1: Command): void {
  addLockFlags(
    s1
      .command('backfill')
      .description('run every date of a range like run-local, under one lock and one backfill id')
      .option('--workspace <dir>', 'workspace folder', '.')
      .requiredOption('--start <YYYY-MM-DD>', 'first date')
      .requiredOption('--end <YYYY-MM-DD>', 'last date (included)')
      .option('--max-parallel <n>', 'dates run at once (settlement and publishing still go in date order)', positiveInt('--max-parallel'), 1)
      .option('--resume', 'skip dates already published with the same params whose outputs still match the store; stale dates (inputs or earlier dates changed since) run again')
      .option('--skip-check <name>', 'publish through a known false alarm of this check or guardrail (repeatable; needs --reason)', collect)
      .option('--json', 'print the summary as JSON')
      .addOption(databaseUrlOption()),
  ).action(backfillAction);
}

/** The flags of `s1 backfill` (and `pipeline backfill s1`), as commander parses them. */
export type BackfillFlags = { workspace: string; start: string; end: string; maxParallel: number; resume?: boolean; skipCheck?: string[]; json?: boolean } & LockFlags;

/** `metaspn s1 backfill` and `metaspn pipeline backfill s1`: the range under one lock; sets the exit code. */
export async function backfillAction(o: BackfillFlags): Promise<void> {
  const ws = openWorkspace(o.workspace);
  const cfg = loadConfig(ws);
  const backend = backendFor(cfg, o.databaseUrl);
  const total = backfillPlans({ cfg, start: o.start, end: o.end }).length;
  const backfillId = `bf-${newRunId()}`;
  const skipChecks = skipChecksOf(o);
  // On a terminal: a bar, with each date that did not publish (and why) printed above it as it
  // settles; elsewhere one line per date on stdout.
  // The bars' module is loaded only for a terminal (every `s1` command loads this file).
  const bars =
    process.stderr.isTTY && progressWanted(o.json)
      ? new (await import('cli-progress')).MultiBar({ format: 'backfill [{bar}] {value}/{total} dates | ETA {eta_formatted} | {last}', hideCursor: true })
      : null;
  const bar = bars?.create(total, 0, { last: '' }) ?? null;
  const notPublished: string[] = [];
  const onDate = (d: DateResult, done: number): void => {
    const line = `${d.date}  ${d.status.padEnd(9)}  exit ${d.exit_code}  ${(d.duration_ms / 1000).toFixed(1)}s${d.run_id ? `  run ${d.run_id}` : ''}${d.reason && d.status !== 'published' ? `  (${d.reason})` : ''}${d.stale ? `  (was stale: ${d.stale})` : ''}`;
    if (d.status === 'failed' || d.status === 'blocked') notPublished.push(line);
    if (bars && bar) {
      if (d.status === 'failed' || d.status === 'blocked') bars.log(`${line}\n`);
      bar.update(done, { last: `${d.date} ${d.status}` });
    } else if (!o.json) process.stdout.write(`${line}\n`);
  };
  let report;
  try {
    report = await runLocked(
      o.workspace,
      's1',
      backfillId,
      o,
      (log, stop, force, lockLost) =>
        backfill({ ws, cfg, backend, log, stop, force, lockLost, skipChecks, backfillId, start: o.start, end: o.end, maxParallel: o.maxParallel, resume: !!o.resume, onDate }),
      'backfill_id',
    );
  } finally {
    bars?.stop();
  }
  setExitCode(report.exit_code);
  if (o.json) return printJson(report);
  const counts = Object.values(report.dates).reduce<Record<string, number>>((a, d) => ({ ...a, [d.status]: (a[d.status] ?? 0) + 1 }), {});
  // After a bar, the dates that did not publish are listed again with the summary.
  const listed = bars && notPublished.length ? `not published:\n${notPublished.map((l) => `  ${l}`).join('\n')}\n` : '';
  process.stdout.write(
    `${listed}backfill ${backfillId} ${report.start}..${report.end}: ${Object.entries(counts)
      .map(([k, v]) => `${v} ${k}`)
      .join(', ')}\nsummary: ${report.summary}\nexit ${report.exit_code}\n`,
  );
}
