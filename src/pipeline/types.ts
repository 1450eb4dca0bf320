/**
 * The public shape of a pipeline: a DAG of steps run once per partition (a UTC date). A user's
 * module exports one `PipelineDefinition` (built with `definePipeline`), names it in the
 * workspace's `metaspn.config.json` (`"pipelines": {"name": "./path/module.js"}`), and gets what
 * Season 1 gets: a manifest per step, checks before publish, an atomic current pointer, rollback,
 * backfill with `--resume`, run history and retry. docs/PIPELINES.md teaches writing one.
 */
import type { QueuePolicy } from '../config/policy.js';
import type { WorkerContext, WorkerDefinition, WorkerTask } from '../runtime/worker-api.js';

/** A JSON value, as rows and payloads are stored (stable-stringified). */
export type Json = null | boolean | number | string | readonly Json[] | { readonly [k: string]: Json };

/** A row a step writes: `key` names it within the step and partition (e.g. an entity id, or `*`). */
export interface StepRow {
  /** Unique within one step and partition; the row's id is derived from it and the step's identity. */
  key: string;
  [field: string]: Json | undefined;
}

/** A row as stored: the step's row plus the fields the runner adds. */
export interface StoredRow extends StepRow {
  /** `row_` + 24 hex digits of sha256 over {pipeline, step, partition, key, identity}. */
  id: string;
  step: string;
  /** The partition (a UTC date `YYYY-MM-DD`). */
  date: string;
  /** The identity of the step run that wrote it. */
  identity: string;
}

/**
 * A row in the form a store keeps it: its id, its partition, the identity it was written under and
 * its exact text (one stably stringified JSON object, no newline). A step's rows become this
 * (`text` their canonical text, `identity` their `identity` field); a pipeline whose rows follow a
 * spec of its own (Season 1: no `key` or `identity` field) hands its rows to the stores this way.
 */
export interface RowText {
  id: string;
  date: string;
  identity: string;
  text: string;
}

/** One task a planner asks for: `key` names it within the step and partition; `payload` is what its handler gets. */
export interface PlannedTask<P = Json> {
  key: string;
  payload: P;
}

/** A file under the workspace's inputs/ folder, as a step read it. */
export interface InputFile {
  /** Its name under inputs/, e.g. `events.jsonl`. */
  name: string;
  /** Path relative to the workspace root. */
  path: string;
  /** sha256 (64 hex digits) of its bytes; an absent file hashes as the empty text. */
  sha256: string;
  /** Its bytes as UTF-8 text; '' when absent. */
  text: string;
  /** Whether the file exists. */
  exists: boolean;
}

/** What a planner, a check and an identity hook see of the run. Reads only; nothing here writes. */
export interface PartitionContext {
  pipeline: string;
  /** The partition: a UTC date `YYYY-MM-DD`. */
  partition: string;
  /** The newest instant the run may use (exclusive), canonical ISO-8601 (`Date.prototype.toISOString`). */
  as_of: string;
  /** True when the partition was not over yet (run with an explicit `--as-of`). */
  provisional: boolean;
  /** A declared input of the step, read once per run. Throws UsageError for an input the step did not declare. */
  input(name: string): InputFile;
  /**
   * The rows an upstream step wrote in this run (under its identity), in key order. Throws UsageError
   * for a step that is not upstream of this one.
   */
  upstream(step: string): Promise<StoredRow[]>;
  /**
   * The rows `step` wrote in the run published as current for the previous partition, in key order;
   * null when that partition has no published run. Only for steps that declare `previous: true`.
   */
  previous(step: string): Promise<StoredRow[] | null>;
  /**
   * The rows of `upstream(step)`, in the same key order, a page at a time: a reader of a 100k-row
   * step holds one page instead of every row, and the worker renews its task's lease between two
   * pages. Two steps read side by side (both in key order) join by key in one pass, holding a page
   * of each. The same refusals as `upstream`, when called (a contract error in a handler).
   */
  upstreamPages(step: string, options?: PageOptions): AsyncIterable<StoredRow[]>;
  /**
   * The rows of `previous(step)`, in key order, a page at a time; no page at all when the previous
   * partition has no published run (where `previous` returns null). Only for steps that declare
   * `previous: true`.
   */
  previousPages(step: string, options?: PageOptions): AsyncIterable<StoredRow[]>;
}

/** How a paged read (`upstreamPages`, `previousPages`) pages. */
export interface PageOptions {
  /** Rows per page, 1 to 100,000. Default 1,000. */
  size?: number;
}

/**
 * What a step's handler gets in `ctx.step` besides the task: which task it is, and the reads its
 * planner has, as the run sees them. A handler may read what it needs instead of carrying it in
 * its payload (a fan-in of 100k rows, a large input: payloads are bounded by `payload_bytes`): the
 * inputs are the bytes the step's identity covers (read once per run), and upstream rows and the
 * previous partition's are stored under identities, so a retried task reads the very same thing.
 */
export interface StepTaskContext extends Pick<PartitionContext, 'input' | 'upstream' | 'previous' | 'upstreamPages' | 'previousPages'> {
  pipeline: string;
  step: string;
  partition: string;
  as_of: string;
  identity: string;
  key: string;
}

/** The payload a step task carries: the planner's payload and the identity it belongs to. */
export interface StepTaskPayload<P = Json> {
  pipeline: string;
  step: string;
  date: string;
  as_of: string;
  identity: string;
  key: string;
  input: P;
}

/**
 * What a handler returns: its rows as an array (or a promise of one), or as an iterable or async
 * iterable (a generator, `async function*`) that the runner stores a page at a time as it yields
 * them, so that a step writing 100k rows never holds them all. Every row is stored, in the order
 * given, before the task counts as done.
 */
export type StepRows = readonly StepRow[] | Promise<readonly StepRow[]> | Iterable<StepRow> | AsyncIterable<StepRow>;

/**
 * A step's handler: gets the planner's payload, returns the rows it produced (possibly none).
 * The runner stores them under ids derived from the step's identity before the task counts as
 * done; a task retried after a crash writes the same ids, so nothing is duplicated. Throw a
 * `ContractError` for input that can never succeed (dead letters at once); anything else is retried.
 */
export type StepHandler<P = Json> = (input: P, ctx: WorkerContext & { step: StepTaskContext }) => StepRows;

/** The worker of a step: the existing `WorkerDefinition` shape, whose `handle` returns the step's rows. */
export interface StepWorker<P = Json> extends Omit<WorkerDefinition<P>, 'handle' | 'name'> {
  /** The queue it drains; default `<pipeline>-<step>`. `[A-Za-z0-9][A-Za-z0-9_-]{0,99}`. */
  readonly name?: string;
  /** Returns the task's rows: an array, or an (async) iterable stored a page at a time ({@link StepRows}). */
  handle(task: WorkerTask<P>, ctx: WorkerContext & { step: StepTaskContext }): StepRows;
}

/** The outcome of a check: pass, or fail with what was seen against what was expected. */
export interface CheckResult {
  status: 'pass' | 'fail';
  observed: Json;
  expected: Json;
  /** One line for the operator. */
  message?: string;
}

/**
 * A guardrail run after every step succeeded and before publishing. A failing check halts the run
 * with exit 60 (ANOMALY_HALT): nothing is published, an incident is written, the run's rows and
 * manifests stay. `--skip-check NAME --reason TEXT` publishes through a known false alarm.
 */
export interface CheckDefinition {
  /** `[a-z][a-z0-9_]{0,63}`, unique in the pipeline. */
  name: string;
  description?: string;
  /** Steps whose rows it reads (via `ctx.upstream`); default every step. */
  reads?: readonly string[];
  run(ctx: PartitionContext): CheckResult | Promise<CheckResult>;
}

/** One step of a pipeline: its worker, its planner, what it reads. */
export interface StepDefinition<P = Json> {
  /** `[a-z][a-z0-9_]{0,63}`, unique in the pipeline. */
  name: string;
  description?: string;
  /** Upstream steps (fan-in: several). It runs once all of them succeeded; steps with no path between them run concurrently. */
  after?: readonly string[];
  /**
   * Files under inputs/ it reads; their bytes' digests are part of its identity. Each must exist
   * when the step runs: a missing one fails the step with exit 20 (DataInvalidError), naming it.
   */
  inputs?: readonly string[];
  /**
   * True: it also reads the previous partition's published output (`ctx.previous`), as a running
   * total does. Its identity then covers that run, and a backfill runs partitions in order for it.
   * Default false.
   */
  previous?: boolean;
  /** Parameters that change its output (a model version, a threshold): part of its identity. Default {}. */
  params?: { readonly [k: string]: Json };
  /**
   * What of its inputs it really depends on, when less than the whole files (e.g. the lines of a
   * window of dates): returned material replaces the files' sha256 in its identity. Default: the
   * sha256 of each declared input.
   */
  digest?(ctx: PartitionContext): Json | Promise<Json>;
  /** Turns a partition into tasks (fan-out: one per entity; or one `*` task). Keys must be unique. */
  plan(ctx: PartitionContext): readonly PlannedTask<P>[] | Promise<readonly PlannedTask<P>[]>;
  worker: StepWorker<P>;
  /** Queue policy defaults for its queue (config, environment and flags still win). */
  policy?: Partial<QueuePolicy>;
}

/** A pipeline: a name, a partition kind, a DAG of steps, checks. Build it with `definePipeline`. */
export interface PipelineDefinition {
  /** `[a-z][a-z0-9_-]{0,63}`: names its run lock, pointers folder and default queue names. */
  name: string;
  description?: string;
  /** The partition kind. Only `date` (a UTC calendar date `YYYY-MM-DD`) for now. */
  partition: 'date';
  /** Optional bounds: partitions outside are refused with exit 10 (BUSINESS_REJECT). */
  partitions?: { start?: string; end?: string };
  steps: readonly StepDefinition<unknown>[];
  checks?: readonly CheckDefinition[];
}
