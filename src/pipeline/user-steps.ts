/**
 * A user's pipeline as the runner executes it: each step's identity covers its params, the
 * digest of the inputs it read, its upstream steps' identities and (with `previous: true`) the
 * previous partition's publish; its tasks and rows get ids derived from that identity; its
 * handler's rows are stored by the runner's worker before a task counts as done.
 */
import type { Logger } from 'pino';
import { DataInvalidError, toMetaspnError, UsageError } from '../guard/errors.js';
import { collectIfGrown } from '../runtime/memory.js';
import { ContractError, type WorkerContext, type WorkerDefinition, type WorkerTask } from '../runtime/worker-api.js';
import type { Manifest, ManifestCheck } from '../storage/manifest.js';
import type { CurrentPointer } from '../storage/pointers.js';
import type { PipelineExecution, StepExecution, StepRun } from './execution.js';
import { jsonProblem } from './json-value.js';
import { ancestors, queueOf, rowId, runIdentity, stepIdentity, taskId, validatePipeline, type PartitionPlan } from './plan.js';
import { RowConflictError, type RunnerDeps } from './runner.js';
import { rowPages, type RowStore } from './stores.js';
import type { InputFile, Json, PageOptions, PartitionContext, PipelineDefinition, StepDefinition, StepRow, StepTaskContext, StepTaskPayload, StoredRow } from './types.js';

/** The longest key of a planned task or a row. */
const MAX_KEY = 200;
/** Rows per page of `upstreamPages` and `previousPages` unless asked otherwise, and the most. */
const DEFAULT_PAGE = 1000;
const MAX_PAGE = 100_000;
/** Rows a handler yields that are stored at once (one append and fsync per page). */
const PUT_PAGE = 4096;

/**
 * What one run of a user's pipeline keeps while it runs: its steps' identities, the inputs it read
 * (each once), and the sha256 of inputs let go once every step declaring them had drained (a
 * later read, by a check, must find the same bytes).
 */
export interface UserRunState {
  identities: Map<string, string>;
  inputs: Map<string, InputFile>;
  released: Map<string, string>;
  /** Steps of the run whose tasks all ran (their outputs were read back). */
  drained: Set<string>;
}

export function newUserRunState(): UserRunState {
  return { identities: new Map(), inputs: new Map(), released: new Map(), drained: new Set() };
}

/**
 * Lets go of the inputs no step still to drain declares: at 100k entities an input's text is tens
 * of megabytes, held otherwise until the run ends. Its sha256 stays, so that a check reading it
 * again reads the bytes the run's identities cover (else a DataInvalidError).
 */
function releaseInputs(def: PipelineDefinition, st: UserRunState): void {
  for (const [name, f] of st.inputs) {
    if (def.steps.some((x) => !st.drained.has(x.name) && (x.inputs ?? []).includes(name))) continue;
    st.released.set(name, f.sha256);
    st.inputs.delete(name);
  }
}

/**
 * The runner's view of a user's pipeline. Checks the definition first.
 * @throws PipelineDefinitionError (64) for a definition that breaks a rule (validatePipeline).
 */
export function executionOf(def: PipelineDefinition, d: RunnerDeps): PipelineExecution {
  const order = validatePipeline(def);
  const runs = new Map<string, UserRunState>();
  const stateOf = (run: StepRun): UserRunState => {
    let st = runs.get(run.run_id);
    if (!st) {
      st = newUserRunState();
      runs.set(run.run_id, st);
    }
    for (const [k, v] of run.identities) st.identities.set(k, v.identity);
    return st;
  };
  const planOf = (run: StepRun): PartitionPlan => ({ partition: run.partition, as_of: run.as_of, provisional: run.provisional });
  return {
    name: def.name,
    steps: order.map((s) => userStep(def, s, d, stateOf, planOf)),
    checkNames: (def.checks ?? []).map((c) => c.name),
    checks: (run) => runChecks(def, d, stateOf(run), run),
    publishes: (run) => {
      const steps = Object.fromEntries(order.map((s) => [s.name, run.identities.get(s.name)!.identity]));
      const identity = runIdentity(steps);
      return Promise.resolve({ summary_id: identity, params: { as_of: run.as_of, config_hash: identity }, pointer: { steps } });
    },
    ended: (run) => void runs.delete(run.run_id),
  };
}

function userStep(def: PipelineDefinition, s: StepDefinition<unknown>, d: RunnerDeps, stateOf: (run: StepRun) => UserRunState, planOf: (run: StepRun) => PartitionPlan): StepExecution {
  const store = d.stores.rows(def.name, s.name);
  // Rows of the step's identity stored before this run drained it: the rest it wrote.
  const before = new Map<string, number>();
  return {
    name: s.name,
    after: s.after ?? [],
    previous: s.previous === true,
    commitsInOrder: false,
    queue: queueOf(def, s),
    defaults: { ...(s.worker.defaults ?? {}), ...(s.policy ?? {}) },
    async identify(run) {
      const st = stateOf(run);
      const r = await identityOf({ def, plan: planOf(run) }, d, st, s, contextFor({ def, plan: planOf(run) }, d, st, s));
      return { identity: r.identity, params: { identity: r.identity, ...(s.params ?? {}) }, inputs: r.inputs, ...(s.previous ? { manifest: { previous_run_id: r.previous } } : {}) };
    },
    async tasks(run, id) {
      const planned = await s.plan(contextFor({ def, plan: planOf(run) }, d, stateOf(run), s));
      if (!Array.isArray(planned)) throw new UsageError(`pipeline ${def.name}: step ${s.name}: plan() must return an array of {key, payload}`);
      const keys = new Set<string>();
      for (const t of planned as { key: unknown }[]) {
        if (typeof t?.key !== 'string' || t.key === '' || t.key.length > MAX_KEY)
          throw new UsageError(`pipeline ${def.name}: step ${s.name}: every planned task needs a key of 1-${MAX_KEY} characters, got ${JSON.stringify(t?.key)}`);
        if (keys.has(t.key)) throw new UsageError(`pipeline ${def.name}: step ${s.name}: plan() returned key ${t.key} twice`);
        keys.add(t.key);
        const bad = jsonProblem((t as { payload?: unknown }).payload, 'payload');
        if (bad) throw new UsageError(`pipeline ${def.name}: step ${s.name}: the task of key ${t.key}: tasks are stored as JSON: ${bad}`);
      }
      before.set(run.run_id, (await store.digest(run.partition, id.identity)).rows);
      return planned.map((t) => ({
        id: taskId(def.name, s.name, run.partition, t.key, id.identity),
        payload: { pipeline: def.name, step: s.name, date: run.partition, as_of: run.as_of, identity: id.identity, key: t.key, input: t.payload } satisfies StepTaskPayload<unknown>,
      }));
    },
    worker(run, id, { atomicEffects }) {
      // The handler reads what the planner reads, as this run sees it (inputs read once per run);
      // reading what the step does not declare can never succeed: a contract error.
      const reads = asContract(contextFor({ def, plan: planOf(run) }, d, stateOf(run), s));
      return { worker: stepWorker(def, d, s, run, id.identity, store, reads, atomicEffects), init: { logger: run.log, workspace: d.ws, env: { pipeline: def.name, step: s.name } } };
    },
    async outputs(run, id) {
      const st = stateOf(run);
      st.drained.add(s.name);
      releaseInputs(def, st);
      const had = before.get(run.run_id) ?? 0;
      before.delete(run.run_id);
      const out = await store.digest(run.partition, id.identity);
      // What the stores keep in memory of this step's rows and of the rows it read goes: the
      // steps after it read them again from the files, a page at a time.
      for (const name of [s.name, ...ancestors(def, s.name)]) await d.stores.rows(def.name, name).release?.();
      collectIfGrown();
      // Rows found already stored (a replay) are present, not written; the digest covers both.
      const written = Math.max(0, out.rows - had);
      return [{ path: store.location, rows_written: written, rows_present: out.rows - written, sha256: out.sha256 }];
    },
  };
}

/** The read-only view a step's planner, digest hook and checks get (`s` null: a check's, which may read every step). */
export function contextFor(o: { def: PipelineDefinition; plan: PartitionPlan }, d: Pick<RunnerDeps, 'stores' | 'readInput'>, st: UserRunState, s: StepDefinition<unknown> | null): PartitionContext {
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
        const had = st.released.get(name);
        if (had !== undefined && had !== f.sha256)
          throw new DataInvalidError(f.path, null, `changed while pipeline ${o.def.name} ran for ${o.plan.partition} (${who} read it after the steps that declare it)`, {
            hint: 'leave the inputs alone while a run is under way, then run the same command again',
          });
        st.inputs.set(name, f);
      }
      return f;
    },
    async upstream(step) {
      return d.stores.rows(o.def.name, step).rows(o.plan.partition, upstreamIdentity(step));
    },
    upstreamPages(step, options) {
      // Refused when called, as `upstream` is; the rows are read as the pages are asked for.
      const [id, size] = [upstreamIdentity(step), pageSize(options)];
      return rowPages(d.stores.rows(o.def.name, step), o.plan.partition, id, size);
    },
    async previous(step) {
      const at = await previousRows(step);
      return at && d.stores.rows(o.def.name, step).rows(at.date, at.id);
    },
    previousPages(step, options) {
      const size = pageSize(options);
      refusePrevious();
      return (async function* () {
        const at = await previousRows(step);
        if (at) yield* rowPages(d.stores.rows(o.def.name, step), at.date, at.id, size);
      })();
    },
  };
  function upstreamIdentity(step: string): string {
    if (!upstream.has(step)) throw new UsageError(`pipeline ${o.def.name}: ${who} reads step ${step}, which is not upstream of it (add it to after)`);
    const id = st.identities.get(step);
    if (id === undefined) throw new UsageError(`pipeline ${o.def.name}: step ${step} has not run in this run`);
    return id;
  }
  function refusePrevious(): void {
    if (s && !s.previous) throw new UsageError(`pipeline ${o.def.name}: step ${s.name} reads the previous partition; declare previous: true`);
  }
  /** Where the previous partition's published rows of `step` are; null when it has no published run. */
  async function previousRows(step: string): Promise<{ date: string; id: string } | null> {
    refusePrevious();
    const prev = await previousPointer(o, d);
    const id = prev?.steps?.[step];
    return prev && id !== undefined ? { date: prev.date, id } : null;
  }
  function pageSize(options: PageOptions | undefined): number {
    const size = options?.size ?? DEFAULT_PAGE;
    if (!Number.isInteger(size) || size < 1 || size > MAX_PAGE) throw new UsageError(`pipeline ${o.def.name}: ${who}: a page size must be an integer from 1 to ${MAX_PAGE}, got ${String(size)}`);
    return size;
  }
}

/** The same reads, where a UsageError (an undeclared input or step) is a ContractError: a task that reads it can never succeed. */
function asContract(ctx: PartitionContext): PartitionContext {
  const wrap =
    <A extends unknown[], R>(fn: (...a: A) => R) =>
    (...a: A): R => {
      try {
        return fn(...a);
      } catch (err) {
        throw err instanceof UsageError ? new ContractError(err.message) : err;
      }
    };
  const wrapAsync =
    <A extends unknown[], R>(fn: (...a: A) => Promise<R>) =>
    (...a: A): Promise<R> =>
      fn(...a).catch((err: unknown) => {
        throw err instanceof UsageError ? new ContractError(err.message) : err;
      });
  const wrapPages =
    (fn: (step: string, options?: PageOptions) => AsyncIterable<StoredRow[]>) =>
    (step: string, options?: PageOptions): AsyncIterable<StoredRow[]> => {
      const pages = wrap(fn)(step, options);
      return (async function* () {
        try {
          yield* pages;
        } catch (err) {
          throw err instanceof UsageError ? new ContractError(err.message) : err;
        }
      })();
    };
  return {
    ...ctx,
    input: wrap(ctx.input),
    upstream: wrapAsync(ctx.upstream),
    previous: wrapAsync(ctx.previous),
    upstreamPages: wrapPages(ctx.upstreamPages),
    previousPages: wrapPages(ctx.previousPages),
  };
}

function previousDate(partition: string): string {
  return new Date(Date.parse(`${partition}T00:00:00Z`) - 86_400_000).toISOString().slice(0, 10);
}

async function previousPointer(o: { def: PipelineDefinition; plan: PartitionPlan }, d: Pick<RunnerDeps, 'stores'>): Promise<(CurrentPointer & { steps?: Record<string, string> }) | null> {
  return d.stores.pointers.read(o.def.name, previousDate(o.plan.partition));
}

/**
 * A step's identity now, and the inputs it covers (for its manifest).
 * @throws DataInvalidError (20) when a declared input is missing; UsageError (64) when `digest()` returns a value that is not JSON.
 */
export async function identityOf(
  o: { def: PipelineDefinition; plan: PartitionPlan },
  d: Pick<RunnerDeps, 'stores' | 'readInput'>,
  st: UserRunState,
  s: StepDefinition<unknown>,
  ctx: PartitionContext,
): Promise<{ identity: string; inputs: Manifest['inputs']; previous: string | null }> {
  const files = (s.inputs ?? []).map((n) => ctx.input(n));
  // A declared input that is missing would read as empty and publish empty outputs as a
  // restatement of good ones: the step does not run.
  const missing = files.find((f) => !f.exists);
  if (missing)
    throw new DataInvalidError(missing.path, null, `step ${s.name} of pipeline ${o.def.name} reads this input, and it is missing; nothing of the step ran`, {
      hint: "restore the file (or remove it from the step's inputs), then run the same command again",
    });
  const inputs: Manifest['inputs'] = files.map((f) => ({ path: f.path, sha256: f.sha256, rows: nonBlankLines(f.text) }));
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

/** How many lines of `text` are not blank, without an array of every line (an input of 500k lines). */
export function nonBlankLines(text: string): number {
  let n = 0;
  for (let at = 0; at < text.length;) {
    const end = text.indexOf('\n', at);
    const stop = end < 0 ? text.length : end;
    if (text.slice(at, stop).trim() !== '') n++;
    at = stop + 1;
  }
  return n;
}

/**
 * The worker the runtime drains a step's queue with: checks the task belongs to this run's
 * identity, runs the step's handler in process, stores its rows before the task counts as done.
 */
function stepWorker(
  def: PipelineDefinition,
  d: RunnerDeps,
  s: StepDefinition<unknown>,
  run: StepRun,
  identity: string,
  store: RowStore,
  reads: PartitionContext,
  atomicEffects: boolean,
): WorkerDefinition<StepTaskPayload<unknown>> {
  const inner = s.worker;
  return {
    name: queueOf(def, s),
    isolation: 'none',
    ...(inner.defaults ? { defaults: inner.defaults } : {}),
    init: (ctx) => inner.init?.(ctx),
    close: () => inner.close?.(),
    async handle(task: WorkerTask<StepTaskPayload<unknown>>, ctx: WorkerContext): Promise<void> {
      const p = task.payload;
      if (p?.identity !== identity || p.step !== s.name || p.date !== run.partition) {
        throw new ContractError(
          `task ${task.id} belongs to ${p?.step ?? '?'} ${p?.date ?? '?'} identity ${p?.identity ?? '?'}, not to this run's ${s.name} ${run.partition} identity ${identity}: its inputs no longer match`,
        );
      }
      let input: unknown = p.input;
      if (inner.payload) {
        const r = inner.payload.safeParse(input);
        if (!r.success) throw new ContractError(`step ${s.name}: payload of task ${p.key}: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
        input = r.data;
      }
      const step: StepTaskContext = {
        pipeline: def.name,
        step: s.name,
        partition: p.date,
        as_of: p.as_of,
        identity,
        key: p.key,
        input: reads.input,
        upstream: reads.upstream,
        previous: reads.previous,
        upstreamPages: reads.upstreamPages,
        previousPages: reads.previousPages,
      };
      // Stores a page of the task's rows (or records it, to be written with the acknowledgement).
      const keep = async (stored: StoredRow[]): Promise<void> => {
        if (stored.length === 0) return;
        // A stopped attempt (timed out, its lease lost, given up) writes nothing: another attempt may run.
        if (ctx.signal.aborted) throw ctx.signal.reason;
        if (atomicEffects) {
          // Written with the acknowledgement, in its transaction: both or neither (a conflict dead-letters the task, 30).
          ctx.effects.rows(def.name, s.name, stored);
          return;
        }
        const put = await store.put(stored);
        if (put.conflicts.length) {
          const c = put.conflicts[0]!;
          const incident = d.incident('replay_conflict', c.id, {
            store: store.location,
            id: c.id,
            date: p.date,
            run_id: run.run_id,
            existing: JSON.parse(c.existing) as unknown,
            incoming: JSON.parse(c.incoming) as unknown,
            conflicts: put.conflicts.length,
            note: 'nothing was overwritten: the same identity produced different content (a non-deterministic step, or the store was changed)',
          });
          throw new RowConflictError(
            `replay conflict: ${store.location} already holds ${c.id} with different content (step ${s.name} is not deterministic, or its code changed without its params)`,
            incident,
          );
        }
      };
      const out = inner.handle({ ...task, payload: input }, { ...ctx, step });
      const seen = new Set<string>();
      if (!isRowStream(out)) return keep(storedRows(def.name, s.name, p.date, identity, await out, seen));
      // Rows yielded one by one are stored a page at a time, in the order yielded: the handler
      // never holds them all, and it waits for each page's fsync (which is when it yields).
      let page: unknown[] = [];
      for await (const row of out) {
        page.push(row);
        if (page.length < PUT_PAGE) continue;
        await keep(storedRows(def.name, s.name, p.date, identity, page, seen));
        page = [];
      }
      await keep(storedRows(def.name, s.name, p.date, identity, page, seen));
    },
  };
}

/** Rows a handler hands over one by one (a generator, an async iterable), as opposed to an array or a promise of one. */
function isRowStream(out: unknown): out is Iterable<unknown> | AsyncIterable<unknown> {
  if (typeof out !== 'object' || out === null || Array.isArray(out) || typeof (out as { then?: unknown }).then === 'function') return false;
  return typeof (out as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function' || typeof (out as Iterable<unknown>)[Symbol.iterator] === 'function';
}

/**
 * Checks a handler's rows and gives them their ids. `seen`: the keys of the task's rows checked
 * before these (its earlier pages), which none of these may repeat.
 * @throws ContractError for rows that are not `{key, ...}` objects, a key twice, or a value that is
 *   not plain JSON (NaN, a BigInt, a Date, `undefined`…: {@link jsonProblem}).
 */
export function storedRows(pipeline: string, step: string, partition: string, identity: string, rows: unknown, seen = new Set<string>()): StoredRow[] {
  if (rows === undefined || rows === null) return [];
  if (!Array.isArray(rows)) throw new ContractError(`step ${step}: handle() must return an array of rows ({key, ...}) or an iterable of them, got ${typeof rows}`);
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
async function runChecks(def: PipelineDefinition, d: RunnerDeps, st: UserRunState, run: StepRun): Promise<ManifestCheck[]> {
  const out: ManifestCheck[] = [];
  const ctx = contextFor({ def, plan: { partition: run.partition, as_of: run.as_of, provisional: run.provisional } }, d, st, null);
  const log: Logger = run.log;
  for (const c of def.checks ?? []) {
    const skipped = run.skipChecks.get(c.name);
    if (skipped !== undefined) {
      out.push({ name: c.name, status: 'skipped', observed: null, expected: null, note: `--skip-check: ${skipped}` });
      log.warn({ event: 'check_skipped', check: c.name, reason: skipped }, `check ${c.name} skipped`);
      continue;
    }
    let r: { status: 'pass' | 'fail'; observed: unknown; expected: unknown; message?: string };
    try {
      r = await c.run(ctx);
      if ((r?.status !== 'pass' && r?.status !== 'fail') || !('observed' in r) || !('expected' in r))
        throw new TypeError(`check ${c.name} returned ${describe(r)}, not {status: 'pass'|'fail', observed, expected}`);
      const bad = jsonProblem({ observed: r.observed, expected: r.expected });
      if (bad) throw new TypeError(`check ${c.name} returned a result that is not JSON: ${bad}`);
    } catch (err) {
      r = { status: 'fail', observed: { error: toMetaspnError(err).message }, expected: 'the check to run', message: `check ${c.name} threw` };
    }
    out.push({ name: c.name, status: r.status, observed: r.observed, expected: r.expected, ...(r.message ? { note: r.message } : {}) });
    if (r.status === 'fail') {
      const incident = d.incident('anomaly_halt', `${run.partition}-${c.name}`, {
        pipeline: def.name,
        check: c.name,
        observed: r.observed,
        expected: r.expected,
        run_id: run.run_id,
        date: run.partition,
        note: "nothing was published; the run's rows and manifests are kept. If it is a known false alarm: --skip-check NAME --reason TEXT",
      });
      log.error({ event: 'anomaly_halt', check: c.name, observed: r.observed, incident }, `check ${c.name} failed`);
    }
  }
  return out;
}

/** A value for an error message: its JSON when it has one, else its type. */
function describe(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return typeof v;
  }
}
