import type { Command } from 'commander';
import { Option } from 'commander';
import { loadConfig } from '../../config/load.js';
import { acquireRunLock, type OnLockHeld } from '../../guard/run-lock.js';
import { checkRunId, newRunId } from '../../runtime/run-id.js';
import { stopSignals } from '../../runtime/signals.js';
import { planRun } from '../../../workers/s1/plan.js';
import { runS1, type RunReport } from '../../../workers/s1/pipeline.js';
import { setExitCode } from '../exit.js';
import { printJson, table } from '../format.js';
import { nonNegativeInt, openWorkspace, positiveInt } from '../options.js';
import { commandLine, openSession } from '../session.js';

export interface LockFlags {
  onLockHeld?: OnLockHeld;
  lockWaitSec?: number;
  lockTtlSec?: number;
  forceLockBreak?: boolean;
  reason?: string;
}

/** The run-lock flags every pipeline command takes. */
export function addLockFlags(c: Command): Command {
  return c
    .addOption(new Option('--on-lock-held <mode>', 'when another run holds the lock: retryable (exit 11), fail (exit 40), wait').choices(['retryable', 'fail', 'wait']).default('retryable'))
    .option('--lock-wait-sec <n>', 'with --on-lock-held wait: give up after N seconds (exit 40)', nonNegativeInt('--lock-wait-sec'))
    .option('--lock-ttl-sec <n>', 'a lock older than this may be taken over (default 3600)', positiveInt('--lock-ttl-sec'))
    .option('--force-lock-break', 'break the lock whoever holds it (needs --reason)')
    .option('--reason <text>', 'why this run (recorded in the lock and the log)');
}

export function registerS1(program: Command): void {
  const s1 = program.command('s1').description('the Season 1 pipeline');
  addLockFlags(
    s1
      .command('run-local')
      .description('run the four Season 1 stages for one date and publish it')
      .option('--workspace <dir>', 'workspace folder', '.')
      .requiredOption('--date <YYYY-MM-DD>', 'the date to run')
      .option('--as-of <instant>', 'use only data before this instant (default: the next midnight UTC)')
      .option('--run-id <id>', 'id of this run (default: time-based)')
      .option('--json', 'print the run report as JSON'),
  ).action(async (o: { workspace: string; date: string; asOf?: string; runId?: string; json?: boolean } & LockFlags) => {
    const ws = openWorkspace(o.workspace);
    const cfg = loadConfig(ws);
    const plan = planRun(cfg.s1, o.date, o.asOf);
    const runId = o.runId !== undefined ? checkRunId(o.runId) : newRunId();
    const report = await runLocked(o.workspace, 's1', runId, o, (log, stop, force, lockLost) =>
      runS1({ ws, cfg, plan, runId, log, stop, force, lockLost }),
    );
    setExitCode(report.exit_code);
    if (o.json) return printJson(report);
    process.stdout.write(formatReport(report));
  });
}

/** Takes the run lock, runs `fn` with two-stage signal handling, always releases the lock. */
export async function runLocked<T>(
  workspace: string,
  lockName: string,
  runId: string,
  flags: LockFlags,
  fn: (log: import('pino').Logger, stop: AbortSignal, force: AbortSignal, lockLost: () => boolean) => Promise<T>,
): Promise<T> {
  const s = openSession(workspace, { run_id: runId });
  const log = s.log.logger;
  const lock = await acquireRunLock({
    locksDir: s.ws.locks,
    name: lockName,
    cmd: commandLine(),
    ...(flags.reason !== undefined ? { reason: flags.reason } : {}),
    ...(flags.onLockHeld !== undefined ? { onLockHeld: flags.onLockHeld } : {}),
    ...(flags.lockWaitSec !== undefined ? { lockWaitSec: flags.lockWaitSec } : {}),
    ...(flags.lockTtlSec !== undefined ? { ttlSec: flags.lockTtlSec } : {}),
    forceBreak: !!flags.forceLockBreak,
    log,
  });
  const signals = stopSignals(log);
  try {
    return await fn(log, signals.stop, signals.force, () => !lock.stillHeld());
  } finally {
    // Signals stay handled until the lock is released: a second Ctrl-C must not kill the clean-up.
    await lock.release();
    signals.dispose();
  }
}

function formatReport(r: RunReport): string {
  const rows = r.stages.map((s) => {
    const out = s.outputs[0];
    return [
      `  ${s.step}`,
      s.status,
      `${s.tasks.completed}/${s.tasks.total} tasks${s.tasks.retried ? `, ${s.tasks.retried} retried` : ''}${s.tasks.dead ? `, ${s.tasks.dead} dead` : ''}`,
      out ? `${out.rows_written} rows written, ${out.rows_present} present` : '',
      `${(s.duration_ms / 1000).toFixed(1)}s`,
    ];
  });
  const failed = r.stages.find((s) => s.status === 'failed');
  const lines = [
    `s1 run-local ${r.date}  run ${r.run_id}  as_of ${r.as_of}`,
    table(rows),
    failed?.error ? `failed: ${failed.step}: ${failed.error.message}\n  manifest: ${failed.manifest}` : '',
    r.pointer ? `published: ${r.pointer}` : 'not published',
    `exit ${r.exit_code} in ${(r.duration_ms / 1000).toFixed(1)}s`,
  ];
  return `${lines.filter(Boolean).join('\n')}\n`;
}
