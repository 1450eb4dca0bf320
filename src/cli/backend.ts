import { Option } from 'commander';
import { PgQueue } from '../backend/pg/pg-queue.js';
import { resolveBackend, type PgSetting } from '../backend/pg/setting.js';
import type { WorkspaceConfig } from '../config/load.js';

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
  const q = new PgQueue({ name: 'queues', setting });
  try {
    return [...(await q.queueNames())].sort();
  } finally {
    await q.close();
  }
}

/** True when the database knows queue `name` (it was enqueued to or paused there). */
export async function pgQueueExists(setting: PgSetting, name: string): Promise<boolean> {
  const q = new PgQueue({ name, setting });
  try {
    return (await q.queueNames()).includes(name);
  } finally {
    await q.close();
  }
}
