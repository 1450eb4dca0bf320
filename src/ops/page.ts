import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { readLockStatus } from '../storage/run-lock.js';
import { pipelineNames } from '../pipeline/registry.js';
import { DeadLetterFiles } from '../queue/file/deadletter-files.js';
import { deadletterDir } from '../storage/paths.js';
import { readRuns } from '../storage/runs.js';
import { renderOpsData, renderOpsPage, type OpsPageView, type Section } from './page/render.js';
import type { OpsContext } from './server.js';
import { queueNamesOf, queueView } from './workspace-view.js';

/** Newest runs on the page. */
export const OPS_RUNS_SHOWN = 20;
/** Dead letters shown per queue; the rest are counted and named by the CLI command to list them. */
export const OPS_DEAD_LETTERS_SHOWN = 100;

function section<T>(read: () => T): Section<T> {
  try {
    return { ok: true, value: read() };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
}

let cachedVersion: string | null = null;
function version(): string {
  if (cachedVersion === null) {
    try {
      cachedVersion = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
    } catch {
      cachedVersion = '0.0.0';
    }
  }
  return cachedVersion;
}

/**
 * What the page shows, read from the workspace files the JSON API reads. One unreadable section
 * (a torn stats file, a bad manifest) is reported in its panel; the rest of the page still renders.
 */
export function opsPageView(ctx: OpsContext, now = new Date()): OpsPageView {
  const names = section(() => queueNamesOf(ctx.ws));
  return {
    env: ctx.settings.env,
    writeEnabled: ctx.settings.writeEnabled,
    version: version(),
    workspace: ctx.ws.root,
    generatedAt: now,
    queues: names.ok ? section(() => names.value.map((n) => queueView(ctx.ws, n, now.getTime()))) : names,
    deadLetters: names.ok
      ? section(() =>
          names.value.map((worker) => {
            const all = new DeadLetterFiles(deadletterDir(ctx.ws, worker)).list();
            return { worker, items: all.slice(0, OPS_DEAD_LETTERS_SHOWN), total: all.length };
          }),
        )
      : names,
    runs: section(() => {
      const { runs: all, problems } = readRuns(ctx.ws);
      return { recent: all.slice(0, OPS_RUNS_SHOWN), total: all.length, problems };
    }),
    locks: section(() => pipelineNames(ctx.cfg).map((name) => ({ name, status: readLockStatus(ctx.ws.locks, name) }))),
  };
}

/**
 * GET /ops: one server-rendered page over the JSON API (reads as the API reads; the page's buttons
 * call the guarded write endpoints with the token typed into it). Read access is checked by the
 * server's onRequest hook like every other non-health route: open on loopback, token elsewhere.
 * `GET /ops?part=data` answers only the data panels, which the page's Refresh swaps in.
 */
export function registerOpsPage(app: FastifyInstance, ctx: OpsContext): void {
  app.get('/ops', async (req: FastifyRequest<{ Querystring: { part?: string } }>, reply) => {
    const nonce = randomBytes(16).toString('base64');
    const view = opsPageView(ctx);
    const body = req.query.part === 'data' ? renderOpsData(view) : renderOpsPage(view, nonce);
    return reply
      .header('Content-Type', 'text/html; charset=utf-8')
      .header('Cache-Control', 'no-store')
      .header('X-Content-Type-Options', 'nosniff')
      .header('Referrer-Policy', 'no-referrer')
      .header('X-Frame-Options', 'DENY')
      .header(
        'Content-Security-Policy',
        `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
      )
      .send(body);
  });
  app.get('/ops/', async (_req, reply) => reply.redirect('/ops'));
}
