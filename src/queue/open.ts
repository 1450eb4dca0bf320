import type { Logger } from 'pino';
import { PgQueue } from '../backend/pg/pg-queue.js';
import { resolveBackend, type PgSetting } from '../backend/pg/setting.js';
import { loadConfig } from '../config/load.js';
import type { QueuePolicy } from '../config/policy.js';
import type { WorkspacePaths } from '../storage/paths.js';
import { FileQueue } from './file/file-queue.js';
import type { Queue } from './types.js';

/**
 * The one place that picks a backend for a workspace: PostgreSQL when `backend` names one (a
 * command's resolved --database-url, METASPN_DATABASE_URL, config `backend.url`), else the file
 * backend. `backend` undefined: resolved here from the environment and the workspace's config.
 * Opening connects nothing: a PgQueue connects (and migrates its schema) on its first statement.
 * @throws DataInvalidError (20) when METASPN_DATABASE_URL or the config file is invalid.
 */
export function openQueue(ws: WorkspacePaths, name: string, policy: QueuePolicy, log: Logger, backend?: PgSetting | null): Queue {
  const pg = backend === undefined ? backendOfWorkspace(ws) : backend;
  if (pg) return new PgQueue({ name, setting: pg, max_attempts: policy.max_attempts, max_queue_size: policy.max_queue_size, ack_window_ms: policy.ack_window_ms, start_ahead: policy.start_ahead });
  return new FileQueue({
    workspace: ws.root,
    name,
    max_attempts: policy.max_attempts,
    ack_window_ms: policy.ack_window_ms,
    max_queue_size: policy.max_queue_size,
    warn: (msg, details) => log.warn({ queue: name, ...details }, msg),
  });
}

/** The backend the environment and the workspace's config select (no flag): null for the file backend. */
export function backendOfWorkspace(ws: WorkspacePaths): PgSetting | null {
  const cfg = loadConfig(ws);
  return resolveBackend({ env: process.env, config: cfg.backend, configFile: cfg.file });
}
