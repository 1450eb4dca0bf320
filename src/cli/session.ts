import { userInfo } from 'node:os';
import { loadConfig, type WorkspaceConfig } from '../config/load.js';
import { openLog, type LogHandle } from '../log.js';
import { HOST } from '../queue/owner.js';
import type { WorkspacePaths } from '../storage/paths.js';
import { openWorkspace } from './options.js';

/** What a command that touches a workspace needs: its paths, its config, its log. */
export interface Session {
  ws: WorkspacePaths;
  cfg: WorkspaceConfig;
  log: LogHandle;
  /** Who is acting, for records such as a retry: `user@host: metaspn queue retry …`. */
  actor: string;
}

export function commandLine(): string {
  return ['metaspn', ...process.argv.slice(2)].join(' ');
}

const opened: LogHandle[] = [];

/** Flushes every log a command opened; the CLI calls it before exiting. */
export function flushLogs(): void {
  for (const l of opened.splice(0)) l.flush();
}

export function openSession(dir: string, base: Record<string, unknown> = {}): Session {
  const ws = openWorkspace(dir);
  const cfg = loadConfig(ws);
  const log = openLog(ws, { cmd: commandLine(), ...base });
  opened.push(log);
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry in some containers
  }
  return { ws, cfg, log, actor: `${user}@${HOST}: ${commandLine()}` };
}
