/**
 * The pipeline runner: the one place that knows steps, partitions, manifests, checks and publish.
 * It runs one partition of a pipeline: every step whose dependencies succeeded (independent steps
 * at once), each on the worker runtime draining only its own tasks; then the checks; then the
 * partition's current pointer, moved atomically and only when everything passed. Everything it
 * persists goes through `PipelineStores`; queues come from `queues`, inputs from `readInput`.
 */
import type { Logger } from 'pino';
import type { QueuePolicy } from '../config/policy.js';
import { DataInvalidError, MetaspnError, toMetaspnError, UsageError } from '../guard/errors.js';
import { EXIT, mostSevere } from '../guard/exit-codes.js';
import { RunLockLostError, type RunLockFence } from '../guard/run-lock.js';
import type { Owner, Queue } from '../queue/types.js';
import { checkPayload } from '../queue/validate.js';
import { jsonProblem } from './json-value.js';
import { drainFailure } from './outcome.js';
import { drainStage, type StageDrain } from '../runtime/stage.js';
import { ContractError, type WorkerContext, type WorkerDefinition, type WorkerInitContext, type WorkerTask } from '../runtime/worker-api.js';
import type { Manifest, ManifestCheck } from '../storage/manifest.js';
import type { WorkspacePaths } from '../storage/paths.js';
import type { CurrentPointer } from '../storage/pointers.js';
import { ancestors, queueOf, rowId, runIdentity, stepIdentity, taskId, validatePipeline, type PartitionPlan } from './plan.js';
import type { PipelineStores, RowStore } from './stores.js';
import type { InputFile, Json, PartitionContext, PipelineDefinition, StepDefinition, StepRow, StepTaskContext, StepTaskPayload, StoredRow } from './types.js';

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

export interface RunPartitionOptions {
  def: PipelineDefinition;
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
  /** The pointer file when published. */
  pointer: string | null;
  /** The run published before this one for the partition, when its identity differed (a restatement). */
  restatement_of: string | null;
  publish_error?: string;
  /** In a backfill: steps reading the previous partition did not run, as it was not published. */
  blocked?: boolean;
  duration_ms: number;
}

/** What a run has under way: the steps' identities (what `ctx.upstream` reads under), outcomes, inputs read. */
export interface RunState {
  identities: Map<string, string>;
  succeeded: Set<string>;
  failed: boolean;
  exit_code: number;
  steps: StepReport[];
  inputs: Map<string, InputFile>;
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
 * Runs one partition of a pipeline end to end and publishes it when every step and check passed.
 * The caller holds the pipeline's run lock.
 * @throws UsageError (64) for an unknown `--skip-check` name or a run id already used; what the
 *   stores throw when the workspace's state does not read back (30).
 */
export async function runPartition(o: RunPartitionOptions, d: RunnerDeps): Promise<PipelineRunReport> {
  const now = d.now ?? Date.now;
  const t0 = now();
  const order = validatePipeline(o.def);
  const skip = o.skipChecks ?? new Map<string, string>();
  const checkNames = (o.def.checks ?? []).map((c) => c.name);
  for (const name of skip.keys()) {
    if (!checkNames.includes(name)) throw new UsageError(`--skip-check ${name}: pipeline ${o.def.name} has no such check`, { hint: `checks: ${checkNames.join(', ') || '(none)'}` });
  }
  if (await d.stores.manifests.hasRun(o.runId, order.map((s) => s.name))) {
    throw new UsageError(`--run-id ${o.runId} names a run that already exists; nothing was overwritten`, { hint: 'leave --run-id out (a new id is made), or pick an unused one' });
  }
  const log = d.log.child({ pipeline: o.def.name, date: o.plan.partition });
  const st = newRunState();
  log.info({ event: 'run_start', run_id: o.runId, as_of: o.plan.as_of, provisional: o.plan.provisional }, 'run started');

  // The DAG: start every step whose dependencies succeeded; a failed step starts nothing after it.
  const started = new Set<string>();
  const running = new Map<string, Promise<void>>();
  let gate: Promise<boolean> | null = null;
  for (;;) {
    if (!st.failed && !o.stop.aborted) {
      for (const s of order) {
        if (started.has(s.name) || !(s.after ?? []).every((x) => st.succeeded.has(x))) continue;
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
          await runStep(o, d, st, s, log);
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
  const complete = !st.failed && order.every((s) => st.succeeded.has(s.name));
  if (!complete && !st.failed) {
    // Stopped before every step ran.
    st.failed = true;
    st.exit_code = mostSevere([st.exit_code, EXIT.BUSINESS_SKIP]);
  }
  const identity = complete ? runIdentity(Object.fromEntries(order.map((s) => [s.name, st.identities.get(s.name)!]))) : null;
  if (complete) {
    checks = await runChecks(o, d, st, log);
    const tripped = checks.filter((c) => c.status === 'fail');
    const last = st.steps[st.steps.length - 1]!;
    if (tripped.length) {
      st.failed = true;
      st.exit_code = EXIT.ANOMALY_HALT;
      await amendManifest(d, o, last, {
        checks,
        status: 'failed',
        error: { class: 'AnomalyHalt', message: `check ${tripped.map((c) => c.name).join(', ')} failed; nothing published, see reports/incidents/` },
        exit_code: EXIT.ANOMALY_HALT,
      });
    } else {
      if (checks.length) await amendManifest(d, o, last, { checks });
      try {
        const r = await publish(o, d, st, order, identity!, log);
        pointer = r.pointer;
        restated = r.restated;
      } catch (err) {
        const e = toMetaspnError(err);
        st.failed = true;
        st.exit_code = err instanceof RunLockLostError ? EXIT.STATE_CORRUPT : e.exitCode;
        publishError = `${e.message}${e.hint ? ` (${e.hint})` : ''}`;
        log.error({ event: 'publish_failed', error: e.message }, 'not published');
        await amendManifest(d, o, last, { status: 'failed', error: { class: 'PublishFailed', message: e.message }, exit_code: st.exit_code });
      }
    }
  }
  const report: PipelineRunReport = {
    pipeline: o.def.name,
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
  log.info({ event: 'run_end', run_id: o.runId, status: report.status, rc: report.exit_code, duration_ms: report.duration_ms }, 'run finished');
  return report;
}

export function newRunState(): RunState {
  return { identities: new Map(), succeeded: new Set(), failed: false, exit_code: EXIT.SUCCESS, steps: [], inputs: new Map() };
}

/** The read-only view a step's planner, digest hook and checks get (`s` null: a check's, which may read every step). */
export function contextFor(o: Pick<RunPartitionOptions, 'def' | 'plan'>, d: RunnerDeps, st: RunState, s: StepDefinition<unknown> | null): PartitionContext {
  const declared = new Set(s ? (s.inputs ?? []) : o.def.steps.flatMap((x) => x.inputs ?? []));
  const upstream = s ? ancestors(o.def, s.name) : new Set(o.def.steps.map((x) => x.name));
  const who = s ? `step ${s.name}` : 'a check';
  return {
    pipeline: o.def.name,
    partition: o.plan.partition,
    as_of: o.plan.as_of,
    provisional: o.plan.provisional,
    input(name) {
      if (!declared.has(name)) throw new UsageError(`pipeline ${o.def.name}: ${who} reads input ${name} it does not declare in inputs`);
      let f = st.inputs.get(name);
      if (!f) {
        f = d.readInput(name);
        st.inputs.set(name, f);
      }
      return f;
    },
    async upstream(step) {
      if (!upstream.has(step)) throw new UsageError(`pipeline ${o.def.name}: ${who} reads step ${step}, which is not upstream of it (add it to after)`);
      const id = st.identities.get(step);
      if (id === undefined) throw new UsageError(`pipeline ${o.def.name}: step ${step} has not run in this run`);
      return d.stores.rows(o.def.name, step).rows(o.plan.partition, id);
    },
    async previous(step) {
      if (s && !s.previous) throw new UsageError(`pipeline ${o.def.name}: step ${s.name} reads the previous partition; declare previous: true`);
      const prev = await previousPointer(o, d);
      const id = prev?.steps?.[step];
      if (!prev || id === undefined) return null;
      return d.stores.rows(o.def.name, step).rows(prev.date, id);
    },
  };
}

function previousDate(partition: string): string {
  return new Date(Date.parse(`${partition}T00:00:00Z`) - 86_400_000).toISOString().slice(0, 10);
}

async function previousPointer(o: Pick<RunPartitionOptions, 'def' | 'plan'>, d: RunnerDeps): Promise<(CurrentPointer & { steps?: Record<string, string> }) | null> {
  return d.stores.pointers.read(o.def.name, previousDate(o.plan.partition));
}

/** A step's identity now, and the inputs it covers (for its manifest). */
export async function identityOf(o: Pick<RunPartitionOptions, 'def' | 'plan'>, d: RunnerDeps, st: RunState, s: StepDefinition<unknown>, ctx: PartitionContext): Promise<{ identity: string; inputs: Manifest['inputs']; previous: string | null }> {
  const files = (s.inputs ?? []).map((n) => ctx.input(n));
  // A declared input that is missing would read as empty and publish empty outputs as a
  // restatement of good ones: the step does not run.
  const missing = files.find((f) => !f.exists);
  if (missing) throw new DataInvalidError(missing.path, null, `step ${s.name} of pipeline ${o.def.name} reads this input, and it is missing; nothing of the step ran`, { hint: 'restore the file (or remove it from the step\'s inputs), then run the same command again' });
  const inputs: Manifest['inputs'] = files.map((f) => ({ path: f.path, sha256: f.sha256, rows: f.text === '' ? 0 : f.text.split('\n').filter((l) => l.trim() !== '').length }));
  const digest: Json = s.digest ? await s.digest(ctx) : Object.fromEntries(files.map((f) => [f.name, f.sha256]));
  const bad = s.digest ? jsonProblem(digest, 'digest') : null;
  if (bad) throw new UsageError(`pipeline ${o.def.name}: step ${s.name}: digest() must return JSON: ${bad}`);
  const prev = s.previous ? await previousPointer(o, d) : null;
  // The identity covers what the previous partition published (its run identity), not which run
  // published it: a replay of that partition moves its pointer to a new run id with the same rows.
  const previous = prev?.run_id ?? null;
  const upstream = Object.fromEntries((s.after ?? []).map((u) => [u, st.identities.get(u)!]));
  const identity = stepIdentity({
    pipeline: o.def.name,
    step: s.name,
    partition: o.plan.partition,
    as_of: o.plan.as_of,
    params: (s.params ?? {}) as Json,
    inputs: digest,
    upstream,
    previous: prev?.summary_id ?? null,
  });
  return { identity, inputs, previous };
}

const MAX_KEY = 200;

/** One step: identity, plan, enqueue (superseding older runs' open tasks), drain its own tasks, manifest. */
async function runStep(o: RunPartitionOptions, d: RunnerDeps, st: RunState, s: StepDefinition<unknown>, runLog: Logger): Promise<void> {
  const now = d.now ?? Date.now;
  const started = new Date(now());
  const log = runLog.child({ step: s.name });
  const ctx = contextFor(o, d, st, s);
  const queueName = queueOf(o.def, s);
  const store = d.stores.rows(o.def.name, s.name);
  let identity = '';
  let inputs: Manifest['inputs'] = [];
  let previous: string | null = null;
  let drain: StageDrain = { total: 0, enqueued: 0, rerun: 0, already_queued: 0, completed: 0, retried: 0, dead: [], unsettled: 0, paused: false };
  let error: { class: string; message: string } | undefined;
  let exit_code: number = EXIT.SUCCESS;
  let outputs: Manifest['outputs'] = [];
  let cancelled: string[] = [];
  const counts = { written: 0, present: 0 };
  log.info({ event: 'step_start' }, `${s.name} started`);
  try {
    ({ identity, inputs, previous } = await identityOf(o, d, st, s, ctx));
    st.identities.set(s.name, identity);
    const planned = await s.plan(ctx);
    if (!Array.isArray(planned)) throw new UsageError(`pipeline ${o.def.name}: step ${s.name}: plan() must return an array of {key, payload}`);
    const keys = new Set<string>();
    for (const t of planned as { key: unknown }[]) {
      if (typeof t?.key !== 'string' || t.key === '' || t.key.length > MAX_KEY) throw new UsageError(`pipeline ${o.def.name}: step ${s.name}: every planned task needs a key of 1-${MAX_KEY} characters, got ${JSON.stringify(t?.key)}`);
      if (keys.has(t.key)) throw new UsageError(`pipeline ${o.def.name}: step ${s.name}: plan() returned key ${t.key} twice`);
      keys.add(t.key);
      const bad = jsonProblem((t as { payload?: unknown }).payload, 'payload');
      if (bad) throw new UsageError(`pipeline ${o.def.name}: step ${s.name}: the task of key ${t.key}: tasks are stored as JSON: ${bad}`);
    }
    const group = `${o.def.name}/${o.plan.partition}`;
    const tasks = planned.map((t) => ({
      id: taskId(o.def.name, s.name, o.plan.partition, t.key, identity),
      group,
      payload: { pipeline: o.def.name, step: s.name, date: o.plan.partition, as_of: o.plan.as_of, identity, key: t.key, input: t.payload } satisfies StepTaskPayload<unknown>,
    }));
    for (const t of tasks) {
      // What a queue refuses from `queue enqueue` (a payload past payload_bytes) is refused here too, naming the task.
      const big = checkPayload(t.payload);
      if (big) throw new UsageError(`pipeline ${o.def.name}: step ${s.name}: the task of key ${t.payload.key} is too big: ${big}`, { hint: 'plan smaller tasks: pass keys and let the handler read what it needs' });
    }
    const { queue, policy } = d.queue(queueName, { ...(s.worker.defaults ?? {}), ...(s.policy ?? {}) });
    const worker = stepWorker(o, d, s, queueName, identity, store, counts);
    const init: WorkerInitContext = { logger: log, workspace: d.ws, env: { pipeline: o.def.name, step: s.name } };
    try {
      // Open tasks an older run of this partition left in this queue are superseded by this run's.
      cancelled = await queue.cancel({ group, keep: new Set(tasks.map((t) => t.id)), by: o.by, reason: `superseded by run ${o.runId}` });
      if (cancelled.length) log.info({ event: 'tasks_cancelled', count: cancelled.length }, `${cancelled.length} task(s) of an older run cancelled`);
      await worker.init?.(init);
      try {
        const res = await drainStage({ queue, worker, policy: { ...policy, concurrency: Math.max(1, policy.concurrency) }, owner: d.owner, init, groups: [tasks], by: o.by, stop: o.stop, ...(o.force ? { force: o.force } : {}) });
        drain = res.groups[0]!;
      } finally {
        await worker.close?.();
      }
    } finally {
      await queue.close();
    }
    const out = await store.digest(o.plan.partition, identity);
    // Rows found already stored (a replay) are present, not written; the digest covers both.
    const written = Math.min(counts.written, out.rows);
    outputs = [{ path: store.location, rows_written: written, rows_present: out.rows - written, sha256: out.sha256 }];
    const failure = drainFailure(queueName, drain, o.stop.aborted);
    if (failure) {
      error = failure.error;
      exit_code = failure.exit;
    }
  } catch (err) {
    // A stop that left tasks unfinished is what ended the step (11), whatever reading its outputs threw.
    const stopped = o.stop.aborted ? drainFailure(queueName, drain, true) : null;
    const e = toMetaspnError(err);
    error = stopped?.error ?? { class: (err as Error)?.name ?? 'Error', message: e.message };
    exit_code = stopped?.exit ?? e.exitCode;
  }
  const finished = new Date(now());
  const manifest: Manifest & Record<string, unknown> = {
    schema_version: 1,
    pipeline: o.def.name,
    run_id: o.runId,
    ...(o.retryOf ? { retry_of_run_id: o.retryOf } : {}),
    step: s.name,
    date: o.plan.partition,
    as_of: o.plan.as_of,
    params: { identity, ...(s.params ?? {}) },
    ...(o.plan.provisional ? { provisional: true } : {}),
    identity,
    upstream: Object.fromEntries((s.after ?? []).map((u) => [u, { run_id: o.runId, identity: st.identities.get(u) ?? null }])),
    ...(s.previous ? { previous_run_id: previous } : {}),
    ...(cancelled.length ? { cancelled_tasks: cancelled.length } : {}),
    status: error ? 'failed' : 'success',
    started_at: started.toISOString(),
    finished_at: finished.toISOString(),
    duration_ms: finished.getTime() - started.getTime(),
    tasks: { total: drain.total, enqueued: drain.enqueued, rerun: drain.rerun, already_queued: drain.already_queued, completed: drain.completed, retried: drain.retried, dead: drain.dead.length },
    inputs,
    outputs,
    checks: [],
    ...(error ? { error } : {}),
    exit_code,
  };
  const path = await d.stores.manifests.write(manifest);
  const report: StepReport = { step: s.name, identity, status: manifest.status, exit_code, manifest: path, duration_ms: manifest.duration_ms, tasks: manifest.tasks, outputs, checks: [], ...(error ? { error } : {}) };
  st.steps.push(report);
  o.onStep?.(report);
  if (error) {
    st.failed = true;
    st.exit_code = mostSevere([st.exit_code, exit_code]);
  } else st.succeeded.add(s.name);
  log.info({ event: 'step_end', status: manifest.status, rc: exit_code, duration_ms: manifest.duration_ms, tasks: manifest.tasks }, `${s.name} ${manifest.status}`);
}

/**
 * The worker the runtime drains a step's queue with: checks the task belongs to this run's
 * identity, runs the step's handler in process, stores its rows before the task counts as done.
 */
function stepWorker(o: RunPartitionOptions, d: RunnerDeps, s: StepDefinition<unknown>, queue: string, identity: string, store: RowStore, counts: { written: number; present: number }): WorkerDefinition<StepTaskPayload<unknown>> {
  const inner = s.worker;
  return {
    name: queue,
    isolation: 'none',
    ...(inner.defaults ? { defaults: inner.defaults } : {}),
    init: (ctx) => inner.init?.(ctx),
    close: () => inner.close?.(),
    async handle(task: WorkerTask<StepTaskPayload<unknown>>, ctx: WorkerContext): Promise<void> {
      const p = task.payload;
      if (p?.identity !== identity || p.step !== s.name || p.date !== o.plan.partition) {
        throw new ContractError(`task ${task.id} belongs to ${p?.step ?? '?'} ${p?.date ?? '?'} identity ${p?.identity ?? '?'}, not to this run's ${s.name} ${o.plan.partition} identity ${identity}: its inputs no longer match`);
      }
      let input: unknown = p.input;
      if (inner.payload) {
        const r = inner.payload.safeParse(input);
        if (!r.success) throw new ContractError(`step ${s.name}: payload of task ${p.key}: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
        input = r.data;
      }
      const step: StepTaskContext = { pipeline: o.def.name, step: s.name, partition: p.date, as_of: p.as_of, identity, key: p.key };
      const rows = await inner.handle({ ...task, payload: input }, { ...ctx, step });
      const stored = storedRows(o.def.name, s.name, p.date, identity, rows);
      if (stored.length === 0) return;
      const put = await store.put(stored);
      if (put.conflicts.length) {
        const c = put.conflicts[0]!;
        const incident = d.incident('replay_conflict', c.id, {
          store: store.location,
          id: c.id,
          date: p.date,
          run_id: o.runId,
          existing: JSON.parse(c.existing) as unknown,
          incoming: JSON.parse(c.incoming) as unknown,
          conflicts: put.conflicts.length,
          note: 'nothing was overwritten: the same identity produced different content (a non-deterministic step, or the store was changed)',
        });
        throw new RowConflictError(`replay conflict: ${store.location} already holds ${c.id} with different content (step ${s.name} is not deterministic, or its code changed without its params)`, incident);
      }
      counts.written += put.written;
      counts.present += put.present;
    },
  };
}

/**
 * Checks a handler's rows and gives them their ids.
 * @throws ContractError for rows that are not `{key, ...}` objects, a key twice, or a value that is
 *   not plain JSON (NaN, a BigInt, a Date, `undefined`…: {@link jsonProblem}).
 */
export function storedRows(pipeline: string, step: string, partition: string, identity: string, rows: unknown): StoredRow[] {
  if (rows === undefined || rows === null) return [];
  if (!Array.isArray(rows)) throw new ContractError(`step ${step}: handle() must return an array of rows ({key, ...}), got ${typeof rows}`);
  const seen = new Set<string>();
  return (rows as StepRow[]).map((r) => {
    if (typeof r !== 'object' || r === null || Array.isArray(r)) throw new ContractError(`step ${step}: every row must be an object, got ${JSON.stringify(r)}`);
    if (typeof r.key !== 'string' || r.key === '' || r.key.length > MAX_KEY) throw new ContractError(`step ${step}: every row needs a key of 1-${MAX_KEY} characters, got ${JSON.stringify(r.key)}`);
    if (seen.has(r.key)) throw new ContractError(`step ${step}: row key ${r.key} returned twice`);
    seen.add(r.key);
    for (const k of ['id', 'step', 'date', 'identity']) if (k in r) throw new ContractError(`step ${step}: row ${r.key} sets ${k}, which the runner sets`);
    const bad = jsonProblem(r, `row ${r.key}`);
    if (bad) throw new ContractError(`step ${step}: rows are stored as JSON: ${bad}`);
    return { ...r, id: rowId(pipeline, step, partition, r.key, identity), step, date: partition, identity };
  });
}

/** The pipeline's checks, after every step succeeded. A failing one writes an incident. */
async function runChecks(o: RunPartitionOptions, d: RunnerDeps, st: RunState, log: Logger): Promise<ManifestCheck[]> {
  const out: ManifestCheck[] = [];
  const ctx = contextFor(o, d, st, null);
  const skip = o.skipChecks ?? new Map<string, string>();
  for (const c of o.def.checks ?? []) {
    if (skip.has(c.name)) {
      out.push({ name: c.name, status: 'skipped', observed: null, expected: null, note: `--skip-check: ${skip.get(c.name)}` });
      log.warn({ event: 'check_skipped', check: c.name, reason: skip.get(c.name) }, `check ${c.name} skipped`);
      continue;
    }
    let r: { status: 'pass' | 'fail'; observed: unknown; expected: unknown; message?: string };
    try {
      r = await c.run(ctx);
      if ((r?.status !== 'pass' && r?.status !== 'fail') || !('observed' in r) || !('expected' in r)) throw new TypeError(`check ${c.name} returned ${describe(r)}, not {status: 'pass'|'fail', observed, expected}`);
      const bad = jsonProblem({ observed: r.observed, expected: r.expected });
      if (bad) throw new TypeError(`check ${c.name} returned a result that is not JSON: ${bad}`);
    } catch (err) {
      r = { status: 'fail', observed: { error: toMetaspnError(err).message }, expected: 'the check to run', message: `check ${c.name} threw` };
    }
    out.push({ name: c.name, status: r.status, observed: r.observed, expected: r.expected, ...(r.message ? { note: r.message } : {}) });
    if (r.status === 'fail') {
      const incident = d.incident('anomaly_halt', `${o.plan.partition}-${c.name}`, {
        pipeline: o.def.name,
        check: c.name,
        observed: r.observed,
        expected: r.expected,
        run_id: o.runId,
        date: o.plan.partition,
        note: "nothing was published; the run's rows and manifests are kept. If it is a known false alarm: --skip-check NAME --reason TEXT",
      });
      log.error({ event: 'anomaly_halt', check: c.name, observed: r.observed, incident }, `check ${c.name} failed`);
    }
  }
  return out;
}

async function amendManifest(d: RunnerDeps, o: RunPartitionOptions, r: StepReport, change: Partial<Manifest>): Promise<void> {
  const m = (await d.stores.manifests.list(o.def.name, r.step, o.plan.partition)).find((x) => x.run_id === o.runId);
  if (!m) return;
  await d.stores.manifests.write({ ...m, ...change });
  if (change.status) r.status = change.status;
  if (change.exit_code !== undefined) r.exit_code = change.exit_code;
  if (change.error) r.error = change.error;
  if (change.checks) r.checks = change.checks;
}

/**
 * Moves the partition's current pointer to this run: a ledger entry first (durable), then the
 * pointer, both inside the run lock's fence. A publish whose identity differs from the current
 * one is recorded as a restatement of the run it replaces.
 */
async function publish(o: RunPartitionOptions, d: RunnerDeps, st: RunState, order: readonly StepDefinition<unknown>[], identity: string, log: Logger): Promise<{ pointer: string; restated: string | null }> {
  let restated: string | null = null;
  const write = async (): Promise<void> => {
    const previous = await d.stores.pointers.read(o.def.name, o.plan.partition);
    const steps = Object.fromEntries(order.map((s) => [s.name, st.identities.get(s.name)!]));
    const pointer: CurrentPointer & { steps: Record<string, string>; provisional?: boolean } = {
      pipeline: o.def.name,
      date: o.plan.partition,
      run_id: o.runId,
      summary_id: identity,
      published_at: new Date((d.now ?? Date.now)()).toISOString(),
      params: { as_of: o.plan.as_of, config_hash: identity },
      steps,
      ...(o.plan.provisional ? { provisional: true } : {}),
    };
    restated = previous && previous.summary_id !== identity ? previous.run_id : null;
    const skipped = [...(o.skipChecks ?? new Map<string, string>())].map(([name, reason]) => ({ name, reason }));
    await d.stores.ledger.append(
      'publish',
      {
        pipeline: o.def.name,
        date: o.plan.partition,
        pointer,
        previous,
        ...(restated ? { restatement_of: restated } : previous ? { replay_of: previous.run_id } : {}),
        ...(skipped.length ? { skipped_checks: skipped } : {}),
      },
      o.runId,
    );
    await d.stores.pointers.write(pointer);
  };
  if (o.lockLost?.()) throw new RunLockLostError(o.def.name, null);
  await (o.lockLost ? o.lockLost.whileHeld(write) : write());
  log.info({ event: 'published', identity, restatement_of: restated }, `published ${o.plan.partition}`);
  return { pointer: `manifests/current/${o.def.name}/date=${o.plan.partition}.json`, restated };
}

/**
 * Cancels the open tasks of a partition that a backfill's `--resume` skips because a run already
 * published it with the identity a run would have now. An interrupted later run can leave tasks of
 * that partition ready (a re-run takes completed tasks back to ready before it drains them), or
 * leased by its dead process; nothing would ever drain them. Returns how many were cancelled.
 */
export async function cancelLeftovers(def: PipelineDefinition, partition: string, publishedBy: string, d: RunnerDeps, by: string): Promise<number> {
  let n = 0;
  for (const s of def.steps) {
    const { queue } = d.queue(queueOf(def, s), { ...(s.worker.defaults ?? {}), ...(s.policy ?? {}) });
    try {
      // A lease of the interrupted run's dead process goes back to ready first, then is cancelled too.
      await queue.reclaimExpired();
      const ids = await queue.cancel({ group: `${def.name}/${partition}`, keep: new Set(), by, reason: `left by an interrupted run; ${partition} is published by run ${publishedBy}` });
      if (ids.length) d.log.info({ event: 'tasks_cancelled', pipeline: def.name, step: s.name, date: partition, count: ids.length }, `${ids.length} task(s) of ${s.name} left by an interrupted run cancelled`);
      n += ids.length;
    } finally {
      await queue.close();
    }
  }
  return n;
}

/** A value for an error message: its JSON when it has one, else its type. */
function describe(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return typeof v;
  }
}
