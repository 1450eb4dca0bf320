import type { Logger } from 'pino';
import type { PgQueueOptions } from '../backend/pg/pg-queue.js';
import { resolveBackend, type PgSetting } from '../backend/pg/setting.js';
import { loadConfig } from '../config/load.js';
import type { QueuePolicy } from '../config/policy.js';
import type { WorkspacePaths } from '../storage/paths.js';
import { FileQueue } from './file/file-queue.js';
import type { Queue } from './types.js';

/**
 * openQueue (src/queue/open.ts) for a caller that can wait: the PostgreSQL backend's module is
 * loaded only when the queue is in a database, so a command on files does not pay for loading it
 * (the CLI's `queue` and `worker` commands). The same choice of backend, the same options.
 * @throws DataInvalidError (20) when METASPN_DATABASE_URL or the config file is invalid.
 */
export async function openQueueLazy(ws: WorkspacePaths, name: string, policy: QueuePolicy, log: Logger, backend?: PgSetting | null): Promise<Queue> {
  const pg = backend === undefined ? backendOfWorkspace(ws) : backend;
  if (!pg) return fileQueue(ws, name, policy, log);
  const { PgQueue } = await import('../backend/pg/pg-queue.js');
  return new PgQueue(pgQueueOptions(name, pg, policy));
}

/** The backend the environment and the workspace's config select (no flag): null for the file backend. */
export function backendOfWorkspace(ws: WorkspacePaths): PgSetting | null {
  const cfg = loadConfig(ws);
  return resolveBackend({ env: process.env, config: cfg.backend, configFile: cfg.file });
}

/** The options of queue `name` in the database `pg` names, from its policy. */
export function pgQueueOptions(name: string, pg: PgSetting, policy: QueuePolicy): PgQueueOptions {
  return { name, setting: pg, max_attempts: policy.max_attempts, max_queue_size: policy.max_queue_size, ack_window_ms: policy.ack_window_ms, start_ahead: policy.start_ahead };
}

/** Queue `name` of the workspace's files, its warnings logged. */
export function fileQueue(ws: WorkspacePaths, name: string, policy: QueuePolicy, log: Logger): FileQueue {
  return new FileQueue({
    workspace: ws.root,
    name,
    max_attempts: policy.max_attempts,
    ack_window_ms: policy.ack_window_ms,
    max_queue_size: policy.max_queue_size,
    warn: (msg, details) => log.warn({ queue: name, ...details }, msg),
  });
}
