import Fastify, { type FastifyInstance } from 'fastify';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { MetaspnError, toMetaspnError } from '../guard/errors.js';
import type { WorkspaceConfig } from '../config/load.js';
import type { WorkspacePaths } from '../storage/paths.js';
import { checkRead, refuse } from './auth.js';
import { readiness } from './health.js';
import { workspaceMetrics } from './metrics.js';
import { registerApi } from './api.js';
import { registerOpsPage } from './page.js';
import type { OpsSettings } from './settings.js';

export interface OpsContext {
  ws: WorkspacePaths;
  cfg: WorkspaceConfig;
  settings: OpsSettings;
  log: Logger;
  /** The CLI entry, to start runs as child processes. */
  bin: string;
  /** Free disk below this fails readiness. Default 256 MiB. */
  minFreeBytes: number;
}

const HTTP_BY_CODE: Record<string, number> = { USAGE: 400, DATA_INVALID: 400, BUSINESS_REJECT: 409, BUSINESS_SKIP: 429, LOCK_TIMEOUT: 409, STATE_CORRUPT: 500, ANOMALY_HALT: 409, INTERNAL_ERROR: 500 };

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

/**
 * The ops server over one workspace: health, readiness, metrics, a JSON API and guarded writes.
 * It reads the same files as the CLI and writes through the same Queue and run lock, so it runs
 * beside cron runs without disturbing them.
 */
export async function buildServer(ctx: OpsContext): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, trustProxy: false, bodyLimit: 8 << 20 });
  const started = Date.now();
  const metrics = workspaceMetrics(ctx.ws);

  // Signed submissions are verified over the exact bytes received.
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    (req as unknown as { rawBody: string }).rawBody = body as string;
    if ((body as string).trim() === '') return done(null, {});
    try {
      done(null, JSON.parse(body as string));
    } catch {
      done(new MetaspnError('USAGE', 'the request body is not valid JSON'), undefined);
    }
  });

  app.setErrorHandler((err, _req, reply) => {
    const e = toMetaspnError(err);
    const status = (err as { statusCode?: number }).statusCode ?? HTTP_BY_CODE[e.code] ?? 500;
    if (status >= 500) ctx.log.error({ event: 'ops_error', error: e.message }, 'ops request failed');
    const retry = (e.details as { retry_after_s?: number } | undefined)?.retry_after_s;
    if (status === 429 && retry) void reply.header('Retry-After', String(retry));
    return reply.code(status).send({ error: e.message, ...(e.hint ? { hint: e.hint } : {}) });
  });

  app.addHook('onRequest', async (req, reply) => {
    // Health stays open for probes; everything else reads the workspace and needs read access.
    if (req.url === '/health' || req.url.startsWith('/health/')) return;
    const no = checkRead(ctx.settings, req);
    if (no) return refuse(reply, no);
  });

  app.get('/health', async () => ({ status: 'ok', version: version(), uptime_s: Math.round((Date.now() - started) / 1000) }));

  app.get('/health/test', async (_req, reply) => {
    const checks = readiness(ctx.ws, ctx.minFreeBytes);
    const failed = checks.filter((c) => !c.ok);
    return reply.code(failed.length ? 503 : 200).send({ status: failed.length ? 'fail' : 'ok', ...(failed.length ? { failed: failed.map((c) => c.name) } : {}), checks });
  });

  app.get('/metrics', async (_req, reply) => reply.header('Content-Type', metrics.contentType).send(await metrics.scrape()));

  registerApi(app, ctx);
  registerOpsPage(app, ctx);
  return app;
}
