import type { Logger } from 'pino';
import type { ZodType } from 'zod';
import type { WorkspacePaths } from '../storage/paths.js';
import type { TaskRecord } from '../queue/types.js';
import type { QueuePolicy } from '../config/policy.js';
import type { Isolation } from './isolation/host.js';
import type { TaskEffects } from './effects.js';

/**
 * What a worker module exports (as a class or a plain object): the queue it drains, an optional
 * zod schema for its payloads, and `handle`. Anything `handle` throws is retried with backoff,
 * except a `ContractError` (or any error with `unrecoverable: true`), which goes to the dead
 * letters at once: retrying a contract violation blindly only hides it.
 */
export interface WorkerDefinition<P = unknown> {
  /** The queue this worker drains, e.g. `project_rewards`. */
  readonly name: string;
  /** Payloads that fail this schema are contract errors: dead-lettered without running. */
  readonly payload?: ZodType<P>;
  /** Runs one task. Its return value is ignored; resolving means done. */
  handle(task: WorkerTask<P>, ctx: WorkerContext): unknown;
  /** Called once before the first task (load shared inputs here). */
  init?(ctx: WorkerInitContext): unknown;
  /** Called once after the last task. */
  close?(): unknown;
  /** Queue policy defaults of this worker (config, environment and flags still win). */
  readonly defaults?: Partial<QueuePolicy>;
  /**
   * Where `worker run` runs the handler: `'thread'` (a worker thread per concurrency slot, the
   * default), `'process'` (a child process per slot) or `'none'` (in the worker process). In an
   * isolate, a timeout or a forced stop really ends the handler, and a handler that blocks the
   * event loop cannot starve the lease; the module is loaded and `init` runs once per isolate,
   * and `ctx.env` and payloads cross by structured clone. Config `queues.<name>.isolation` and
   * `--isolation` win over it.
   */
  readonly isolation?: Isolation;
}

export type WorkerTask<P> = Omit<TaskRecord, 'payload'> & { payload: P };

export interface WorkerInitContext {
  logger: Logger;
  workspace: WorkspacePaths;
  /**
   * Values the caller passes through to its workers (the pipeline passes its run parameters).
   * `worker run` passes `config` (the workspace's resolved config) and, when its queue is on
   * PostgreSQL, `backend` (the database setting: url, schema, pool_max), for workers that read
   * or write there too.
   */
  env: Readonly<Record<string, unknown>>;
}

export interface WorkerContext extends WorkerInitContext {
  /**
   * Aborted when the task times out, its lease is lost or the worker is forced to stop. In process
   * (isolation 'none') it is all a timeout can do: a handler that ignores it keeps its slot until
   * it returns. In an isolate, one that does not end within a moment is killed.
   */
  signal: AbortSignal;
  /** Extends the task's lease; long tasks call it now and then (the runner also does, every lease/3). */
  heartbeat(): Promise<void>;
  /** 1-based number of this attempt. */
  attempt: number;
  /**
   * Effects to write when this task completes (rows of a step's store, entries of an append-only
   * log), recorded as data while the handler runs. On PostgreSQL they commit in the transaction
   * of the completion, fenced by the lease: both or neither, and never from a holder that lost
   * its lease (exactly once). On files they are written just before the completion (at least
   * once: keyed rows are idempotent). A failed attempt's effects are dropped.
   */
  effects: TaskEffects;
}

/** Marks a failure that retrying cannot fix (bad payload, schema drift): dead letters at once. */
export class ContractError extends Error {
  readonly unrecoverable = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ContractError';
  }
}

/** The task ran past its timeout. Transient: the task is released for another try. */
export class TaskTimeoutError extends Error {
  constructor(ms: number) {
    super(`task timed out after ${ms} ms`);
    this.name = 'TaskTimeoutError';
  }
}

/** The task's lease was lost (another worker holds the task now): the attempt is stopped, its result would be refused. */
export class LeaseLostError extends Error {
  constructor() {
    super('the lease was lost: another worker holds the task now');
    this.name = 'LeaseLostError';
  }
}

export function isUnrecoverable(err: unknown): boolean {
  return err instanceof ContractError || (typeof err === 'object' && err !== null && (err as { unrecoverable?: unknown }).unrecoverable === true);
}
