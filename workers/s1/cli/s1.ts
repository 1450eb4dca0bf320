import type { Command } from 'commander';
import { loadConfig } from '../../../src/config/load.js';
import { checkRunId, newRunId } from '../../../src/runtime/run-id.js';
import { planRun } from '../plan.js';
import { runS1, type RunReport } from '../pipeline.js';
import type { StepReport } from '../../../src/pipeline/runner.js';
import { stepProgress } from '../../../src/cli/progress.js';
import { assertRunIdFree } from '../run-ids.js';
import { rollback } from '../rollback.js';
import { registerBackfill } from './backfill.js';
import { setExitCode } from '../../../src/cli/exit.js';
import { printJson } from '../../../src/cli/format.js';
import { collect, openWorkspace, positiveInt } from '../../../src/cli/options.js';
import { addLockFlags, runLocked, skipChecksOf, type LockFlags } from '../../../src/cli/locked.js';
import { UsageError } from '../../../src/guard/errors.js';
import { formatRollback, formatRunText } from '../../../src/cli/commands/pipeline.js';
import { backendFor, databaseUrlOption } from '../../../src/cli/backend.js';

export function registerS1(program: Command): void {
  const s1 = program.command('s1').description('the Season 1 pipeline');
  addLockFlags(
    s1
      .command('run-local')
      .description('run the four Season 1 stages for one date and publish it')
      .option('--workspace <dir>', 'workspace folder', '.')
      .requiredOption('--date <YYYY-MM-DD>', 'the date to run')
      .option('--as-of <instant>', 'use only data before this instant, not later than now (default: the next midnight UTC; a date not over yet needs it, and its run is provisional)')
      .option('--run-id <id>', 'id of this run, not used before (default: time-based)')
      .option('--skip-check <name>', 'publish through a known false alarm of this check or guardrail (repeatable; needs --reason)', collect)
      .option('--json', 'print the run report as JSON')
      .addOption(databaseUrlOption()),
  ).action(runLocalAction);
  registerRollback(s1);
  registerBackfill(s1);
}

/** The flags of `s1 run-local` (and `pipeline run s1`), as commander parses them. */
export type RunLocalFlags = { workspace: string; date: string; asOf?: string; runId?: string; skipCheck?: string[]; json?: boolean } & LockFlags;

/** `metaspn s1 run-local` and `metaspn pipeline run s1`: one date, under the run lock; sets the exit code. */
export async function runLocalAction(o: RunLocalFlags): Promise<void> {
  const ws = openWorkspace(o.workspace);
  const cfg = loadConfig(ws);
  // Rows, manifests, pointers, ledger, queues and the run lock in PostgreSQL when a backend is set.
  const backend = backendFor(cfg, o.databaseUrl);
  const plan = planRun(cfg.s1, o.date, o.asOf);
  const runId = o.runId !== undefined ? checkRunId(o.runId) : newRunId();
  // Checked again under the run lock; here it refuses before the lock is even taken.
  if (o.runId !== undefined) assertRunIdFree(ws, runId);
  const skipChecks = skipChecksOf(o);
  const report = await runLocked(o.workspace, 's1', runId, o, (log, stop, force, lockLost) =>
    runS1({ ws, cfg, backend, plan, runId, log, stop, force, lockLost, skipChecks, ...withProgress(o.json) }),
  );
  setExitCode(report.exit_code);
  if (o.json) return printJson(report);
  process.stdout.write(formatReport(report));
}

export function formatReport(r: RunReport): string {
  return formatRunText({
    ...r,
    steps: r.stages,
    header: `s1 run-local ${r.date}  run ${r.run_id}  as_of ${r.as_of}${r.provisional ? '  (provisional: the date is not over)' : ''}`,
  });
}

export function registerRollback(s1: Command): void {
  addLockFlags(
    s1
      .command('rollback')
      .description('move current pointers back N publishes, or to the state as of a ledger entry (pointers only)')
      .option('--workspace <dir>', 'workspace folder', '.')
      .option('--steps <n>', 'undo the last N publishes in effect', positiveInt('--steps'))
      .option('--to-hash <hash>', 'the state right after this ledger entry (full hash or 8+ hex digits)')
      .option('--dry-run', 'print which pointers would change; change nothing')
      .option('--strict', "refuse (exit 30) when the ledger or a restored run's manifest does not verify")
      .option('--json', 'print JSON')
      .addOption(databaseUrlOption()),
  ).action(rollbackAction);
}

/** The flags of `s1 rollback` (and `pipeline rollback s1`). */
export type RollbackFlags = { workspace: string; steps?: number; toHash?: string; dryRun?: boolean; strict?: boolean; json?: boolean } & LockFlags;

/** `metaspn s1 rollback` and `metaspn pipeline rollback s1`. */
export async function rollbackAction(o: RollbackFlags): Promise<void> {
  if ((o.steps === undefined) === (o.toHash === undefined)) throw new UsageError('give exactly one of --steps N or --to-hash H');
  if (!o.reason?.trim() && !o.dryRun) throw new UsageError('--reason TEXT is required: it is recorded in the ledger');
  const ws = openWorkspace(o.workspace);
  const backend = backendFor(loadConfig(ws), o.databaseUrl);
  const runId = `rollback-${newRunId()}`;
  const report = await runLocked(o.workspace, 's1', runId, { ...o, reason: o.reason }, (log, _stop, _force, lockLost) =>
    rollback({
      ws,
      backend,
      fence: (fn) => lockLost.whileHeld(fn),
      log,
      target: o.steps !== undefined ? { steps: o.steps } : { toHash: o.toHash! },
      reason: (o.reason ?? '').trim(),
      dryRun: !!o.dryRun,
      strict: !!o.strict,
      runId,
    }),
  );
  if (o.json) return printJson(report);
  process.stdout.write(formatRollback(report));
}

/** `onStage` printing each stage's line on stderr when progress is wanted (src/cli/progress.ts). */
export function withProgress(json: boolean | undefined): { onStage?: (date: string, r: StepReport) => void } {
  const p = stepProgress(json);
  return p ? { onStage: (date, r) => p(date, r) } : {};
}
