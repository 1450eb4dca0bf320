/**
 * A private PostgreSQL cluster for the chaos suites: initdb in a temporary folder, a free port on
 * 127.0.0.1, trust authentication, durable commits (fsync on), and the operations chaos needs: a
 * crash (`pg_ctl stop -m immediate`) and a start (crash recovery), and terminating sessions.
 *
 * initdb and postgres refuse to run as root: as root (CI), they run as the `postgres` OS user
 * through runuser (the folder is handed to that user). {@link clusterUnavailable} says why a
 * cluster cannot be had here (no binaries, root without runuser or a postgres user), so a suite
 * can skip with that message.
 */
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

const BIN_ROOT = '/usr/lib/postgresql';

/** The newest installed server's bin folder (with initdb, pg_ctl and postgres), or null. */
export function pgBinDir(): string | null {
  if (!existsSync(BIN_ROOT)) return null;
  const versions = readdirSync(BIN_ROOT)
    .filter((v) => ['initdb', 'pg_ctl', 'postgres'].every((b) => existsSync(join(BIN_ROOT, v, 'bin', b))))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(BIN_ROOT, versions[0], 'bin') : null;
}

/** The OS user the server runs as when we are root: its uid and gid. */
function postgresUser(): { uid: number; gid: number } | null {
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : null;
  } catch {
    return null;
  }
}

const RUNUSER = ['/usr/sbin/runuser', '/sbin/runuser', '/usr/bin/runuser'].find((p) => existsSync(p)) ?? null;

/** Why no private cluster can be started here, or null when one can. */
export function clusterUnavailable(): string | null {
  if (!pgBinDir()) return `no PostgreSQL server binaries under ${BIN_ROOT}/*/bin (initdb, pg_ctl, postgres)`;
  if (process.getuid?.() === 0) {
    if (!postgresUser()) return 'running as root, and there is no `postgres` OS user to run initdb and postgres as (they refuse root)';
    if (!RUNUSER) return 'running as root, and runuser is missing (needed to run initdb and postgres as the postgres user)';
  }
  return null;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface Cluster {
  port: number;
  /** The cluster's folder (data, log, socket). */
  dir: string;
  /** URL of database `db` as user postgres. */
  url(db: string): string;
  /** A crash: every backend killed at once, no checkpoint (`pg_ctl stop -m immediate`). */
  crash(): Promise<void>;
  /** Starts the server (after a crash: crash recovery) and waits until it accepts connections. */
  start(): Promise<void>;
  /** Terminates up to `n` sessions of database `db` whose application_name starts with `app` (random ones); returns how many. */
  terminate(db: string, app: string, n: number): Promise<number>;
  /** The server log (for a failure message). */
  log(): string;
  /** Stops the server and removes the folder. */
  destroy(): Promise<void>;
}

/** Creates and starts a cluster. Call {@link clusterUnavailable} first. */
export async function startCluster(): Promise<Cluster> {
  const bin = pgBinDir()!;
  const root = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'metaspn-pgchaos-'));
  if (root) {
    const u = postgresUser()!;
    chownSync(dir, u.uid, u.gid);
  }
  const data = join(dir, 'data');
  const logFile = join(dir, 'server.log');
  const port = await freePort();
  /** Runs a server binary (as the postgres user when we are root), without blocking the event loop. */
  const as = (cmd: string, args: string[]): Promise<void> =>
    new Promise((resolve, reject) => {
      const [file, argv] = root ? [RUNUSER!, ['-u', 'postgres', '--', join(bin, cmd), ...args]] : [join(bin, cmd), args];
      execFile(file, argv, { encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) => {
        if (!err) return resolve();
        const log = existsSync(logFile) ? `\nserver log:\n${readFileSync(logFile, 'utf8').slice(-2000)}` : '';
        reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}: ${stderr || stdout}${log}`));
      });
    });
  await as('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
  const opts = [
    `-p ${port}`,
    "-c listen_addresses='127.0.0.1'",
    `-c unix_socket_directories='${dir}'`,
    '-c max_connections=80',
    '-c shared_buffers=32MB',
    '-c fsync=on',
    '-c synchronous_commit=on',
    '-c full_page_writes=on',
  ].join(' ');
  const start = (): Promise<void> => as('pg_ctl', ['-D', data, '-l', logFile, '-w', '-t', '60', '-o', opts, 'start']);
  await start();
  const url = (db: string): string => `postgres://postgres@127.0.0.1:${port}/${db}`;
  let destroyed = false;
  return {
    port,
    dir,
    url,
    crash: () => as('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']),
    start,
    async terminate(db, app, n) {
      const c = new pg.Client({ connectionString: url('postgres') });
      // The server may crash under this connection (a restart the suite makes at the same time): an
      // 'error' event without a listener would be an uncaught exception in the test process.
      c.on('error', () => undefined);
      await c.connect();
      try {
        const r = await c.query<{ ok: boolean }>(
          `SELECT pg_terminate_backend(pid) AS ok FROM (
             SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE $2 AND pid <> pg_backend_pid() ORDER BY random() LIMIT $3) s`,
          [db, `${app}%`, n],
        );
        return r.rows.filter((x) => x.ok).length;
      } finally {
        await c.end().catch(() => undefined);
      }
    },
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      try {
        await as('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } catch {
        // Not running (a test stopped it): nothing to stop.
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
