import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { parseJsonWithin, utf8Fault } from '../config/json-limits.js';
import { MetaspnError, toMetaspnError } from '../guard/errors.js';
import { isoTimes, jsonDoc } from '../json-doc.js';
import { truncate } from '../strings.js';
import type { WorkspaceConfig } from '../config/load.js';
import { resolveBackend, type PgSetting } from '../backend/pg/setting.js';
import { opsSource } from './source.js';
import { queueFolders, type WorkspacePaths } from '../storage/paths.js';
import type { StateFileProblem } from '../storage/state-file.js';
import { checkRead, checkWrite, refuse } from './auth.js';
import { readiness } from './health.js';
import { checkHost, hostPolicy } from './host.js';
import { workspaceMetrics } from './metrics.js';
import { registerApi, TASKS_ROUTE } from './api.js';
import { registerOpsPage } from './page.js';
import { stateFileProblems } from './problems.js';
import type { OpsSettings } from './settings.js';

/** Bounds on what a client may send, and how slowly (docs/OPS.md section 1). */
export interface HttpLimits {
  /** Largest body of a task submission, in bytes. Default 8 MiB (`serve --body-limit-mb`). */
  tasksBodyLimit: number;
  /** Largest body of every other route, in bytes. Default 64 KiB. */
  bodyLimit: number;
  /** The whole request, headers and body, must arrive within this; else 408 and the connection is closed. Default 30 s. */
  requestTimeoutMs: number;
  /** The headers must arrive within this. Default 10 s (at most requestTimeoutMs). */
  headersTimeoutMs: number;
  /** A connection with nothing sent or received for this long is closed. Default 60 s. */
  idleTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. Default 5 s. */
  keepAliveTimeoutMs: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  tasksBodyLimit: 8 << 20,
  bodyLimit: 64 << 10,
  requestTimeoutMs: 30_000,
  headersTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5_000,
};

export interface OpsContext {
  ws: WorkspacePaths;
  cfg: WorkspaceConfig;
  /**
   * The PostgreSQL backend the server reads and writes (queues, dead letters, runs, pointers, run
   * locks, worker presence), or null/absent for the workspace's files. Default: absent (files).
   */
  backend?: PgSetting | null;
  settings: OpsSettings;
  log: Logger;
  /** The CLI entry, to start runs as child processes. */
  bin: string;
  /** Free disk below this fails readiness. Default 256 MiB. */
  minFreeBytes: number;
  /** Default DEFAULT_HTTP_LIMITS. */
  http?: Partial<HttpLimits>;
  /** The address or name the server listens on (`--host`): its name is an accepted Host. Default 127.0.0.1. */
  listenHost?: string;
  /** More host names to answer (`--allowed-host`), besides METASPN_ALLOWED_HOSTS. */
  allowedHosts?: string[];
  /** Open every existing queue (load its log) once the server listens, so no later write pays for it. Default false. */
  preloadQueues?: boolean;
}

const HTTP_BY_CODE: Record<string, number> = { USAGE: 400, DATA_INVALID: 400, BUSINESS_REJECT: 409, BUSINESS_SKIP: 429, LOCK_TIMEOUT: 409, STATE_CORRUPT: 500, ANOMALY_HALT: 409, INTERNAL_ERROR: 500 };

/** How long /health/test reuses its scan of the state files (each scan reads every manifest). */
const PROBLEMS_TTL_MS = 10_000;

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

function isHealth(url: string): boolean {
  return url === '/health' || url.startsWith('/health/') || url.startsWith('/health?');
}

/** Refuses before the body is read, and closes the connection so an unread body is never taken in. */
function refuseAndClose(reply: FastifyReply, r: { status: number; reason: string }): FastifyReply {
  void reply.header('connection', 'close');
  return refuse(reply, r);
}

/**
 * The ops server over one workspace: health, readiness, metrics, a JSON API and guarded writes.
 * It reads the same files as the CLI and writes through the same Queue and run lock, so it runs
 * beside cron runs without disturbing them.
 *
 * Every request passes, in order and before its body is read: the Host check (421), read access
 * (every GET but health: 401 off loopback without the token), and for every other method the
 * write checks (403/401). So an unauthenticated body, slow or huge, is refused at its headers.
 */
export async function buildServer(given: OpsContext): Promise<FastifyInstance> {
  // The backend: as given (serve resolves --database-url), else what the environment and the config say.
  const ctx: OpsContext = { ...given, backend: given.backend !== undefined ? given.backend : resolveBackend({ env: process.env, config: given.cfg.backend, configFile: given.cfg.file }) };
  const limits: HttpLimits = { ...DEFAULT_HTTP_LIMITS, ...ctx.http };
  const headersTimeout = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  const app = Fastify({
    logger: false,
    trustProxy: false,
    bodyLimit: limits.bodyLimit,
    requestTimeout: limits.requestTimeoutMs,
    connectionTimeout: limits.idleTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // Node checks request and headers timeouts every connectionsCheckingInterval (30 s by default).
    http: { headersTimeout, connectionsCheckingInterval: Math.min(1_000, headersTimeout) },
    // What is refused before any route (a URL that does not decode, headers past Node's size, a
    // request too slow or malformed) answers as every other error does: one JSON document with
    // "schema_version" and "error", nothing of the request echoed back.
    frameworkErrors: (err, _req, reply) => {
      // The router's segment limit (100 characters, maxParamLength) is the longest queue name and run id.
      const long = (err as { code?: string }).code === 'FST_ERR_MAX_PARAM_LENGTH';
      void (reply as unknown as FastifyReply)
        .code(long ? 414 : 400)
        .type('application/json')
        .send(
          JSON.stringify(
            jsonDoc({
              error: long
                ? 'a segment of the request path is longer than 100 characters (queue names and run ids are at most 100)'
                : 'the request URL is not valid (a % that is not followed by two hex digits, or a code that is not UTF-8)',
            }),
          ),
        );
    },
    clientErrorHandler: clientError,
  });
  const started = Date.now();
  // Every read of the page, the API, /metrics and readiness goes through one source: the files, or the database.
  const source = opsSource(ctx.ws, ctx.backend ?? null);
  app.addHook('onClose', async () => source.close());
  const metrics = workspaceMetrics(ctx.ws, source);
  const hosts = hostPolicy(ctx.listenHost ?? '127.0.0.1', [...ctx.settings.allowedHosts, ...(ctx.allowedHosts ?? [])]);
  let problems: { at: number; list: StateFileProblem[] } | null = null;
  const problemsCached = (ws: WorkspacePaths): StateFileProblem[] => {
    if (!problems || Date.now() - problems.at > PROBLEMS_TTL_MS) problems = { at: Date.now(), list: stateFileProblems(ws) };
    return problems.list;
  };

  // JSON only: any other content type is 415 (a text/plain body must never reach a handler as a string).
  app.removeAllContentTypeParsers();
  // Signed submissions are verified over the exact bytes received.
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, bytes, done) => {
    // Bytes that are not UTF-8 would decode to U+FFFD: refused, as in a task file.
    const bad = utf8Fault(bytes as Buffer);
    if (bad) return done(new MetaspnError('USAGE', `the request body is refused: not UTF-8 (byte 0x${bad.byte.toString(16).padStart(2, '0')} at byte ${bad.offset + 1}); send it as UTF-8`), undefined);
    const body = (bytes as Buffer).toString('utf8');
    (req as unknown as { rawBody: string }).rawBody = body;
    if (body.trim() === '') return done(null, undefined);
    // The JSON limits of every reader of outside data (depth, numbers JSON cannot carry exactly).
    const parsed = parseJsonWithin(body, { what: 'request body', maxChars: Number.MAX_SAFE_INTEGER });
    if (!parsed.ok) return done(new MetaspnError('USAGE', `the request body is refused: ${parsed.rule}`), undefined);
    const v = parsed.value;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return done(new MetaspnError('USAGE', 'the request body must be a JSON object'), undefined);
    done(null, v);
  });

  // An unknown route (or method) answers the error document as every other error does, naming
  // the method and the path (without its query, cut to 200 characters).
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: `no route ${req.method} ${truncate(req.url.split('?')[0] ?? '', 200)}`, hint: 'docs/OPS.md lists the routes' });
  });

  app.setErrorHandler((err, req, reply) => {
    const code = (err as { code?: string }).code;
    const e =
      code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
        ? new MetaspnError('USAGE', `send the body as JSON (content-type: application/json), not ${String(req.headers['content-type'] ?? 'without a content type').slice(0, 80)}`)
        : toMetaspnError(err);
    const status = (err as { statusCode?: number }).statusCode ?? HTTP_BY_CODE[e.code] ?? 500;
    if (status >= 500) ctx.log.error({ event: 'ops_error', error: e.message }, 'ops request failed');
    const retry = (e.details as { retry_after_s?: number } | undefined)?.retry_after_s;
    if (status === 429 && retry) void reply.header('Retry-After', String(retry));
    // The body of a refused request may still be arriving: do not keep reading it.
    if (status === 413 || status === 415) void reply.header('connection', 'close');
    return reply.code(status).send({ error: e.message, ...(e.hint ? { hint: e.hint } : {}) });
  });

  // Every JSON answer, errors included, is a document of the CLI's shape: "schema_version" first,
  // instants as ISO-8601. /health/queues is keyed by queue name: its instants only.
  app.addHook('preSerialization', async (req: FastifyRequest, _reply, payload: unknown) => {
    if (payload === null || typeof payload !== 'object' || Array.isArray(payload) || Buffer.isBuffer(payload)) return payload;
    return req.routeOptions.url === '/health/queues' ? isoTimes(payload) : jsonDoc(payload);
  });

  app.addHook('onRequest', async (req: FastifyRequest, reply) => {
    const badHost = checkHost(hosts, req.headers.host);
    if (badHost) {
      ctx.log.warn({ event: 'ops_host_refused', ip: req.ip, host: String(req.headers.host).slice(0, 200), url: req.url.slice(0, 200) }, 'request for another host refused');
      return refuseAndClose(reply, { status: 421, reason: `${badHost}: this server answers loopback names, IP addresses, its --host and the names given with --allowed-host / METASPN_ALLOWED_HOSTS` });
    }
    // Health stays open for probes; everything else reads the workspace and needs read access.
    if (isHealth(req.url)) return;
    if (req.method === 'GET' || req.method === 'HEAD') {
      const no = checkRead(ctx.settings, req);
      if (no) return refuseAndClose(reply, no);
      return;
    }
    const no = checkWrite(ctx.settings, req);
    if (no) {
      ctx.log.warn({ event: 'ops_write_refused', ip: req.ip, url: req.url.slice(0, 200), status: no.status, reason: no.reason }, 'write refused');
      return refuseAndClose(reply, no);
    }
  });

  app.get('/health', async () => ({ status: 'ok', version: version(), uptime_s: Math.round((Date.now() - started) / 1000) }));

  app.get('/health/test', async (_req, reply) => {
    const r = await readiness(ctx.ws, ctx.minFreeBytes, problemsCached, source);
    const failed = r.checks.filter((c) => !c.ok && c.critical).map((c) => c.name);
    const degraded = r.checks.filter((c) => !c.ok && !c.critical).map((c) => c.name);
    return reply.code(r.status === 'fail' ? 503 : 200).send({ status: r.status, ...(failed.length ? { failed } : {}), ...(degraded.length ? { degraded } : {}), checks: r.checks });
  });

  app.get('/metrics', async (_req, reply) => reply.header('Content-Type', metrics.contentType).send(await metrics.scrape()));

  // Task submissions may carry more than the other writes.
  app.addHook('onRoute', (route) => {
    if (route.url === TASKS_ROUTE) route.bodyLimit = limits.tasksBodyLimit;
  });
  const api = registerApi(app, ctx, source);
  registerOpsPage(app, ctx, source, { task: (worker, id) => api.task(worker, id) });
  app.addHook('onClose', async () => api.close());
  // On PostgreSQL there is no log to load: a queue is a name over the pool.
  if (ctx.preloadQueues && source.backend === 'files') {
    // Which queues, now (a linked queue/ stops serve at start, 30); loading them after the server
    // listens, not before: opening 300k-task queues takes seconds, and a request meanwhile opens
    // the queue it needs itself. A failed preload only costs the first write its open.
    // Queue folders that exist (preloading must not create the bundled workers' folders).
    const names = queueFolders(ctx.ws);
    app.addHook('onListen', async () => {
      // On a later turn of the event loop: listen() resolves (and serve says where it listens) first.
      setImmediate(() => {
        const t0 = performance.now();
        api
          .preload(names)
          .then(() => ctx.log.info({ event: 'ops_queues_preloaded', queues: names.length, ms: Math.round(performance.now() - t0) }, 'queues preloaded'))
          .catch((err: unknown) => ctx.log.warn({ event: 'ops_preload_failed', error: (err as Error).message }, 'preloading the queues failed'));
      });
    });
  }
  return app;
}

/**
 * Answers a request Node's HTTP parser refused before fastify saw it (headers over Node's size:
 * 431; too slow: 408; anything else: 400) with the server's error document, then closes the
 * connection (as Node's own handler does). A reset connection gets nothing.
 */
function clientError(err: NodeJS.ErrnoException, socket: import('node:stream').Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, text, message] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', "the request's URL and headers are over the size this server reads (16 KiB)"]
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'the request did not arrive in time']
        : [400, 'Bad Request', 'the request is not valid HTTP'];
  const body = JSON.stringify(jsonDoc({ error: message }));
  if (socket.writable) socket.write(`HTTP/1.1 ${status} ${text}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`);
  socket.destroy(err);
}
