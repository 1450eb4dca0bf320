/**
 * What the runner executes: a pipeline's steps as the runner drives them. The runner
 * (runner.ts) is the one place that plans a partition's run, enqueues and supersedes tasks,
 * drains a step's own tasks, writes manifests, runs checks and publishes; a `StepExecution`
 * supplies only what is a step's own: its identity, its tasks, the worker that drains them and
 * how its outputs read back.
 *
 * A user's pipeline (a `PipelineDefinition`) gets its executions from `executionOf`
 * (user-steps.ts): identities over params, input digests and upstream identities, tasks and rows
 * with ids derived from them. A bundled pipeline whose ids follow a spec of its own (Season 1,
 * S1-SPEC) builds its executions directly.
 */
import type { Logger } from 'pino';
import type { QueuePolicy } from '../config/policy.js';
import type { WorkerDefinition, WorkerInitContext } from '../runtime/worker-api.js';
import type { Manifest, ManifestCheck } from '../storage/manifest.js';
import type { StepReport } from './runner.js';

/** What a step's identity is and covers, computed before its tasks are planned. */
export interface StepIdentity {
  /** Names the step's output set: the same identity, the same rows (content-addressed). */
  identity: string;
  /** What its manifest records as `params`. */
  params: Record<string, unknown>;
  /** What it read, as its manifest lists them (extra keys allowed: a step, date or run id read). */
  inputs: Manifest['inputs'];
  /** More manifest fields (e.g. `previous_run_id`, `provisional`). */
  manifest?: Record<string, unknown>;
}

/** A task as the queue holds it: the step decides its id and payload. */
export interface QueuedTask {
  id: string;
  payload: unknown;
}

/** The run under way, as a step's hooks see it. Read only. */
export interface StepRun {
  pipeline: string;
  /** The partition: a UTC date `YYYY-MM-DD`. */
  partition: string;
  /** Canonical ISO-8601 instant (exclusive). */
  as_of: string;
  provisional: boolean;
  run_id: string;
  retry_of?: string;
  /** Who asked (recorded on tasks run again or cancelled): `run <id>` or `backfill <id>`. */
  by: string;
  log: Logger;
  /** The identities of the steps already done in this run, by step name. */
  identities: ReadonlyMap<string, StepIdentity>;
  /** The reports of the steps already done in this run, in the order they finished. */
  steps: readonly StepReport[];
  /** Checks the operator skipped, with the reason. */
  skipChecks: ReadonlyMap<string, string>;
}

/** How a step's own checks ended: a failing one fails the step with `exit_code`. */
export interface StepCheckOutcome {
  checks: ManifestCheck[];
  failure?: { error: { class: string; message: string }; exit_code: number };
}

/** One step as the runner executes it. */
export interface StepExecution {
  name: string;
  /** Steps it runs after (all must have succeeded). */
  after: readonly string[];
  /** It reads the previous partition's publish: in a backfill it waits for that partition to settle. */
  previous: boolean;
  /**
   * Its writes are held back until `outputs`, which a backfill running partitions at once calls
   * in partition order: the store then ends byte for byte as partition-by-partition runs leave it.
   */
  commitsInOrder: boolean;
  /** The queue its tasks go to. */
  queue: string;
  /** Queue policy defaults (config, environment and flags still win). */
  defaults: Partial<QueuePolicy>;
  /** The step's identity now (what it reads, as it is now). Throws what reading its inputs throws. */
  identify(run: StepRun): Promise<StepIdentity>;
  /** Its tasks for this identity; ids must be unique and derive from the identity. */
  tasks(run: StepRun, id: StepIdentity): Promise<readonly QueuedTask[]>;
  /**
   * The worker that drains this run's tasks of the step and stores what they produce, with its
   * init context. `held`: keep the writes back until `outputs` (see `commitsInOrder`).
   * `atomicEffects`: the step's queue commits what a handler records in `ctx.effects` in the
   * transaction of its completion (PostgreSQL): rows recorded there are written exactly once.
   */
  worker(run: StepRun, id: StepIdentity, o: { held: boolean; atomicEffects: boolean }): { worker: WorkerDefinition; init: WorkerInitContext };
  /** After the drain: writes what was held, reads the step's outputs back (rows written by this run and already present). */
  outputs(run: StepRun, id: StepIdentity): Promise<Manifest['outputs']>;
  /** Checks of its own outputs, once they read back and every task completed. */
  checks?(run: StepRun, id: StepIdentity, outputs: Manifest['outputs']): Promise<StepCheckOutcome>;
}

/** What a publish records: the pointer's summary id and params, and extras for the pointer and the ledger entry. */
export interface PublishRecord {
  /** Compared with the current pointer's: a different one makes the publish a restatement. */
  summary_id: string;
  /** At least the as-of and a hash of what configured the run; S1 adds its digests. */
  params: { as_of: string; config_hash: string } & Record<string, unknown>;
  /** More pointer fields (e.g. `steps`). */
  pointer?: Record<string, unknown>;
}

/** A pipeline as the runner executes it. */
export interface PipelineExecution {
  name: string;
  /** Its steps, in a topological order (a step after every step it runs after). */
  steps: readonly StepExecution[];
  /** The checks `--skip-check` may name. */
  checkNames: readonly string[];
  /** The pipeline's checks, after every step succeeded; recorded on the last step's manifest. A failing one halts with 60. */
  checks(run: StepRun): Promise<ManifestCheck[]>;
  /** What the pointer records for a run whose every step succeeded. */
  publishes(run: StepRun): Promise<PublishRecord>;
  /** After a publish moved a pointer (what was read of earlier publishes may be stale). */
  published?(run: StepRun): void;
  /** The run ended (published or not): forget what was kept for it (memory for a long backfill). */
  ended?(run: StepRun): void;
  /** Why a partition of a backfill did not run after `failed` did not publish. */
  blockedReason?(failed: string): string;
}
