import type { Command } from 'commander';
import { isAbsolute, relative, sep } from 'node:path';
import { loadConfig } from '../../config/load.js';
import { MetaspnError, StateCorruptError, UsageError } from '../../guard/errors.js';
import type { RunInfo, RunsFilter, RunsRead } from '../../storage/runs.js';
import { FileStores, readRunRecords } from '../../pipeline/stores.js';
import type { StateFileProblem } from '../../storage/state-file.js';
import { newRunId } from '../../runtime/run-id.js';
import { setExitCode } from '../exit.js';
import { printJson, table, truncate, printOut, printErr } from '../format.js';
import { addLockFlags, runLocked, skipChecksOf, type LockFlags } from '../locked.js';
import { collect, openWorkspace } from '../options.js';
import { formatRun } from './pipeline.js';
import { fileDeps, pgDeps } from '../../pipeline/file-deps.js';
import { PgStores } from '../../backend/pg/stores.js';
import { resolveBackend, type PgSetting } from '../../backend/pg/setting.js';
import type { PipelineStores } from '../../pipeline/stores.js';
import { parseDate } from '../../pipeline/dates.js';
import { planPartition } from '../../pipeline/plan.js';
import { bundledPipeline } from '../../pipeline/bundled.js';
import { loadPipeline } from '../../pipeline/registry.js';
import { runPartition } from '../../pipeline/runner.js';
import type { WorkspacePaths } from '../../storage/paths.js';

export function registerRuns(program: Command): void {
  const runs = program.command('runs').description('run history, from the manifests');

  runs
    .command('list')
    .option('--workspace <dir>', 'workspace folder', '.')
    .option('--date <YYYY-MM-DD>', 'only runs of this date')
    .option('--pipeline <name>', 'only runs of this pipeline')
    .option('--json', 'print JSON')
    .description('the runs of every pipeline, newest first; a damaged manifest or pointer is left out and named, and the command exits 30')
    .action(async (o: { workspace: string; date?: string; pipeline?: string; json?: boolean }) => {
      const ws = openWorkspace(o.workspace);
      const stepsOf = await stepsOfPipelines(ws);
      const { runs: list, problems } = await runRecords(ws, { ...(o.date !== undefined ? { date: parseDate(o.date) } : {}), ...(o.pipeline ? { pipeline: o.pipeline } : {}), stepsOf });
      if (o.json) printJson({ runs: list });
      else printRuns(list, stepsOf);
      reportProblems(problems);
    });

  runs
    .command('show <run_id>')
    .option('--workspace <dir>', 'workspace folder', '.')
    .option('--json', 'print JSON')
    .action(async (runId: string, o: { workspace: string; json?: boolean }) => {
      const ws = openWorkspace(o.workspace);
      const { runs: all, problems } = await runRecords(ws, { stepsOf: await stepsOfPipelines(ws) });
      const r = all.find((x) => x.run_id === runId);
      // A damaged file of this run (one of its manifests, its date's pointer) is named: the run shown lacks it.
      const mine = problems.filter((p) => p.path.includes(`${sep}run=${runId}${sep}`) || (r !== undefined && p.kind === 'pointer' && p.path.endsWith(`date=${r.date}.json`)));
      if (!r) {
        reportProblems(mine);
        throw new UsageError(`no run ${truncate(runId, 61)} in ${ws.manifests}`, { hint: 'list them: metaspn runs list' });
      }
      if (o.json) {
        printJson(r);
        return reportProblems(mine);
      }
      const lines = [
        `run        ${r.run_id}${r.current ? '  (current for its date)' : ''}`,
        `pipeline   ${r.pipeline}`,
        `date       ${r.date}  as_of ${r.as_of}`,
        ...(r.retry_of_run_id ? [`retry of   ${r.retry_of_run_id}`] : []),
        `status     ${r.status}  exit ${r.exit_code}  ${(r.duration_ms / 1000).toFixed(1)}s  (${r.started_at} .. ${r.finished_at})`,
        ...(r.failure ? [`failure    ${r.failure}`] : []),
        table(r.steps.map((s) => [`  ${s.step}`, s.status, `exit ${s.exit_code}`, `${(s.duration_ms / 1000).toFixed(1)}s`, isAbsolute(s.manifest) ? relative(ws.root, s.manifest) : s.manifest])),
      ];
      printOut(`${lines.join('\n')}\n`);
      reportProblems(mine);
    });

  addLockFlags(
    runs
      .command('retry <run_id>')
      .description("re-run a failed run's partition as a new run of its pipeline (its manifests carry retry_of_run_id)")
      .option('--workspace <dir>', 'workspace folder', '.')
      .option('--skip-check <name>', 'publish through a known false alarm of this guardrail (repeatable; needs --reason)', collect)
      .option('--json', 'print the run report as JSON'),
  ).action(async (runId: string, o: { workspace: string; skipCheck?: string[]; json?: boolean } & LockFlags) => {
    const ws = openWorkspace(o.workspace);
    const stepsOf = await stepsOfPipelines(ws);
    const old = (await runRecords(ws, { stepsOf })).runs.find((r) => r.run_id === runId) ?? null;
    if (!old) throw new UsageError(`no run ${truncate(runId, 61)} in ${ws.manifests}`, { hint: 'list them: metaspn runs list' });
    if (old.status === 'success') {
      const replay = `${bundledPipeline(old.pipeline)?.command ?? `metaspn pipeline run ${old.pipeline}`} --date ${old.date}`;
      throw new MetaspnError('BUSINESS_REJECT', `run ${runId} succeeded; nothing to retry`, { hint: `to replay ${old.date}: ${replay}` });
    }
    const cfg = loadConfig(ws);
    if (!bundledPipeline(old.pipeline)) {
      const def = await loadPipeline(ws, cfg, old.pipeline);
      const plan = planPartition(def, old.date, old.as_of, Date.now());
      const newId = newRunId();
      const skipChecks = skipChecksOf(o);
      const report = await runLocked(o.workspace, def.name, newId, o, async (log, stop, force, lockLost) => {
        const pg = workspaceBackend(ws);
        const d = pg ? pgDeps(ws, cfg, log, pg) : fileDeps(ws, cfg, log);
        try {
          return await runPartition({ def, plan, runId: newId, retryOf: runId, by: `retry ${newId}`, stop, force, lockLost, skipChecks }, d);
        } finally {
          await d.stores.close();
        }
      });
      setExitCode(report.exit_code);
      if (o.json) return printJson(report);
      return void printOut(`retry of ${runId}\n${formatRun(report)}`);
    }
    const bundled = bundledPipeline(old.pipeline);
    if (!bundled?.retry) throw new UsageError(`run ${runId} is of pipeline ${old.pipeline}, which this metaspn does not know`, { hint: 'pipeline list names the pipelines of the workspace' });
    await bundled.retry({ workspace: o.workspace, runId, date: old.date, asOf: old.as_of, flags: { ...o } });
  });
}

/**
 * Steps of a complete run of each workspace pipeline, from their definitions. A module that does
 * not load is left out here (its runs then count the steps they have); `pipeline show` names the error.
 */
async function stepsOfPipelines(ws: WorkspacePaths): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  let cfg;
  try {
    cfg = loadConfig(ws);
  } catch {
    return out;
  }
  for (const name of Object.keys(cfg.pipelines)) {
    try {
      out[name] = (await loadPipeline(ws, cfg, name)).steps.length;
    } catch {
      // Listed with the steps its runs have.
    }
  }
  return out;
}

/** The runs as a table ("no runs" when there are none). */
function printRuns(list: RunInfo[], stepsOf: Record<string, number>): void {
  if (list.length === 0) return void printOut('no runs\n');
  const rows = [['RUN', 'PIPELINE', 'DATE', 'STATUS', 'EXIT', 'STEPS', 'DURATION', 'STARTED', 'FAILURE']];
  for (const r of list) {
    const total = bundledPipeline(r.pipeline)?.steps.length ?? stepsOf[r.pipeline] ?? r.steps.length;
    rows.push([
      r.run_id,
      r.pipeline,
      r.date,
      r.status + (r.current ? ' (current)' : ''),
      String(r.exit_code),
      `${r.steps.filter((s) => s.status === 'success').length}/${total}`,
      `${(r.duration_ms / 1000).toFixed(1)}s`,
      r.started_at.replace(/\.\d{3}Z$/, 'Z'),
      r.failure ? truncate(r.failure, 70) : '',
    ]);
  }
  printOut(`${table(rows)}\n`);
}

/**
 * Damaged run files: each named on stderr, then exit 30 (STATE_CORRUPT) so cron and scripts see
 * that the list is not the whole history. The runs that read back were printed first.
 */
function reportProblems(problems: StateFileProblem[]): void {
  if (problems.length === 0) return;
  for (const p of problems) {
    const what = p.kind === 'pointer' ? 'no run of its date is marked current' : 'left out';
    printErr(`warning: ${p.path}: ${p.error} (${what})\n`);
  }
  throw new StateCorruptError(`${problems.length} run file(s) do not read back (first ${problems[0]!.path}); what is printed above goes without them`, {
    hint: 'metaspn doctor names each and its fix; `metaspn doctor --repair` rewrites a damaged pointer from the ledger and moves a damaged manifest to quarantine/',
  });
}

/**
 * The run records of the workspace, read through its stores: the file backend's manifests and
 * pointers, and on PostgreSQL the database's too (pipeline runs are there; Season 1's and earlier
 * runs on files stay in the workspace), newest first.
 */
async function runRecords(ws: WorkspacePaths, filter: RunsFilter): Promise<RunsRead> {
  const read = async (stores: PipelineStores): Promise<RunsRead> => {
    try {
      const r = await readRunRecords(stores, filter);
      // Problems named relative to the workspace, as doctor names them.
      return { runs: r.runs, problems: r.problems.map((p) => ({ ...p, path: isAbsolute(p.path) ? relative(ws.root, p.path) : p.path })) };
    } finally {
      await stores.close();
    }
  };
  const files = await read(new FileStores(ws));
  const pg = workspaceBackend(ws);
  if (!pg) return files;
  const db = await read(new PgStores({ setting: pg }));
  const runs = [...db.runs, ...files.runs].sort((a, b) => (a.started_at < b.started_at ? 1 : a.started_at > b.started_at ? -1 : 0));
  return { runs, problems: [...db.problems, ...files.problems] };
}

/** The PostgreSQL backend the environment and the workspace's config select, or null (files); a config that does not load leaves the environment's choice. */
function workspaceBackend(ws: WorkspacePaths): PgSetting | null {
  let cfg;
  try {
    cfg = loadConfig(ws);
  } catch {
    return resolveBackend({ env: process.env });
  }
  return resolveBackend({ env: process.env, config: cfg.backend, configFile: cfg.file });
}
