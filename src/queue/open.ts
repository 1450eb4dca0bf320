import type { Logger } from 'pino';
import { PgQueue } from '../backend/pg/pg-queue.js';
import type { PgSetting } from '../backend/pg/setting.js';
import type { QueuePolicy } from '../config/policy.js';
import type { WorkspacePaths } from '../storage/paths.js';
import { backendOfWorkspace, fileQueue, pgQueueOptions } from './open-lazy.js';
import type { Queue } from './types.js';

export { backendOfWorkspace };

/**
 * The one place that picks a backend for a workspace: PostgreSQL when `backend` names one (a
 * command's resolved --database-url, METASPN_DATABASE_URL, config `backend.url`), else the file
 * backend. `backend` undefined: resolved here from the environment and the workspace's config.
 * Opening connects nothing: a PgQueue connects (and migrates its schema) on its first statement.
 * A caller that can wait and mostly works on files uses openQueueLazy (src/queue/open-lazy.ts).
 * @throws DataInvalidError (20) when METASPN_DATABASE_URL or the config file is invalid.
 */
export function openQueue(ws: WorkspacePaths, name: string, policy: QueuePolicy, log: Logger, backend?: PgSetting | null): Queue {
  const pg = backend === undefined ? backendOfWorkspace(ws) : backend;
  if (pg) return new PgQueue(pgQueueOptions(name, pg, policy));
  return fileQueue(ws, name, policy, log);
}
