/**
 * The runner's surroundings on the file backend: the workspace's stores, its queues, its inputs
 * (read through the workspace boundary: no link is followed), its incident reports. On
 * PostgreSQL (`pgDeps`): the stores and the queues are the database's; inputs and incident
 * reports stay in the workspace.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Logger } from 'pino';
import { PgStores } from '../backend/pg/stores.js';
import type { PgSetting } from '../backend/pg/setting.js';
import { policyFor, type WorkspaceConfig } from '../config/load.js';
import { openQueue } from '../queue/open.js';
import { makeOwner } from '../queue/owner.js';
import { writeIncident } from '../storage/incidents.js';
import type { WorkspacePaths } from '../storage/paths.js';
import { safeReadFile } from '../storage/safe-path.js';
import type { RunnerDeps } from './runner.js';
import { FileStores } from './stores.js';

/**
 * RunnerDeps over a workspace on disk. Close `stores` when done. `readOnly`: rows are read straight
 * from their files and nothing is written (doctor); default false.
 */
export function fileDeps(ws: WorkspacePaths, cfg: WorkspaceConfig, log: Logger, o: { readOnly?: boolean } = {}): RunnerDeps & { stores: FileStores } {
  return {
    ws,
    stores: new FileStores(ws, (msg, d) => log.warn(d, msg), o.readOnly ?? false),
    queue: (name, defaults) => {
      const policy = policyFor(cfg, name, defaults);
      return { queue: openQueue(ws, name, policy, log), policy };
    },
    readInput: (name) => {
      const path = join(ws.inputs, name);
      const exists = existsSync(path);
      const text = exists ? safeReadFile(path) : '';
      return { name, path: relative(ws.root, path), sha256: createHash('sha256').update(text).digest('hex'), text, exists };
    },
    incident: (kind, subject, body) => writeIncident(ws, kind, subject, body),
    log,
    owner: makeOwner(),
  };
}

/**
 * RunnerDeps with what the runner persists (rows, manifests, pointers, ledger: PgStores) and its
 * queues (PgQueue) in the database `setting` names; inputs are read and incident reports written
 * in the workspace, as on files. Nothing connects until the first statement. Close `stores` when done.
 */
export function pgDeps(ws: WorkspacePaths, cfg: WorkspaceConfig, log: Logger, setting: PgSetting): RunnerDeps & { stores: PgStores } {
  return {
    ...fileDeps(ws, cfg, log),
    stores: new PgStores({ setting }),
    queue: (name, defaults) => {
      const policy = policyFor(cfg, name, defaults);
      return { queue: openQueue(ws, name, policy, log, setting), policy };
    },
  };
}
