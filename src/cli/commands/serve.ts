import type { Command } from 'commander';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { startAlertLoop } from '../../ops/alerts/loop.js';
import { opsSettings } from '../../ops/settings.js';
import { buildServer } from '../../ops/server.js';
import { stopSignals } from '../../runtime/signals.js';
import { collect, nonNegativeInt, positiveInt } from '../options.js';
import { openSession } from '../session.js';
import { backendFor, databaseUrlOption } from '../backend.js';
import { targetOf } from '../../backend/pg/setting.js';
import { UsageError } from '../../guard/errors.js';
import { truncate } from '../../strings.js';
import { printOut } from '../format.js';

/**
 * A listen refused for the address given is the command line's (64, naming the flag), not an
 * unexpected failure: a --host that does not resolve or is no address of this machine, a --port
 * in use or not allowed. Anything else is passed on as it is.
 */
function listenError(err: unknown, o: ServeOptions): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'EADDRINUSE' || code === 'EACCES') {
    return new UsageError(
      `--port ${o.port}: cannot listen there (${code}${code === 'EADDRINUSE' ? `: another process listens on ${truncate(o.host, 100)}:${o.port}` : ': a port below 1024 needs privileges'})`,
      { hint: 'give another --port' },
    );
  }
  if (code === 'ENOTFOUND' || code === 'EADDRNOTAVAIL' || code === 'EINVAL' || code === 'EAFNOSUPPORT') {
    return new UsageError(`--host ${truncate(o.host, 100)}: cannot listen there (${code}: ${code === 'ENOTFOUND' ? 'the name does not resolve' : 'not an address of this machine'})`, {
      hint: 'give an address of this machine, such as 127.0.0.1 (the default) or 0.0.0.0',
    });
  }
  return err;
}

const BIN = fileURLToPath(new URL('../../../../bin/metaspn.js', import.meta.url));

interface ServeOptions {
  workspace: string;
  host: string;
  port: number;
  minFreeMb: number;
  alertIntervalSec: number;
  allowedHost?: string[];
  bodyLimitMb: number;
  requestTimeoutSec: number;
  headersTimeoutSec: number;
  databaseUrl?: string;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('the ops server: /health, /health/test, /metrics, the JSON API, guarded writes, the /ops page')
    .option('--workspace <dir>', 'workspace folder', '.')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <n>', 'port', positiveInt('--port'), 4001)
    .option('--min-free-mb <n>', 'readiness fails below this much free disk', positiveInt('--min-free-mb'), 256)
    .option('--alert-interval-sec <n>', 'check alerts (and send them) every N seconds; 0: never', nonNegativeInt('--alert-interval-sec'), 60)
    .option('--allowed-host <name>', 'also answer requests whose Host is this name (repeatable); loopback names, IP addresses and --host always are', collect)
    .option('--body-limit-mb <n>', 'largest task submission body, in MiB (other writes: 64 KiB)', positiveInt('--body-limit-mb'), 8)
    .option('--request-timeout-sec <n>', 'a request (headers and body) must arrive within this; else 408', positiveInt('--request-timeout-sec'), 30)
    .option('--headers-timeout-sec <n>', 'request headers must arrive within this (at most --request-timeout-sec)', positiveInt('--headers-timeout-sec'), 10)
    .addOption(databaseUrlOption())
    .action(async (o: ServeOptions) => {
      // An empty --host would listen on every interface.
      if (o.host.trim() === '')
        throw new UsageError(`--host must name an address to listen on, got ${JSON.stringify(o.host)}`, { hint: 'the default is 127.0.0.1; give 0.0.0.0 or :: to listen on every interface' });
      const s = openSession(o.workspace, { module: 'serve' });
      const settings = opsSettings();
      // The backend whose queues, runs and locks the server shows and changes: a database, or the files.
      const backend = backendFor(s.cfg, o.databaseUrl);
      const app = await buildServer({
        ws: s.ws,
        cfg: s.cfg,
        backend,
        settings,
        log: s.log.logger,
        bin: BIN,
        minFreeBytes: o.minFreeMb * 2 ** 20,
        listenHost: o.host,
        allowedHosts: o.allowedHost ?? [],
        http: { tasksBodyLimit: o.bodyLimitMb * 2 ** 20, requestTimeoutMs: o.requestTimeoutSec * 1000, headersTimeoutMs: Math.min(o.headersTimeoutSec, o.requestTimeoutSec) * 1000 },
        // Only a server that can write keeps queues open: loading them up front spares the first write the log replay.
        preloadQueues: settings.writeEnabled && settings.token !== null,
      });
      const alerts = startAlertLoop({ ws: s.ws, cfg: s.cfg, intervalMs: o.alertIntervalSec * 1000, log: s.log.logger, backend });
      // Sockets no request has arrived on yet (see the shutdown below).
      const unused = new Set<Socket>();
      app.server.on('connection', (socket: Socket) => {
        unused.add(socket);
        socket.once('close', () => unused.delete(socket));
      });
      app.server.on('request', (req: IncomingMessage) => unused.delete(req.socket));
      const url = await app.listen({ host: o.host, port: o.port }).catch(async (err: unknown) => {
        await alerts.stop();
        throw listenError(err, o);
      });
      const where = backend ? `PostgreSQL schema ${backend.schema} at ${targetOf(backend.url)}` : 'workspace files';
      s.log.logger.info({ event: 'serve_start', url, env: settings.env, write_enabled: settings.writeEnabled, backend: where }, 'ops server listening');
      printOut(`metaspn serve: ${url} (${settings.env.toUpperCase()}, writes ${settings.writeEnabled ? 'enabled' : 'disabled'}${backend ? `, ${where}` : ''})\n`);
      const signals = stopSignals(s.log.logger);
      await new Promise<void>((resolve) => {
        signals.stop.addEventListener('abort', () => resolve(), { once: true });
      });
      // close() ends idle connections and waits for the others. A socket a browser opened ahead of
      // need (no request on it yet) counts as busy and would hold it forever: those are closed at
      // once; requests in flight get 5 s, then every connection is closed.
      for (const socket of unused) socket.destroy();
      const grace = setTimeout(() => app.server.closeAllConnections(), 5_000);
      await Promise.race([Promise.all([app.close(), alerts.stop()]), new Promise((r) => signals.force.addEventListener('abort', r, { once: true }))]);
      clearTimeout(grace);
      signals.dispose();
      s.log.logger.info({ event: 'serve_stop' }, 'ops server stopped');
    });
}
