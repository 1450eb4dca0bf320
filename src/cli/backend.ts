import { Option } from 'commander';
import { resolveBackend, type PgSetting } from '../backend/pg/setting.js';
import type { WorkspaceConfig } from '../config/load.js';
import type { RunLocks } from '../guard/run-lock.js';
import type { WorkspacePaths } from '../storage/paths.js';

/**
 * `--database-url URL`: the same option on every command that opens a queue. It wins over
 * METASPN_DATABASE_URL and `backend.url` of metaspn.config.json; with none of them a command uses
 * the file backend.
 */
export function databaseUrlOption(): Option {
  return new Option('--database-url <url>', 'PostgreSQL backend, postgres://USER@HOST:5432/DB (default: METASPN_DATABASE_URL, then backend.url in metaspn.config.json, else the file backend)');
}

/**
 * The backend of a command: PostgreSQL from `flag`, the environment or the config, or null (files).
 * @throws UsageError (64) for a bad `--database-url`; DataInvalidError (20) for a bad METASPN_DATABASE_URL.
 */
export function backendFor(cfg: WorkspaceConfig, flag: string | undefined): PgSetting | null {
  return resolveBackend({ flag, env: process.env, config: cfg.backend, configFile: cfg.file });
}

/** The queues the database knows (enqueued to or paused there), sorted. */
export async function pgQueueNames(setting: PgSetting): Promise<string[]> {
  // The PostgreSQL backend is loaded when a command uses it: a command on files does not pay for it.
  const { PgQueue } = await import('../backend/pg/pg-queue.js');
  const q = new PgQueue({ name: 'queues', setting });
  try {
    return [...(await q.queueNames())].sort();
  } finally {
    await q.close();
  }
}

/** True when the database knows queue `name` (it was enqueued to or paused there). */
export async function pgQueueExists(setting: PgSetting, name: string): Promise<boolean> {
  const { PgQueue } = await import('../backend/pg/pg-queue.js');
  const q = new PgQueue({ name, setting });
  try {
    return (await q.queueNames()).includes(name);
  } finally {
    await q.close();
  }
}

/**
 * The run locks of the backend a command uses, chosen at their first use (so a command that never
 * takes a lock never reads the backend setting): PostgreSQL's (PgRunLocks, in the database's
 * `run_lock` table) when `flag`, METASPN_DATABASE_URL or `backend.url` names a database, else the
 * workspace's `locks/` (FileRunLocks).
 * @throws (from acquire and status) UsageError (64) for a bad `flag`; DataInvalidError (20) for a
 *   bad METASPN_DATABASE_URL.
 */
export function runLocksFor(ws: WorkspacePaths, cfg: WorkspaceConfig, flag?: string): RunLocks {
  let locks: Promise<RunLocks> | null = null;
  const get = (): Promise<RunLocks> => {
    if (!locks) {
      const pg = backendFor(cfg, flag);
      // Each backend's module is loaded when a lock is first taken or read.
      locks = pg ? pgRunLocks(pg) : import('../storage/run-lock.js').then(({ FileRunLocks }) => new FileRunLocks(ws.locks));
    }
    return locks;
  };
  return { acquire: async (o) => (await get()).acquire(o), status: async (name, o) => (await get()).status(name, o) };
}

/** The database's run locks (PgRunLocks), its module loaded on first use. */
export async function pgRunLocks(setting: PgSetting): Promise<RunLocks> {
  const { PgRunLocks } = await import('../backend/pg/run-locks.js');
  return new PgRunLocks({ setting });
}
