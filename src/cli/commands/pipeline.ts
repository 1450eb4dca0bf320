import type { Command } from 'commander';
import { loadConfig } from '../../config/load.js';
import { StateCorruptError, toMetaspnError, UsageError } from '../../guard/errors.js';
import { EXIT, mostSevere } from '../../guard/exit-codes.js';
import { runBackfill, type PartitionResult } from '../../pipeline/backfill.js';
import { fileDeps, pgDeps } from '../../pipeline/file-deps.js';
import { ancestors, planPartition, planRange, queueOf, validatePipeline } from '../../pipeline/plan.js';
import { bundledPipeline, type BundledActions } from '../../pipeline/bundled.js';
import { listPipelines, loadPipeline } from '../../pipeline/registry.js';
import { rollback, type RollbackReport } from '../../pipeline/rollback.js';
import { runPartition, type PipelineRunReport } from '../../pipeline/runner.js';
import { FileStores, type PipelineStores } from '../../pipeline/stores.js';
import type { PipelineDefinition } from '../../pipeline/types.js';
import type { CurrentPointer } from '../../storage/pointers.js';
import { checkRunId, newRunId } from '../../runtime/run-id.js';
import { PgStores } from '../../backend/pg/stores.js';
import { pgRollback } from '../../backend/pg/rollback.js';
import { backendFor, databaseUrlOption } from '../backend.js';
import { setExitCode } from '../exit.js';
import { stepProgress, type StepProgress } from '../progress.js';
import { printJson, printOut, table, visible } from '../format.js';
import { addLockFlags, runLocked, skipChecksOf, type LockFlags } from '../locked.js';
import { collect, openWorkspace, positiveInt } from '../options.js';

/** `metaspn pipeline list|show|run|backfill|rollback`: any workspace pipeline, with what Season 1 gets. */
export function registerPipeline(program: Command): void {
  const p = program.command('pipeline').description("the workspace's pipelines (named in metaspn.config.json under pipelines; s1 is bundled)");

  p.command('list')
    .description('the pipelines of the workspace')
    .option('--workspace <dir>', 'workspace folder', '.')
    .option('--json', 'print JSON')
    .action(async (o: { workspace: string; json?: boolean }) => {
      const ws = openWorkspace(o.workspace);
      const cfg = loadConfig(ws);
      // Each workspace module is loaded and checked: a list that says "fine" of a module that
      // does not load would only defer the surprise to the first run.
      const list = await Promise.all(
        listPipelines(cfg).map(async (e) => {
          if (e.source === 'bundled') return { ...e, status: 'ok' as const, steps: bundledPipeline(e.name)?.steps.length ?? 0 };
          try {
            return { ...e, status: 'ok' as const, steps: validatePipeline(await loadPipeline(ws, cfg, e.name)).length };
          } catch (err) {
            const m = toMetaspnError(err);
            return { ...e, status: 'error' as const, exit_code: m.exitCode, error: m.message };
          }
        }),
      );
      setExitCode(mostSevere(list.map((e) => ('exit_code' in e ? e.exit_code : EXIT.SUCCESS))));
      if (o.json) return printJson({ pipelines: list });
      const status = (e: (typeof list)[number]): string => ('error' in e ? `error (exit ${e.exit_code}): ${e.error}` : `${e.steps} steps`);
      printOut(`${table([['name', 'source', 'module', 'status'], ...list.map((e) => [e.name, e.source, e.module ?? '(bundled: metaspn s1 …)', status(e)])])}\n`);
    });

  p.command('show')
    .description("a pipeline's steps, their dependencies, inputs and queues, and its checks")
    .argument('<name>', 'pipeline name')
    .option('--workspace <dir>', 'workspace folder', '.')
    .option('--json', 'print JSON')
    .action(async (name: string, o: { workspace: string; json?: boolean }) => {
      const ws = openWorkspace(o.workspace);
      const cfg = loadConfig(ws);
      const bundled = bundledPipeline(name);
      if (bundled) {
        const view = { name, source: 'bundled', command: bundled.command, steps: bundled.steps.map((s) => ({ name: s.name, after: s.after, queue: s.name })) };
        if (o.json) return printJson(view);
        printOut(`${name} (bundled; run with ${bundled.command})\n${table(view.steps.map((s) => [`  ${s.name}`, s.after.length ? `after ${s.after.join(', ')}` : '(first)', `queue ${s.queue}`]))}\n`);
        return;
      }
      const def = await loadPipeline(ws, cfg, name);
      const order = validatePipeline(def);
      const view = {
        name: def.name,
        source: 'workspace',
        module: cfg.pipelines[name],
        ...(def.description ? { description: def.description } : {}),
        partition: def.partition,
        partitions: def.partitions ?? {},
        steps: order.map((s) => ({
          name: s.name,
          ...(s.description ? { description: s.description } : {}),
          after: [...(s.after ?? [])],
          upstream: [...ancestors(def, s.name)].sort(),
          inputs: [...(s.inputs ?? [])],
          previous: s.previous === true,
          params: s.params ?? {},
          queue: queueOf(def, s),
        })),
        checks: (def.checks ?? []).map((c) => ({ name: c.name, ...(c.description ? { description: c.description } : {}), reads: [...(c.reads ?? [])] })),
      };
      if (o.json) return printJson(view);
      const lines = [
        `${def.name}${def.description ? `: ${def.description}` : ''}`,
        `  module ${view.module}; partition: UTC date${def.partitions?.start || def.partitions?.end ? ` (${def.partitions?.start ?? 'any'} to ${def.partitions?.end ?? 'any'})` : ''}`,
        'steps:',
        table(
          view.steps.map((s) => [
            `  ${s.name}`,
            s.after.length ? `after ${s.after.join(', ')}` : '(first)',
            s.inputs.length ? `inputs ${s.inputs.join(', ')}` : '',
            s.previous ? 'reads the previous partition' : '',
            `queue ${s.queue}`,
          ]),
        ),
        view.checks.length ? 'checks:' : 'checks: (none)',
        ...view.checks.map((c) => `  ${c.name}${c.description ? `: ${c.description}` : ''}`),
      ];
      printOut(`${lines.join('\n')}\n`);
    });

  addLockFlags(
    p
      .command('run')
      .description('run every step of a pipeline for one partition and publish it')
      .argument('<name>', 'pipeline name')
      .option('--workspace <dir>', 'workspace folder', '.')
      .requiredOption('--date <YYYY-MM-DD>', 'the partition to run')
      .option('--as-of <instant>', 'use only data before this instant (default: the next midnight UTC)')
      .option('--run-id <id>', 'id of this run (default: time-based; an id already used is refused)')
      .option('--skip-check <name>', 'publish through a known false alarm of this check (repeatable; needs --reason)', collect)
      .option('--json', 'print the run report as JSON')
      .addOption(databaseUrlOption()),
  ).action(async (name: string, o: { workspace: string; date: string; asOf?: string; runId?: string; skipCheck?: string[]; json?: boolean } & LockFlags) => {
    const bundled = await bundledActions(name);
    if (bundled) return bundled.run(o);
    const ws = openWorkspace(o.workspace);
    const cfg = loadConfig(ws);
    // Stores, queues and the run lock in PostgreSQL when a backend is set, else the workspace's files.
    const pg = backendFor(cfg, o.databaseUrl);
    const def = await loadPipeline(ws, cfg, name);
    const plan = planPartition(def, o.date, o.asOf, Date.now());
    const runId = o.runId !== undefined ? checkRunId(o.runId) : newRunId();
    const skipChecks = skipChecksOf(o);
    const report = await runLocked(o.workspace, def.name, runId, o, async (log, stop, force, lockLost) => {
      const d = pg ? pgDeps(ws, cfg, log, pg) : fileDeps(ws, cfg, log);
      try {
        const progress = stepProgress(o.json);
        return await runPartition({ def, plan, runId, by: `run ${runId}`, stop, force, lockLost, skipChecks, ...(progress ? { onStep: (r: StepProgress) => progress(plan.partition, r) } : {}) }, d);
      } finally {
        await d.stores.close();
      }
    });
    setExitCode(report.exit_code);
    if (o.json) return printJson(report);
    printOut(formatRun(report));
  });

  addLockFlags(
    p
      .command('backfill')
      .description('run every partition of a range, each like `pipeline run`, under one lock and one backfill id')
      .argument('<name>', 'pipeline name')
      .option('--workspace <dir>', 'workspace folder', '.')
      .requiredOption('--start <YYYY-MM-DD>', 'first partition')
      .requiredOption('--end <YYYY-MM-DD>', 'last partition (included)')
      .option('--max-parallel <n>', 'partitions run at once, 1 to 64 (a pipeline that reads the previous partition runs them in order)', positiveInt('--max-parallel'), 1)
      .option('--resume', 'skip partitions already published with the identity a run would have now; stale ones run again')
      .option('--skip-check <name>', 'publish through a known false alarm of this check (repeatable; needs --reason)', collect)
      .option('--json', 'print the summary as JSON')
      .addOption(databaseUrlOption()),
  ).action(async (name: string, o: { workspace: string; start: string; end: string; maxParallel: number; resume?: boolean; skipCheck?: string[]; json?: boolean } & LockFlags) => {
    if (o.maxParallel > 64) throw new UsageError(`--max-parallel ${o.maxParallel} is out of range 1 to 64`);
    const bundled = await bundledActions(name);
    if (bundled) return bundled.backfill(o);
    const ws = openWorkspace(o.workspace);
    const cfg = loadConfig(ws);
    const pg = backendFor(cfg, o.databaseUrl);
    const def = await loadPipeline(ws, cfg, name);
    const plans = planRange(def, o.start, o.end, Date.now());
    const backfillId = `bf-${newRunId()}`;
    const skipChecks = skipChecksOf(o);
    const onPartition = (r: PartitionResult): void => {
      if (!o.json) printOut(`${formatPartition(r)}\n`);
    };
    const report = await runLocked(
      o.workspace,
      def.name,
      backfillId,
      o,
      async (log, stop, force, lockLost) => {
        const d = pg ? pgDeps(ws, cfg, log, pg) : fileDeps(ws, cfg, log);
        try {
          return await runBackfill({ def, plans, backfillId, maxParallel: o.maxParallel, resume: !!o.resume, ws, by: `backfill ${backfillId}`, stop, force, lockLost, skipChecks, onPartition }, d);
        } finally {
          await d.stores.close();
        }
      },
      'backfill_id',
    );
    setExitCode(report.exit_code);
    if (o.json) return printJson(report);
    const counts = Object.values(report.partitions).reduce<Record<string, number>>((a, d) => ({ ...a, [d.status]: (a[d.status] ?? 0) + 1 }), {});
    printOut(
      `backfill ${backfillId} ${report.start}..${report.end}: ${Object.entries(counts)
        .map(([k, v]) => `${v} ${k}`)
        .join(', ')}\nexit ${report.exit_code}\n`,
    );
  });
  addLockFlags(
    p
      .command('rollback')
      .description("move a pipeline's current pointers back N publishes, or to the state as of a ledger entry (pointers only; no row is touched)")
      .argument('<name>', 'pipeline name')
      .option('--workspace <dir>', 'workspace folder', '.')
      .option('--steps <n>', 'undo the last N publishes in effect', positiveInt('--steps'))
      .option('--to-hash <hash>', 'the state right after this ledger entry (full hash or 8+ hex digits)')
      .option('--dry-run', 'print which pointers would change; change nothing')
      .option('--strict', "refuse (exit 30) when the ledger or a restored run's manifests and rows do not verify")
      .option('--json', 'print JSON')
      .addOption(databaseUrlOption()),
  ).action(async (name: string, o: { workspace: string; steps?: number; toHash?: string; dryRun?: boolean; strict?: boolean; json?: boolean } & LockFlags) => {
    if ((o.steps === undefined) === (o.toHash === undefined)) throw new UsageError('give exactly one of --steps N or --to-hash H');
    if (!o.reason?.trim() && !o.dryRun) throw new UsageError('--reason TEXT is required: it is recorded in the ledger');
    const bundled = await bundledActions(name);
    if (bundled) return bundled.rollback(o);
    const ws = openWorkspace(o.workspace);
    const cfg = loadConfig(ws);
    const pg = backendFor(cfg, o.databaseUrl);
    const def = await loadPipeline(ws, cfg, name);
    const runId = `rollback-${newRunId()}`;
    const report = await runLocked(o.workspace, def.name, runId, { ...o, reason: o.reason }, async (log, _stop, _force, lockLost) => {
      // What a rollback is asked, whichever backend keeps the pointers.
      const ask = (stores: PipelineStores) => ({
        log,
        pipeline: def.name,
        verify: (ptr: CurrentPointer) => verifyPublished(def, stores, ptr),
        target: o.steps !== undefined ? { steps: o.steps } : { toHash: o.toHash! },
        reason: (o.reason ?? '').trim(),
        dryRun: !!o.dryRun,
        strict: !!o.strict,
        runId,
      });
      // On PostgreSQL the ledger entry and every pointer move commit in one transaction.
      const stores = pg ? new PgStores({ setting: pg }) : new FileStores(ws, (msg, d) => log.warn(d, msg));
      try {
        return stores instanceof PgStores ? await pgRollback({ ...ask(stores), stores, fence: (fn) => lockLost.whileHeld(fn) }) : await rollback({ ...ask(stores), ws });
      } finally {
        await stores.close();
      }
    });
    if (o.json) return printJson(report);
    printOut(formatRollback(report));
  });
}

/**
 * A bundled pipeline's own commands behind `pipeline run|backfill|rollback <name>` (Season 1:
 * `s1 run-local|backfill|rollback`, the same code path, `--database-url` included), or null for a
 * workspace's pipeline.
 */
async function bundledActions(name: string): Promise<BundledActions | null> {
  const b = bundledPipeline(name);
  if (!b?.actions) return null;
  return b.actions();
}

/** The rollback report as text (`pipeline rollback` and `s1 rollback`). */
export function formatRollback(report: RollbackReport): string {
  const lines = report.warnings.map((w) => `warning: ${w}`);
  if (report.changes.length === 0) lines.push('nothing to change: the pointers already are in that state');
  for (const c of report.changes) lines.push(`  ${c.date}: ${c.from?.run_id ?? '(none)'} -> ${c.to?.run_id ?? '(none)'}`);
  if (report.changes.length)
    lines.push(
      report.dry_run
        ? `dry run: ${report.changes.length} pointer(s) would change; nothing changed`
        : `moved ${report.changes.length} pointer(s); ledger seq ${report.ledger_entry?.seq} hash ${report.ledger_entry?.hash}`,
    );
  return `${lines.join('\n')}\n`;
}

/**
 * A run is pointed at again (`--strict`) only when every step of it succeeded and each step's rows
 * still hash as its manifest recorded.
 * @throws StateCorruptError naming the step and the run.
 */
async function verifyPublished(def: PipelineDefinition, stores: PipelineStores, ptr: CurrentPointer): Promise<void> {
  const steps = (ptr as CurrentPointer & { steps?: Record<string, string> }).steps ?? {};
  for (const s of validatePipeline(def)) {
    const m = (await stores.manifests.list(def.name, s.name, ptr.date)).find((x) => x.run_id === ptr.run_id);
    if (!m || m.status !== 'success') throw new StateCorruptError(`run ${ptr.run_id} of ${ptr.date} has no successful ${s.name} manifest; refusing to point at it (--strict)`);
    const identity = steps[s.name];
    const now = identity ? await stores.rows(def.name, s.name).digest(ptr.date, identity) : null;
    if (!now || now.sha256 !== m.outputs[0]?.sha256) throw new StateCorruptError(`the ${s.name} rows of ${ptr.date} (run ${ptr.run_id}) no longer match its manifest's hash; refusing (--strict)`);
  }
}

function formatPartition(r: PartitionResult): string {
  return `${r.date}  ${r.status.padEnd(9)}  exit ${r.exit_code}  ${(r.duration_ms / 1000).toFixed(1)}s${r.run_id ? `  run ${r.run_id}` : ''}${r.reason && r.status !== 'published' ? `  (${visible(r.reason)})` : ''}`;
}

/** What a step report shows as a table row (`pipeline run`, `s1 run-local`). */
export interface StepLine {
  step: string;
  status: string;
  duration_ms: number;
  tasks: { total: number; completed: number; retried: number; dead: number };
  outputs: { rows_written: number; rows_present: number }[];
  error?: { message: string };
  manifest: string;
}

/** The text report of a run: a header, a row a step, the failure, the publish, the exit code. */
export function formatRunText(r: {
  header: string;
  steps: readonly StepLine[];
  extra?: string[];
  publish_error?: string;
  pointer: string | null;
  restatement_of?: string | null;
  exit_code: number;
  duration_ms: number;
}): string {
  const rows = r.steps.map((s) => {
    const out = s.outputs[0];
    return [
      `  ${s.step}`,
      s.status,
      `${s.tasks.completed}/${s.tasks.total} tasks${s.tasks.retried ? `, ${s.tasks.retried} retried` : ''}${s.tasks.dead ? `, ${s.tasks.dead} dead` : ''}`,
      out ? `${out.rows_written} rows written, ${out.rows_present} present` : '',
      `${(s.duration_ms / 1000).toFixed(1)}s`,
    ];
  });
  const failed = r.steps.find((s) => s.status === 'failed');
  const lines = [
    r.header,
    table(rows),
    ...(r.extra ?? []),
    failed?.error && !(r.extra ?? []).length ? `failed: ${failed.step}: ${failed.error.message}\n  manifest: ${failed.manifest}` : '',
    r.publish_error ? `publish failed: ${r.publish_error}` : '',
    r.pointer ? `published: ${r.pointer}${r.restatement_of ? ` (restates run ${r.restatement_of})` : ''}` : 'not published',
    `exit ${r.exit_code} in ${(r.duration_ms / 1000).toFixed(1)}s`,
  ];
  return `${lines.filter(Boolean).join('\n')}\n`;
}

/** The text report of `pipeline run`. */
export function formatRun(r: PipelineRunReport): string {
  const tripped = r.checks.filter((c) => c.status === 'fail');
  return formatRunText({
    ...r,
    header: `${r.pipeline} run ${r.date}  run ${r.run_id}  as_of ${r.as_of}${r.provisional ? '  (provisional: the day is not over)' : ''}`,
    extra: [
      ...(r.checks.length ? [`checks: ${r.checks.map((c) => `${c.name} ${c.status}`).join(', ')}`] : []),
      ...tripped.map((c) => `check ${c.name} failed: observed ${JSON.stringify(c.observed)}, expected ${JSON.stringify(c.expected)}`),
    ],
  });
}
