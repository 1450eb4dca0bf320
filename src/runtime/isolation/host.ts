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
  /** In process: how long a stopped handler has before its attempt is given up (unset: never). */
  readonly abandonAfterMs?: number;
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
 * How long a pipeline step's stopped handler has to return before its attempt is given up, in ms
 * (a fixed 1,000: the isolates' pool kills after 200 ms; a handler that heeds its signal returns
 * well within it).
 */
export const ABANDON_GRACE_MS = 1000;

/** Options of {@link inProcessHost}. */
export interface InProcessOptions {
  /**
   * Give up on an attempt whose handler has not returned this many ms after it was stopped (a
   * timeout, a lost lease; at once on a forced stop): the attempt rejects with a
   * {@link HandlerAbandonedError} and its slot is free, while the handler's promise is left to
   * itself (what it settles to later is ignored). Unset (the default, `worker run --isolation
   * none`): the slot stays taken until the handler returns. A pipeline's steps set it
   * (`ABANDON_GRACE_MS`): a step's output is only what its handler returns, so nothing of an
   * abandoned attempt is written, and the run ends (exit 50) instead of waiting forever.
   */
  abandonAfterMs?: number;
}

/**
 * A stopped handler did not return within the grace: the attempt was given up (its slot freed,
 * its promise left unsettled). Exit 50: the handler ignores `ctx.signal`.
 */
export class HandlerAbandonedError extends MetaspnError {
  constructor(
    readonly reason: Error,
    graceMs: number,
    task: string,
  ) {
    super('INTERNAL_ERROR', `task ${task}: its handler did not return within ${graceMs} ms of being stopped (${reason.message}); the attempt was given up and nothing of it written`, {
      hint: 'make the handler return (or throw) when ctx.signal aborts; the attempt is recorded, and the next run tries the task again',
    });
    this.name = 'HandlerAbandonedError';
  }
}

/**
 * Handlers called in this process: `ctx.signal` is all a timeout can do. The handler is called at
 * once; a synchronous throw becomes a rejection, a returned promise (or thenable) is waited for and
 * its value ignored, and a handler that returns anything else has ended (one promise a task at
 * most, where a chain of three was made for every one). With `abandonAfterMs`, an attempt stopped
 * and still running after that long is given up ({@link InProcessOptions}).
 */
export function inProcessHost(worker: WorkerDefinition, opts: InProcessOptions = {}): HandlerHost {
  const grace = opts.abandonAfterMs;
  return {
    isolation: 'none',
    ...(grace !== undefined ? { abandonAfterMs: grace } : {}),
    run(a) {
      a.started();
      let out: unknown;
      try {
        out = worker.handle({ ...a.task, payload: a.payload }, a.ctx);
      } catch (err) {
        return Promise.reject(err);
      }
      if (!isThenable(out)) return ENDED;
      if (grace === undefined) return Promise.resolve(out).then(ignore);
      const running = out;
      return new Promise<void>((resolve, reject) => {
        let timer: NodeJS.Timeout | undefined;
        a.onStop((reason, now) => {
          const giveUp = (): void => reject(new HandlerAbandonedError(reason, now ? 0 : grace, a.task.id));
          if (now) giveUp();
          else timer ??= setTimeout(giveUp, grace);
        });
        running.then(
          () => {
            if (timer) clearTimeout(timer);
            resolve();
          },
          (err: unknown) => {
            if (timer) clearTimeout(timer);
            reject(err);
          },
        );
      });
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
