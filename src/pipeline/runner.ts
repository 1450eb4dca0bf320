/**
 * The pipeline runner: the one place that knows steps, partitions, manifests, checks and publish.
 * It runs one partition of a pipeline: every step whose dependencies succeeded (independent steps
 * at once), each on the worker runtime draining only its own tasks; then the checks; then the
 * partition's current pointer, moved atomically and only when everything passed. Everything it
 * persists goes through `PipelineStores`; queues come from `queues`, inputs from `readInput`.
 */
import { ABANDON_GRACE_MS, inProcessHost } from '../runtime/isolation/host.js';
import type { Logger } from 'pino';
import type { QueuePolicy } from '../config/policy.js';
import { isDiskFull, MetaspnError, toMetaspnError, UsageError } from '../guard/errors.js';
import { EXIT, mostSevere } from '../guard/exit-codes.js';
import { RunLockLostError, type RunLockFence } from '../guard/run-lock.js';
import { commitsEffects, type Owner, type Queue } from '../queue/types.js';
import { checkPayload } from '../queue/validate.js';
import { drainFailure } from './outcome.js';
import { memory } from '../runtime/memory.js';
import { drainStage, type StageDrain } from '../runtime/stage.js';
import type { Manifest, ManifestCheck } from '../storage/manifest.js';
import type { WorkspacePaths } from '../storage/paths.js';
import type { CurrentPointer } from '../storage/pointers.js';
import type { PipelineExecution, StepExecution, StepIdentity, StepRun } from './execution.js';
import type { PartitionPlan } from './plan.js';
import type { PipelineStores } from './stores.js';
import type { InputFile, PipelineDefinition } from './types.js';
import { executionOf } from './user-steps.js';

/** What a run needs from its surroundings: injected, so unit tests run it on memory backends. */
export interface RunnerDeps {
  ws: WorkspacePaths;
  stores: PipelineStores;
  /** Opens (or returns) the queue of a step, with its resolved policy. The runner closes what it opened. */
  queue(name: string, defaults: Partial<QueuePolicy>): { queue: Queue; policy: QueuePolicy };
  /** Reads a file under inputs/ (whole), safely inside the workspace. */
  readInput(name: string): InputFile;
  /** Writes an incident report; returns its path. */
  incident(kind: string, subject: string, body: Record<string, unknown>): string;
  log: Logger;
  owner: Owner;
  now?: () => number;
}

export interface RunPartitionOptions extends ExecutionOptions {
  def: PipelineDefinition;
}

/** How to run one partition, whatever the pipeline. */
export interface ExecutionOptions {
  plan: PartitionPlan;
  runId: string;
  retryOf?: string;
  /** Recorded on tasks that run again and on cancelled ones: who asked. */
  by: string;
  stop: AbortSignal;
  force?: AbortSignal;
  /** The run lock's fence: the publish runs inside `whileHeld`; nothing is published once it is lost. */
  lockLost?: RunLockFence;
  /** Checks to skip, each with the operator's reason. */
  skipChecks?: ReadonlyMap<string, string>;
  /**
   * A backfill running partitions at once: resolves once the previous partition of the range has
   * settled, with whether it was published. Steps that read the previous partition (`previous: true`)
   * wait for it; the others run meanwhile. false: the run fails before those steps (exit 11, blocked).
   */
  previousSettled?: () => Promise<boolean>;
  /**
   * A backfill running partitions at once: a step that `commitsInOrder` calls `turn` before it
   * writes what it held back (resolves once the partition before this one in the range is past
   * that step) and `pass` after. The backfill, which owns the sequence, passes every step of a
   * partition when its run ends (a step that never got there gives its turn up).
   */
  sequence?: { turn(step: string): Promise<void>; pass(step: string): void };
  /** Called as each step ends, with its report (progress on a terminal). */
  onStep?: (r: StepReport) => void;
}

/** How one step of the run ended. */
export interface StepReport {
  step: string;
  identity: string;
  status: 'success' | 'failed';
  exit_code: number;
  manifest: string;
  duration_ms: number;
  tasks: Manifest['tasks'];
  outputs: Manifest['outputs'];
  checks: ManifestCheck[];
  error?: { class: string; message: string };
}

/** What `pipeline run` prints (`--json`) and returns. */
export interface PipelineRunReport {
  pipeline: string;
  run_id: string;
  retry_of_run_id?: string;
  date: string;
  as_of: string;
  provisional: boolean;
  status: 'published' | 'failed';
  exit_code: number;
  /** In the order they finished. */
  steps: StepReport[];
  checks: ManifestCheck[];
  /** The run's identity (over its steps' identities) when every step succeeded. */
  identity: string | null;
  /** Where the published pointer is (the file, relative to the workspace; on a database its table and key); null when not published. */
  pointer: string | null;
  /** The run published before this one for the partition, when its identity differed (a restatement). */
  restatement_of: string | null;
  publish_error?: string;
  /** In a backfill: steps reading the previous partition did not run, as it was not published. */
  blocked?: boolean;
  duration_ms: number;
}

/** What a run has under way: the steps' identities, outcomes. */
interface RunState {
  identities: Map<string, StepIdentity>;
  succeeded: Set<string>;
  failed: boolean;
  exit_code: number;
  steps: StepReport[];
  /** A step waiting for the previous partition found it not published (a backfill). */
  blocked?: boolean;
}

/** A step's rows conflict with rows already stored under the same id: corruption or non-determinism (30). */
export class RowConflictError extends MetaspnError {
  readonly unrecoverable = true;
  constructor(message: string, incident: string) {
    super('STATE_CORRUPT', message, {
      hint: `nothing was overwritten; see ${incident}. A step whose code changed on purpose changes its output: bump its params (e.g. {version: 2}) so it gets a new identity`,
      details: { incident },
    });
    this.name = 'RowConflictError';
  }
}

/**
 * Runs one partition of a user's pipeline end to end and publishes it when every step and check
 * passed. The caller holds the pipeline's run lock.
 * @throws PipelineDefinitionError (64) for a definition that breaks a rule; what {@link runExecution} throws.
 */
export async function runPartition(o: RunPartitionOptions, d: RunnerDeps): Promise<PipelineRunReport> {
  const { def, ...rest } = o;
  return runExecution(executionOf(def, d), rest, d);
}

/**
 * Runs one partition of a pipeline end to end: every step whose dependencies succeeded
 * (independent steps at once), each draining only its own tasks and writing its manifest; then
 * the checks; then the partition's current pointer, moved only when everything passed. The
 * caller holds the pipeline's run lock.
 * @throws UsageError (64) for an unknown `--skip-check` name or a run id already used; what the
 *   stores throw when the workspace's state does not read back (30).
 */
export async function runExecution(exec: PipelineExecution, o: ExecutionOptions, d: RunnerDeps): Promise<PipelineRunReport> {
  const now = d.now ?? Date.now;
  const t0 = now();
  const skip = o.skipChecks ?? new Map<string, string>();
  for (const name of skip.keys()) {
    if (!exec.checkNames.includes(name)) throw new UsageError(`--skip-check ${name}: pipeline ${exec.name} has no such check`, { hint: `checks: ${exec.checkNames.join(', ') || '(none)'}` });
  }
  if (
    await d.stores.manifests.hasRun(
      o.runId,
      exec.steps.map((s) => s.name),
    )
  ) {
    throw new UsageError(`--run-id ${o.runId} names a run that already exists; nothing was overwritten`, { hint: 'leave --run-id out (a new id is made), or pick an unused one' });
  }
  const log = d.log.bindings().run_id === o.runId ? d.log.child({ pipeline: exec.name, date: o.plan.partition }) : d.log.child({ pipeline: exec.name, date: o.plan.partition, run_id: o.runId });
  const st: RunState = { identities: new Map(), succeeded: new Set(), failed: false, exit_code: EXIT.SUCCESS, steps: [] };
  const run: StepRun = {
    pipeline: exec.name,
    partition: o.plan.partition,
    as_of: o.plan.as_of,
    provisional: o.plan.provisional,
    run_id: o.runId,
    ...(o.retryOf ? { retry_of: o.retryOf } : {}),
    by: o.by,
    log,
    identities: st.identities,
    steps: st.steps,
    skipChecks: skip,
  };
  log.info({ event: 'run_start', as_of: o.plan.as_of, provisional: o.plan.provisional }, 'run started');
  try {
    return await runSteps(exec, o, d, st, run, t0);
  } finally {
    exec.ended?.(run);
  }
}

async function runSteps(exec: PipelineExecution, o: ExecutionOptions, d: RunnerDeps, st: RunState, run: StepRun, t0: number): Promise<PipelineRunReport> {
  const now = d.now ?? Date.now;
  const log = run.log;
  // The DAG: start every step whose dependencies succeeded; a failed step starts nothing after it.
  const started = new Set<string>();
  const running = new Map<string, Promise<void>>();
  let gate: Promise<boolean> | null = null;
  for (;;) {
    if (!st.failed && !o.stop.aborted) {
      for (const s of exec.steps) {
        if (started.has(s.name) || !s.after.every((x) => st.succeeded.has(x))) continue;
        started.add(s.name);
        const go = async (): Promise<void> => {
          if (s.previous && o.previousSettled) {
            gate ??= o.previousSettled();
            if (!(await gate)) {
              st.failed = true;
              st.blocked = true;
              st.exit_code = mostSevere([st.exit_code, EXIT.BUSINESS_SKIP]);
              log.warn({ event: 'step_blocked', step: s.name }, `${s.name} not run: the previous partition was not published`);
              return;
            }
          }
          await runStep(exec, o, d, st, s, run);
        };
        running.set(
          s.name,
          go().finally(() => running.delete(s.name)),
        );
      }
    }
    if (running.size === 0) break;
    await Promise.race(running.values());
  }

  let checks: ManifestCheck[] = [];
  let pointer: string | null = null;
  let restated: string | null = null;
  let publishError: string | undefined;
  let identity: string | null = null;
  const complete = !st.failed && exec.steps.every((s) => st.succeeded.has(s.name));
  if (!complete && !st.failed) {
    // Stopped before every step ran.
    st.failed = true;
    st.exit_code = mostSevere([st.exit_code, EXIT.BUSINESS_SKIP]);
  }
  if (complete) {
    const record = await exec.publishes(run);
    identity = record.summary_id;
    const last = st.steps[st.steps.length - 1]!;
    // A check is the user's code too: a stop ends a check that never settles (11), nothing published.
    const ran = await untilStopped(exec.checks(run), o.stop, 'the checks').then(
      (c) => c,
      (err: unknown) => {
        if (!o.stop.aborted) throw err;
        return toMetaspnError(err);
      },
    );
    if (ran instanceof Error) {
      st.failed = true;
      st.exit_code = mostSevere([st.exit_code, EXIT.BUSINESS_SKIP]);
      log.warn({ event: 'checks_stopped' }, ran.message);
      await amendManifest(d, exec, o, last, { status: 'failed', error: { class: 'Stopped', message: ran.message }, exit_code: EXIT.BUSINESS_SKIP });
    } else if ((checks = ran).some((c) => c.status === 'fail')) {
      const tripped = checks.filter((c) => c.status === 'fail');
      st.failed = true;
      st.exit_code = EXIT.ANOMALY_HALT;
      await amendManifest(d, exec, o, last, {
        checks: [...last.checks, ...checks],
        status: 'failed',
        error: { class: 'AnomalyHalt', message: `check ${tripped.map((c) => c.name).join(', ')} failed; nothing published, see reports/incidents/` },
        exit_code: EXIT.ANOMALY_HALT,
      });
    } else {
      if (checks.length) await amendManifest(d, exec, o, last, { checks: [...last.checks, ...checks] });
      try {
        const r = await publish(exec, o, d, run, record);
        pointer = r.pointer;
        restated = r.restated;
      } catch (err) {
        const e = toMetaspnError(err);
        st.failed = true;
        st.exit_code = err instanceof RunLockLostError ? EXIT.STATE_CORRUPT : e.exitCode;
        publishError = `${e.message}${e.hint ? ` (${e.hint})` : ''}`;
        if (err instanceof RunLockLostError) log.error({ event: 'publish_refused', error: e.message }, 'run lock was lost during the run: not publishing');
        else log.error({ event: 'publish_failed', error: e.message }, 'not published');
        await amendManifest(d, exec, o, last, { status: 'failed', error: { class: 'PublishFailed', message: e.message }, exit_code: st.exit_code });
      }
    }
  }
  const report: PipelineRunReport = {
    pipeline: exec.name,
    run_id: o.runId,
    ...(o.retryOf ? { retry_of_run_id: o.retryOf } : {}),
    date: o.plan.partition,
    as_of: o.plan.as_of,
    provisional: o.plan.provisional,
    status: pointer ? 'published' : 'failed',
    exit_code: pointer ? EXIT.SUCCESS : st.exit_code === EXIT.SUCCESS ? EXIT.INTERNAL_ERROR : st.exit_code,
    steps: st.steps,
    checks,
    identity,
    pointer,
    restatement_of: restated,
    ...(publishError ? { publish_error: publishError } : {}),
    ...(st.blocked ? { blocked: true } : {}),
    duration_ms: now() - t0,
  };
  log.info({ event: 'run_end', status: report.status, rc: report.exit_code, duration_ms: report.duration_ms, ...memory() }, 'run finished');
  return report;
}

/** One step: identity, plan, enqueue (superseding older runs' open tasks), drain its own tasks, outputs, checks, manifest. */
async function runStep(exec: PipelineExecution, o: ExecutionOptions, d: RunnerDeps, st: RunState, s: StepExecution, runView: StepRun): Promise<void> {
  const now = d.now ?? Date.now;
  const started = new Date(now());
  const log = runView.log.child({ step: s.name });
  const run: StepRun = { ...runView, log };
  let id: StepIdentity | null = null;
  let drain: StageDrain = { total: 0, enqueued: 0, rerun: 0, already_queued: 0, completed: 0, retried: 0, dead: [], unsettled: 0, paused: false };
  let error: { class: string; message: string } | undefined;
  let exit_code: number = EXIT.SUCCESS;
  let outputs: Manifest['outputs'] = [];
  let checks: ManifestCheck[] = [];
  let cancelled: string[] = [];
  const held = s.commitsInOrder && o.sequence !== undefined;
  log.info({ event: 'stage_start', stage: s.name }, `${s.name} started`);
  try {
    id = await untilStopped(s.identify(run), o.stop, `${s.name}: its identity`);
    st.identities.set(s.name, id);
    const group = `${exec.name}/${o.plan.partition}`;
    const planned = await untilStopped(s.tasks(run, id), o.stop, `${s.name}: its plan`);
    const tasks = planned.map((t) => ({ id: t.id, group, payload: t.payload }));
    for (const t of tasks) {
      // What a queue refuses from `queue enqueue` (a payload past payload_bytes) is refused here too, naming the task.
      const big = checkPayload(t.payload);
      if (big) throw new UsageError(`pipeline ${exec.name}: step ${s.name}: the task ${t.id} is too big: ${big}`, { hint: 'plan smaller tasks: pass keys and let the handler read what it needs' });
    }
    const { queue, policy } = d.queue(s.queue, s.defaults);
    // A queue that commits effects with the completion (PostgreSQL) writes a task's rows and its acknowledgement together.
    const { worker, init } = s.worker(run, id, { held, atomicEffects: commitsEffects(queue) && queue.atomic });
    try {
      // Open tasks an older run of this partition left in this queue are superseded by this run's.
      cancelled = await queue.cancel({ group, keep: new Set(tasks.map((t) => t.id)), by: o.by, reason: `superseded by run ${o.runId}` });
      if (cancelled.length) log.info({ event: 'tasks_cancelled', count: cancelled.length, ids: cancelled.slice(0, 20) }, `${cancelled.length} task(s) of an older run cancelled`);
      await worker.init?.(init);
      try {
        const res = await drainStage({
          queue,
          worker,
          policy: { ...policy, concurrency: Math.max(1, policy.concurrency) },
          owner: d.owner,
          init,
          groups: [tasks],
          by: o.by,
          stop: o.stop,
          ...(o.force ? { force: o.force } : {}),
          // A handler that ignores its stop is given up after a grace, and the run ends (50)
          // instead of waiting for it forever: a step writes only what its handler returns.
          host: inProcessHost(worker, { abandonAfterMs: ABANDON_GRACE_MS }),
        });
        drain = res.groups[0]!;
      } finally {
        await worker.close?.();
      }
    } catch (err) {
      // The disk filled up mid-step: the runtime gave the tasks back; the manifest says so when
      // there is still room to write one, and the command fails with the cause.
      if (isDiskFull(err)) drain = { ...drain, total: tasks.length, unsettled: tasks.length };
      throw err;
    } finally {
      await queue.close();
    }
    if (held) await o.sequence!.turn(s.name);
    try {
      outputs = await s.outputs(run, id);
    } finally {
      if (held) o.sequence!.pass(s.name);
    }
    const failure = drainFailure(s.queue, drain, o.stop.aborted);
    if (failure) {
      error = failure.error;
      exit_code = failure.exit;
    } else if (s.checks) {
      const c = await s.checks(run, id, outputs);
      checks = c.checks;
      if (c.failure) {
        error = c.failure.error;
        exit_code = c.failure.exit_code;
      }
    }
  } catch (err) {
    // A stop that left tasks unfinished is what ended the step (11), whatever reading its outputs threw.
    const stopped = o.stop.aborted ? drainFailure(s.queue, drain, true) : null;
    const e = toMetaspnError(err);
    error = stopped?.error ?? { class: (err as Error)?.name ?? 'Error', message: e.message };
    exit_code = stopped?.exit ?? e.exitCode;
    if (isDiskFull(err) && !stopped) {
      await recordStep(exec, o, d, st, s, run, id, { started, drain, outputs, checks, cancelled, error, exit_code }).catch(() => undefined);
      throw err;
    }
  }
  await recordStep(exec, o, d, st, s, run, id, { started, drain, outputs, checks, cancelled, ...(error ? { error } : {}), exit_code });
}

/**
 * A step's own code before it has tasks (its digest hook, its planner), awaited until it settles or
 * a stop is requested: nothing is enqueued yet, so a stop ends the step at once (11) instead of
 * waiting on code that may never settle, which no signal could otherwise end.
 */
function untilStopped<T>(p: Promise<T>, stop: AbortSignal, what: string): Promise<T> {
  const stopped = (): MetaspnError => new MetaspnError('BUSINESS_SKIP', `${what} not finished (stop requested); re-run to continue`);
  if (stop.aborted) return Promise.reject(stopped());
  return new Promise<T>((resolve, reject) => {
    const onStop = (): void => reject(stopped());
    stop.addEventListener('abort', onStop, { once: true });
    p.then(
      (v) => {
        stop.removeEventListener('abort', onStop);
        resolve(v);
      },
      (err: unknown) => {
        stop.removeEventListener('abort', onStop);
        reject(err);
      },
    );
  });
}

/** Writes a step's manifest and takes its outcome into the run. */
async function recordStep(
  exec: PipelineExecution,
  o: ExecutionOptions,
  d: RunnerDeps,
  st: RunState,
  s: StepExecution,
  run: StepRun,
  id: StepIdentity | null,
  r: { started: Date; drain: StageDrain; outputs: Manifest['outputs']; checks: ManifestCheck[]; cancelled: string[]; error?: { class: string; message: string }; exit_code: number },
): Promise<void> {
  const finished = new Date((d.now ?? Date.now)());
  const { drain, error, exit_code } = r;
  const manifest: Manifest & Record<string, unknown> = {
    schema_version: 1,
    pipeline: exec.name,
    run_id: o.runId,
    ...(o.retryOf ? { retry_of_run_id: o.retryOf } : {}),
    step: s.name,
    date: o.plan.partition,
    as_of: o.plan.as_of,
    params: id?.params ?? {},
    ...(o.plan.provisional ? { provisional: true } : {}),
    identity: id?.identity ?? '',
    upstream: Object.fromEntries(s.after.map((u) => [u, { run_id: o.runId, identity: st.identities.get(u)?.identity ?? null }])),
    ...(id?.manifest ?? {}),
    ...(r.cancelled.length ? { cancelled_tasks: r.cancelled.length } : {}),
    status: error ? 'failed' : 'success',
    started_at: r.started.toISOString(),
    finished_at: finished.toISOString(),
    duration_ms: finished.getTime() - r.started.getTime(),
    tasks: { total: drain.total, enqueued: drain.enqueued, rerun: drain.rerun, already_queued: drain.already_queued, completed: drain.completed, retried: drain.retried, dead: drain.dead.length },
    inputs: id?.inputs ?? [],
    outputs: r.outputs,
    checks: r.checks,
    ...(error ? { error } : {}),
    exit_code,
  };
  const path = await d.stores.manifests.write(manifest);
  const report: StepReport = {
    step: s.name,
    identity: id?.identity ?? '',
    status: manifest.status,
    exit_code,
    manifest: path,
    duration_ms: manifest.duration_ms,
    tasks: manifest.tasks,
    outputs: r.outputs,
    checks: r.checks,
    ...(error ? { error } : {}),
  };
  st.steps.push(report);
  o.onStep?.(report);
  if (error) {
    st.failed = true;
    st.exit_code = mostSevere([st.exit_code, exit_code]);
  } else st.succeeded.add(s.name);
  run.log.info({ event: 'stage_end', stage: s.name, status: manifest.status, rc: exit_code, duration_ms: manifest.duration_ms, tasks: manifest.tasks, ...memory() }, `${s.name} ${manifest.status}`);
}

async function amendManifest(d: RunnerDeps, exec: PipelineExecution, o: ExecutionOptions, r: StepReport, change: Partial<Manifest>): Promise<void> {
  const m = (await d.stores.manifests.list(exec.name, r.step, o.plan.partition)).find((x) => x.run_id === o.runId);
  if (!m) return;
  await d.stores.manifests.write({ ...m, ...change });
  if (change.status) r.status = change.status;
  if (change.exit_code !== undefined) r.exit_code = change.exit_code;
  if (change.error) r.error = change.error;
  if (change.checks) r.checks = change.checks;
}

/**
 * Moves the partition's current pointer to this run: a ledger entry first (durable), then the
 * pointer, both inside the run lock's fence (a holder that lost the lock writes neither). A
 * publish whose summary id differs from the current one is recorded as a restatement of the run
 * it replaces.
 */
async function publish(
  exec: PipelineExecution,
  o: ExecutionOptions,
  d: RunnerDeps,
  run: StepRun,
  record: Awaited<ReturnType<PipelineExecution['publishes']>>,
): Promise<{ pointer: string; restated: string | null }> {
  if (o.lockLost?.()) throw new RunLockLostError(exec.name, null);
  // Under the run lock nobody else moves this pipeline's pointers: what is read here stays current.
  const previous = await d.stores.pointers.read(exec.name, o.plan.partition);
  const pointer: CurrentPointer & Record<string, unknown> = {
    pipeline: exec.name,
    date: o.plan.partition,
    run_id: o.runId,
    summary_id: record.summary_id,
    published_at: new Date((d.now ?? Date.now)()).toISOString(),
    params: record.params,
    ...(record.pointer ?? {}),
    ...(o.plan.provisional ? { provisional: true } : {}),
  };
  const restated = previous && previous.summary_id !== record.summary_id ? previous.run_id : null;
  const skipped = [...(o.skipChecks ?? new Map<string, string>())].map(([name, reason]) => ({ name, reason }));
  const detail = {
    pipeline: exec.name,
    date: o.plan.partition,
    pointer,
    previous,
    ...(restated ? { restatement_of: restated } : previous ? { replay_of: previous.run_id } : {}),
    ...(o.plan.provisional ? { provisional: true } : {}),
    ...(skipped.length ? { skipped_checks: skipped } : {}),
  };
  // The entry and the pointer inside the lock's fence: one transaction on a database.
  await d.stores.publish(pointer, { kind: 'publish', detail, runId: o.runId }, o.lockLost);
  exec.published?.(run);
  run.log.info(
    { event: 'published', summary_id: record.summary_id, ...(restated ? { restatement_of: restated } : {}) },
    restated ? `published ${o.plan.partition}, restating run ${restated}` : `published ${o.plan.partition}`,
  );
  return { pointer: d.stores.pointers.location(exec.name, o.plan.partition), restated };
}

/**
 * Cancels the open tasks of a partition that a backfill's `--resume` skips because a run already
 * published it with the identity a run would have now. An interrupted later run can leave tasks of
 * that partition ready (a re-run takes completed tasks back to ready before it drains them), or
 * leased by its dead process; nothing would ever drain them. Returns how many were cancelled.
 */
export async function cancelLeftovers(exec: Pick<PipelineExecution, 'name' | 'steps'>, partition: string, publishedBy: string, d: RunnerDeps, by: string): Promise<number> {
  let n = 0;
  for (const s of exec.steps) {
    const { queue } = d.queue(s.queue, s.defaults);
    try {
      // A lease of the interrupted run's dead process goes back to ready first, then is cancelled too.
      await queue.reclaimExpired();
      const ids = await queue.cancel({ group: `${exec.name}/${partition}`, keep: new Set(), by, reason: `left by an interrupted run; ${partition} is published by run ${publishedBy}` });
      if (ids.length)
        d.log.info(
          { event: 'tasks_cancelled', pipeline: exec.name, step: s.name, date: partition, count: ids.length, ids: ids.slice(0, 20) },
          `${ids.length} task(s) of ${s.name} left by an interrupted run cancelled`,
        );
      n += ids.length;
    } finally {
      await queue.close();
    }
  }
  return n;
}
