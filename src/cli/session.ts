import { userInfo } from 'node:os';
import { redactUrl } from '../backend/pg/setting.js';
import { runLocksFor } from './backend.js';
import { loadConfig, type WorkspaceConfig } from '../config/load.js';
import type { RunLocks } from '../guard/run-lock.js';
import { openLog, type LogHandle, type StatusLine } from '../log.js';
import { HOST } from '../queue/owner.js';
import type { WorkspacePaths } from '../storage/paths.js';
import { invocation } from './invocation.js';
import { openWorkspace } from './options.js';

/** What a command that touches a workspace needs: its paths, its config, its log. */
export interface Session {
  ws: WorkspacePaths;
  cfg: WorkspaceConfig;
  log: LogHandle;
  /** Who is acting, for records such as a retry: `user@host: metaspn queue retry …`. */
  actor: string;
  /** The backend's run locks: the database's on PostgreSQL (METASPN_DATABASE_URL, `backend.url`), else the file backend's under `locks/`. */
  locks: RunLocks;
}

/**
 * The command line as typed, quoted so it can be pasted back into a shell. The value of `--payload`
 * is replaced by `<redacted>`: this line goes into every log event, lock payload and record, and a
 * payload may carry data that must not be copied there (the queue log keeps the task itself). The
 * password of a `--database-url` is replaced by `***`.
 */
export function commandLine(argv: readonly string[] = invocation().argv): string {
  const quote = (a: string): string => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  const args = argv.map((a, i) =>
    argv[i - 1] === '--payload'
      ? '<redacted>'
      : a.startsWith('--payload=')
        ? '--payload=<redacted>'
        : argv[i - 1] === '--database-url'
          ? redactUrl(a)
          : a.startsWith('--database-url=')
            ? `--database-url=${redactUrl(a.slice('--database-url='.length))}`
            : a,
  );
  return ['metaspn', ...args.map(quote)].join(' ');
}

/** `logOpts`: `quiet` keeps warnings off the terminal (the log file has them); `status` is a live line they must not mix with. */
export function openSession(dir: string, base: Record<string, unknown> = {}, logOpts: { quiet?: boolean; status?: StatusLine } = {}): Session {
  const ws = openWorkspace(dir);
  const cfg = loadConfig(ws);
  // The command line goes on its own line once, in the first log this invocation opens on the workspace.
  const first = !invocation().logs.some((l) => l.file === ws.logFile);
  const log = openLog(ws, { ...(first ? { cmd: commandLine() } : {}), ...base }, logOpts);
  invocation().logs.push(log);
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry in some containers
  }
  return { ws, cfg, log, actor: `${user}@${HOST}: ${commandLine()}`, locks: runLocksFor(ws, cfg) };
}
