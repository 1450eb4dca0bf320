import type { TaskEffect, TaskRecord } from '../../queue/types.js';
import type { WorkspacePaths } from '../../storage/paths.js';
import type { ThrownInfo } from '../thrown.js';

/** The messages between the runner and an isolate (a worker thread or a child process), by structured clone. */

/** What an isolate needs to load the worker and call its `init`. */
export interface IsolateInit {
  t: 'init';
  /** `<module>:<Export>`, resolved against `cwd` as `worker run` did. */
  spec: string;
  cwd: string;
  workspace: WorkspacePaths;
  env: Readonly<Record<string, unknown>>;
  /** pino level of the runner's logger. */
  level: string;
}

export type ToIsolate =
  | IsolateInit
  | { t: 'run'; n: number; task: TaskRecord; attempt: number }
  /** The attempt must stop: its ctx.signal aborts; the runner kills the isolate if it does not end at once. */
  | { t: 'abort'; n: number; message: string; name: string }
  | { t: 'heartbeat_done'; k: number }
  /** Call the worker's `close`, then exit. */
  | { t: 'close' };

export type FromIsolate =
  | { t: 'ready' }
  | { t: 'init_failed'; error: ThrownInfo }
  /** The attempt ended; `effects`: what its handler recorded (ctx.effects), when anything. */
  | { t: 'done'; n: number; effects?: TaskEffect[] }
  | { t: 'failed'; n: number; error: ThrownInfo }
  | { t: 'heartbeat'; n: number; k: number }
  /** One line of the handler's pino logger, for the runner's logger. */
  | { t: 'log'; line: string }
  /** An uncaught exception or unhandled rejection: the isolate exits after sending it. */
  | { t: 'crash'; error: ThrownInfo }
  | { t: 'closed' };
