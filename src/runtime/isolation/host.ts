import { MetaspnError } from '../../guard/errors.js';
import type { TaskRecord } from '../../queue/types.js';
import type { WorkerContext, WorkerDefinition } from '../worker-api.js';

/**
 * Where a worker's handlers run:
 * - `none`: in the worker process itself. Cheapest, but a handler that blocks the event loop
 *   starves the timeout and the lease renewal, and one that ignores its AbortSignal cannot be
 *   stopped: its slot stays taken until it returns.
 * - `thread`: a worker thread per concurrency slot, reused across tasks, terminated on timeout.
 * - `process`: a child process per slot, reused across tasks, killed (SIGKILL) on timeout; also
 *   stops a handler stuck in a synchronous native call and survives a native crash.
 */
export type Isolation = 'none' | 'thread' | 'process';

export const ISOLATIONS: readonly Isolation[] = ['none', 'thread', 'process'];

/**
 * The default of `worker run` when neither the worker, the config nor `--isolation` names one
 * (docs/DECISIONS.md has the measurements behind it).
 */
export const DEFAULT_ISOLATION: Isolation = 'thread';

/** One attempt of one task, as the runner hands it to a host. */
export interface Attempt {
  /** The task as claimed (its payload as stored). */
  task: TaskRecord;
  /** The payload after the worker's schema (what an in-process handler receives). */
  payload: unknown;
  /** The handler's context; `heartbeat` renews the lease, `signal` aborts on timeout or forced stop. */
  ctx: WorkerContext;
  /** The host calls this when the handler really starts (after an isolate's start-up): the timeout counts from then. */
  started(): void;
  /**
   * Registers how to stop this attempt (timeout, forced stop, lost lease); the runner calls it at
   * most once. `now` asks for no grace (the process is about to exit).
   */
  onStop(stop: (reason: Error, now: boolean) => void): void;
}

/**
 * Runs a worker's handlers. The runner receives it like its other I/O: in process by default, or
 * an isolate per slot (./pool.ts).
 */
export interface HandlerHost {
  readonly isolation: Isolation;
  /**
   * Runs one attempt and settles only when the handler has really ended: resolves when it
   * returned, rejects with what it threw (or why its isolate died). Stopping an attempt asks the
   * handler through ctx.signal; an isolate that does not end its attempt at once is killed.
   */
  run(a: Attempt): Promise<void>;
  /** Ends the isolates (after each worker's `close`); running ones are killed. */
  close(): Promise<void>;
}

const ENDED: Promise<void> = Promise.resolve();
const ignore = (): void => undefined;

/**
 * Handlers called in this process: `ctx.signal` is all a timeout can do. The handler is called at
 * once; a synchronous throw becomes a rejection, a returned promise (or thenable) is waited for and
 * its value ignored, and a handler that returns anything else has ended (one promise a task at
 * most, where a chain of three was made for every one).
 */
export function inProcessHost(worker: WorkerDefinition): HandlerHost {
  return {
    isolation: 'none',
    run(a) {
      a.started();
      try {
        const out = worker.handle({ ...a.task, payload: a.payload }, a.ctx);
        return isThenable(out) ? Promise.resolve(out).then(ignore) : ENDED;
      } catch (err) {
        return Promise.reject(err);
      }
    },
    close: () => Promise.resolve(),
  };
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function';
}

/**
 * An isolate could not start (it could not be spawned, the module or its `init` threw, ctx.env
 * cannot be cloned): no task can run, so the worker stops, gives the task back and fails the
 * command with this message.
 */
export class IsolateStartError extends MetaspnError {
  constructor(message: string) {
    super('INTERNAL_ERROR', message, { hint: 'run the worker with --isolation none to see the failure in process, or fix the module or its init' });
    this.name = 'IsolateStartError';
  }
}
