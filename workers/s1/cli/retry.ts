import { loadConfig } from '../../../src/config/load.js';
import { setExitCode } from '../../../src/cli/exit.js';
import { printJson } from '../../../src/cli/format.js';
import { runLocked, skipChecksOf, type LockFlags } from '../../../src/cli/locked.js';
import { openWorkspace } from '../../../src/cli/options.js';
import { newRunId } from '../../../src/runtime/run-id.js';
import { runS1 } from '../pipeline.js';
import { planRun } from '../plan.js';
import { formatReport } from './s1.js';
import { backendFor } from '../../../src/cli/backend.js';

/** `runs retry` of a Season 1 run: its date again, as of the same instant, as a new run. Returns the exit code (also set). */
export async function retryS1Run(o: { workspace: string; runId: string; date: string; asOf: string; flags: Record<string, unknown> }): Promise<number> {
  const flags = o.flags as LockFlags & { skipCheck?: string[]; json?: boolean };
  const ws = openWorkspace(o.workspace);
  const cfg = loadConfig(ws);
  const plan = planRun(cfg.s1, o.date, o.asOf);
  const newId = newRunId();
  const skipChecks = skipChecksOf(flags);
  const report = await runLocked(o.workspace, 's1', newId, flags, (log, stop, force, lockLost) =>
    runS1({ ws, cfg, backend: backendFor(cfg, flags.databaseUrl), plan, runId: newId, retryOf: o.runId, log, stop, force, lockLost, skipChecks }),
  );
  setExitCode(report.exit_code);
  if (flags.json) printJson(report);
  else process.stdout.write(`retry of ${o.runId}\n${formatReport(report)}`);
  return report.exit_code;
}
