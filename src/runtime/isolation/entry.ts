/**
 * The main of an isolate (a worker thread or a child process): loads the worker module named by
 * the runner, calls its `init` once, then runs one attempt at a time as the runner asks.
 * `ctx.heartbeat` and `ctx.logger` are proxied to the runner, which keeps the lease.
 */
import { parentPort } from 'node:worker_threads';
import pino from 'pino';
import type { TaskRecord } from '../../queue/types.js';
import { EffectBuffer } from '../effects.js';
import { loadWorker } from '../load-worker.js';
import { readThrown } from '../thrown.js';
import type { WorkerContext, WorkerDefinition, WorkerInitContext } from '../worker-api.js';
import type { FromIsolate, IsolateInit, ToIsolate } from './protocol.js';

const port = parentPort;

function send(m: FromIsolate, then?: () => void): void {
  if (port) {
    port.postMessage(m);
    then?.();
  } else if (process.connected) {
    process.send!(m, undefined, {}, () => then?.());
  } else {
    then?.();
  }
}

/** Something escaped the handler (a timer that threw, a promise nobody awaited): say what, then end. */
function crash(err: unknown): void {
  send({ t: 'crash', error: readThrown(err) }, () => process.exit(1));
}
process.on('uncaughtException', crash);
process.on('unhandledRejection', crash);
if (!port) {
  // A child whose runner is gone exits: its lease is gone with the runner.
  process.on('disconnect', () => process.exit(0));
  // Stopping is the runner's call (finish the attempt, or kill it on a second signal), also when a
  // service manager signals every process of the worker at once.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => undefined);
}

let worker: WorkerDefinition | null = null;
let base: WorkerInitContext | null = null;
const running = new Map<number, AbortController>();
const heartbeats = new Map<number, () => void>();
let beats = 0;

async function start(m: IsolateInit): Promise<void> {
  try {
    worker = await loadWorker(m.spec, m.cwd);
    const logger = pino({ level: m.level, base: null, timestamp: false }, { write: (line: string) => send({ t: 'log', line }) });
    base = { logger, workspace: m.workspace, env: m.env };
    await worker.init?.(base);
    send({ t: 'ready' });
  } catch (err) {
    send({ t: 'init_failed', error: readThrown(err) });
  }
}

async function run(n: number, task: TaskRecord, attempt: number): Promise<void> {
  const ctrl = new AbortController();
  running.set(n, ctrl);
  const effects = new EffectBuffer();
  const ctx: WorkerContext = {
    ...base!,
    attempt,
    effects,
    signal: ctrl.signal,
    heartbeat: () =>
      new Promise<void>((resolve) => {
        const k = ++beats;
        heartbeats.set(k, resolve);
        send({ t: 'heartbeat', n, k });
      }),
  };
  try {
    const w = worker!;
    // The runner checked the payload against the same schema; parsing again gives the handler its output.
    const payload = w.payload ? w.payload.parse(task.payload) : task.payload;
    await w.handle({ ...task, payload }, ctx);
    send(effects.list.length ? { t: 'done', n, effects: [...effects.list] } : { t: 'done', n });
  } catch (err) {
    send({ t: 'failed', n, error: readThrown(err) });
  } finally {
    running.delete(n);
  }
}

async function close(): Promise<void> {
  try {
    await worker?.close?.();
  } catch {
    // Nothing to report it to but the exit: the runner is ending anyway.
  }
  send({ t: 'closed' }, () => process.exit(0));
}

function onMessage(m: ToIsolate): void {
  switch (m.t) {
    case 'init':
      void start(m);
      break;
    case 'run':
      void run(m.n, m.task, m.attempt);
      break;
    case 'abort': {
      const reason = new Error(m.message);
      reason.name = m.name;
      running.get(m.n)?.abort(reason);
      break;
    }
    case 'heartbeat_done':
      heartbeats.get(m.k)?.();
      heartbeats.delete(m.k);
      break;
    case 'close':
      void close();
      break;
  }
}

if (port) port.on('message', onMessage);
else process.on('message', (m) => onMessage(m as ToIsolate));
