import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { readThrown, type ThrownInfo } from '../thrown.js';
import type { FromIsolate, ToIsolate } from './protocol.js';

/** The script an isolate runs (compiled next to this file). */
const ENTRY = new URL('./entry.js', import.meta.url);

/** A worker thread or a child process running ./entry.ts, seen the same way by the pool. */
export interface IsolateHandle {
  /** `thread 3`, `pid 4242`: for messages. */
  readonly label: string;
  /** Sends a message; throws when it cannot be cloned. A message to an isolate that is gone is dropped. */
  post(m: ToIsolate): void;
  onMessage(f: (m: FromIsolate) => void): void;
  /** Settles once, when the isolate is gone, with how it ended (`exited with code 1`, `killed by SIGKILL`). */
  readonly exited: Promise<string>;
  /** An error the isolate raised outside our handlers (it failed to load, it could not be spawned). */
  failure(): ThrownInfo | null;
  /** Ends it at once (terminate, SIGKILL); resolves when it is gone. */
  kill(): Promise<void>;
}

export function spawnIsolate(kind: 'thread' | 'process', cwd: string): IsolateHandle {
  return kind === 'thread' ? spawnThread() : spawnProcess(cwd);
}

function spawnThread(): IsolateHandle {
  // stdout/stderr of the thread go to the process's own, as an in-process handler's would.
  const w = new Worker(ENTRY);
  let failure: ThrownInfo | null = null;
  w.on('error', (err) => (failure ??= readThrown(err)));
  const exited = new Promise<string>((resolve) => w.once('exit', (code) => resolve(`exited with code ${code}`)));
  return {
    label: `thread ${w.threadId}`,
    post: (m) => w.postMessage(m),
    onMessage: (f) => void w.on('message', f),
    exited,
    failure: () => failure,
    kill: async () => {
      await w.terminate();
      await exited;
    },
  };
}

function spawnProcess(cwd: string): IsolateHandle {
  // A process group of its own: a Ctrl-C at the terminal reaches the worker alone, which decides
  // (finish, or kill on the second one), and a kill takes whatever the handler started with it.
  const c = fork(fileURLToPath(ENTRY), [], { cwd, serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'], detached: true });
  let failure: ThrownInfo | null = null;
  // A failed spawn or a message to a closed channel: recorded, never thrown where nothing catches it.
  c.on('error', (err) => (failure ??= readThrown(err)));
  const exited = new Promise<string>((resolve) => {
    c.once('exit', (code, signal) => resolve(signal ? `killed by ${signal}` : `exited with code ${code}`));
    // A process that could not be spawned emits 'error' and never 'exit'.
    c.once('error', () => {
      if (c.pid === undefined) resolve('could not be started');
    });
  });
  return {
    label: `pid ${c.pid ?? '?'}`,
    post: (m) => {
      if (c.connected) c.send(m);
    },
    onMessage: (f) => void c.on('message', (m) => f(m as FromIsolate)),
    exited,
    failure: () => failure,
    kill: async () => {
      if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) {
        try {
          process.kill(-c.pid, 'SIGKILL');
        } catch {
          c.kill('SIGKILL');
        }
      }
      await exited;
    },
  };
}
