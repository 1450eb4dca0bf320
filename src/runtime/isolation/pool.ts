import type { Logger } from 'pino';
import { HandlerError, readThrown, type ThrownInfo } from '../thrown.js';
import type { WorkerInitContext } from '../worker-api.js';
import { IsolateStartError, type Attempt, type HandlerHost } from './host.js';
import type { FromIsolate } from './protocol.js';
import { spawnIsolate, type IsolateHandle } from './spawn.js';

export interface IsolatedHostOptions {
  isolation: 'thread' | 'process';
  /** `<module>:<Export>`, as given to `worker run`; each isolate loads it itself. */
  spec: string;
  /** What `spec` is resolved against. Default: the current directory. */
  cwd?: string;
  /** The context each isolate's `init` gets; `env` must survive structured clone, `logger` receives the isolates' lines. */
  init: WorkerInitContext;
  /**
   * How long an attempt may take to end after its signal aborted (timeout, lost lease) before its
   * isolate is killed: a handler that listens to ctx.signal keeps its warm isolate. Default 200 ms.
   */
  graceMs?: number;
}

/** The isolate running an attempt died (a crash, process.exit, a native failure): the attempt failed. */
export class IsolateExitError extends HandlerError {
  constructor(label: string, how: string, crash: ThrownInfo | null) {
    super({
      name: 'IsolateExitError',
      message: crash ? `the handler's isolate (${label}) ${how} after ${crash.name}: ${crash.message}` : `the handler's isolate (${label}) ${how}`,
      ...(crash?.stack ? { stack: crash.stack } : {}),
      unrecoverable: false,
    });
  }
}

/**
 * Runs handlers in isolates, one per concurrency slot: a worker thread or a child process that
 * loads the worker module once, runs its `init`, then runs one attempt after another. The runner
 * keeps the lease in its own event loop, so a handler that blocks its isolate cannot starve it;
 * an attempt that must stop is asked through its signal and, unless it ends within `graceMs`,
 * its isolate is killed and replaced by a fresh one on the next attempt.
 */
export function isolatedHost(o: IsolatedHostOptions): HandlerHost {
  const slots = new Set<Slot>();
  const idle: Slot[] = [];
  let closed = false;
  const grace = o.graceMs ?? 200;
  const cwd = o.cwd ?? process.cwd();
  const log = o.init.logger;

  return {
    isolation: o.isolation,
    async run(a) {
      if (closed) throw new Error('the worker is closing: no new attempt starts');
      let slot = idle.pop();
      while (slot && slot.gone) slot = idle.pop();
      if (!slot) {
        slot = new Slot(o, cwd, grace, log);
        slots.add(slot);
        void slot.handle.exited.then(() => slots.delete(slot!));
      }
      try {
        await slot.run(a);
      } finally {
        if (!slot.gone && !slot.killing && !closed) idle.push(slot);
      }
    },
    async close() {
      closed = true;
      idle.length = 0;
      await Promise.all([...slots].map((s) => (s.busy ? s.kill() : s.close())));
    },
  };
}

/** One isolate and the attempt it runs. */
class Slot {
  readonly handle: IsolateHandle;
  readonly ready: Promise<void>;
  gone = false;
  killing = false;
  busy = false;
  private crash: ThrownInfo | null = null;
  private current: { n: number; a: Attempt; finish(err?: unknown): void } | null = null;
  private seq = 0;
  private closedAck: (() => void) | null = null;

  constructor(
    o: IsolatedHostOptions,
    cwd: string,
    private readonly grace: number,
    private readonly log: Logger,
  ) {
    const h = spawnIsolate(o.isolation, cwd);
    this.handle = h;
    let readyDone!: () => void;
    let readyFailed!: (e: Error) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      readyDone = resolve;
      readyFailed = reject;
    });
    // Observed here so a start failure is never an unhandled rejection; callers await it too.
    this.ready.catch(() => undefined);
    const what = `worker ${o.spec} in its ${o.isolation === 'thread' ? 'thread' : 'child process'} (${h.label})`;
    h.onMessage((m) => this.receive(m, readyDone, (info) => readyFailed(new IsolateStartError(`${what} failed to start: ${info.name}: ${info.message}`))));
    void h.exited.then((how) => {
      this.gone = true;
      const why = this.crash ?? h.failure();
      readyFailed(new IsolateStartError(`${what} ${how} before it was ready${why ? `: ${why.name}: ${why.message}` : ''}`));
      this.closedAck?.();
      if (this.current) this.current.finish(new IsolateExitError(h.label, how, why));
      else if (!this.killing) log.warn({ event: 'isolate_exit', isolate: h.label, how }, `${what} ${how} while idle; the next task gets a fresh one`);
    });
    try {
      h.post({ t: 'init', spec: o.spec, cwd, workspace: o.init.workspace, env: o.init.env, level: o.init.logger.level });
    } catch (err) {
      // ctx.env that cannot be cloned (a function, a class instance holding handles).
      readyFailed(new IsolateStartError(`${what} cannot be given its context: ${readThrown(err).message}; with isolation ${o.isolation}, ctx.env must survive structured clone`));
      void this.kill();
    }
  }

  run(a: Attempt): Promise<void> {
    this.busy = true;
    const n = ++this.seq;
    return new Promise<void>((resolve, reject) => {
      let stopped = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (err?: unknown): void => {
        if (this.current?.n !== n) return;
        this.current = null;
        this.busy = false;
        clearTimeout(timer);
        if (err === undefined) resolve();
        else reject(err);
      };
      this.current = { n, a, finish };
      a.onStop((reason, now) => {
        if (!stopped) this.handle.post({ t: 'abort', n, message: reason.message, name: reason.name });
        stopped = true;
        // The attempt settles when the isolate is gone, or when it ends the attempt within the grace.
        if (now) {
          clearTimeout(timer);
          void this.kill();
        } else {
          timer ??= setTimeout(() => void this.kill(), this.grace);
        }
      });
      this.ready.then(
        () => {
          if (stopped || this.current?.n !== n) return;
          a.started();
          this.handle.post({ t: 'run', n, task: a.task, attempt: a.ctx.attempt });
        },
        (err: unknown) => finish(err),
      );
    });
  }

  private receive(m: FromIsolate, ready: () => void, initFailed: (e: ThrownInfo) => void): void {
    const cur = this.current;
    switch (m.t) {
      case 'ready':
        ready();
        break;
      case 'init_failed':
        initFailed(m.error);
        void this.kill();
        break;
      case 'done':
        if (cur?.n !== m.n) break;
        if (m.effects?.length) {
          try {
            cur.a.ctx.effects.add(...m.effects);
          } catch (err) {
            cur.finish(err);
            break;
          }
        }
        cur.finish();
        break;
      case 'failed':
        if (cur?.n === m.n) cur.finish(new HandlerError(m.error));
        break;
      case 'heartbeat':
        if (cur?.n !== m.n) break;
        void cur.a.ctx
          .heartbeat()
          .catch(() => undefined)
          .then(() => this.handle.post({ t: 'heartbeat_done', k: m.k }));
        break;
      case 'log':
        this.forward(m.line);
        break;
      case 'crash':
        this.crash = m.error;
        break;
      case 'closed':
        this.closedAck?.();
        break;
    }
  }

  /** A line of the isolate's pino logger, logged by the runner's (with its bindings: worker, run). */
  private forward(line: string): void {
    try {
      const { level, msg, ...fields } = JSON.parse(line) as { level: number; msg?: string } & Record<string, unknown>;
      const label = (this.log.levels.labels[level] ?? 'info') as 'info';
      this.log[label](fields, msg);
    } catch {
      // Not a pino line: nothing sensible to log.
    }
  }

  async kill(): Promise<void> {
    this.killing = true;
    await this.handle.kill();
  }

  /** Asks the isolate to run the worker's `close` and exit; kills it after 10 s. */
  async close(): Promise<void> {
    if (this.gone) return;
    const acked = new Promise<void>((resolve) => (this.closedAck = resolve));
    this.killing = true;
    this.handle.post({ t: 'close' });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, 10_000)));
    await Promise.race([acked.then(() => this.handle.exited), late]);
    clearTimeout(timer);
    if (!this.gone) await this.handle.kill();
  }
}
