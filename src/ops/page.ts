import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { pipelineNames } from '../pipeline/registry.js';
import { throughput } from '../storage/task-durations.js';
import { assertQueueName, checkTaskId } from '../queue/record.js';
import { checkRunId } from '../runtime/run-id.js';
import { renderMissingPage, renderRunPage, renderTaskPage, renderTaskViewPage } from './page/detail.js';
import type { TaskView } from '../queue/types.js';
import { renderOpsData, renderOpsPage, type OpsPageView, type Section } from './page/render.js';
import type { OpsContext } from './server.js';
import type { OpsSource } from './source.js';
import type { QueueView } from './workspace-view.js';

/** Runs per page (`?runs_per=N`, 1 to 500, changes it; `?runs=P` is the page, newest first). */
export const OPS_RUNS_SHOWN = 20;
/** Dead letters per page of each queue (`?dl_per=N`; `?dl_<worker>=P` is that queue's page, oldest first). */
export const OPS_DEAD_LETTERS_SHOWN = 100;

/** The page's query: which page of runs and of each queue's dead letters, and how many per page. */
export type PageQuery = Record<string, string | undefined>;

/** A whole number from the query within [min, max], else `dflt`. */
function queryInt(q: PageQuery, key: string, dflt: number, min: number, max: number): number {
  const v = q[key];
  if (v === undefined || !/^\d{1,6}$/.test(v)) return dflt;
  return Math.min(max, Math.max(min, Number(v)));
}
/** The page re-reads the workspace this often while its Live switch is on. */
export const OPS_REFRESH_MS = 5_000;

async function section<T>(read: () => T | Promise<T>): Promise<Section<T>> {
  try {
    return { ok: true, value: await read() };
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
 * What the page shows, read from the backend the JSON API reads (the workspace files, or the
 * database). One unreadable section (a torn stats file, a bad manifest, a database that does not
 * answer) is reported in its panel; the rest of the page still renders.
 */
export async function opsPageView(ctx: OpsContext, source: OpsSource, now = new Date(), query: PageQuery = {}): Promise<OpsPageView> {
  const names = await section(() => source.queueNames());
  const dlPer = queryInt(query, 'dl_per', OPS_DEAD_LETTERS_SHOWN, 1, 500);
  const runsPer = queryInt(query, 'runs_per', OPS_RUNS_SHOWN, 1, 500);
  const queues: Section<QueueView[]> = names.ok ? await section(() => Promise.all(names.value.map((n) => source.queueView(n, now.getTime())))) : names;
  // On the database, a queue whose counters say it has no dead letters costs no read of them.
  const noDead = new Set(queues.ok && source.backend === 'postgres' ? queues.value.filter((v) => v.dead === 0).map((v) => v.queue) : []);
  return {
    env: ctx.settings.env,
    writeEnabled: ctx.settings.writeEnabled,
    version: version(),
    workspace: ctx.ws.root,
    ...(source.backend === 'postgres' ? { database: source.where } : {}),
    generatedAt: now,
    queues,
    deadLetters: names.ok
      ? await section(() =>
          Promise.all(names.value.map(async (worker) => {
            const all = noDead.has(worker) ? [] : await source.deadLetters(worker);
            const pages = Math.max(1, Math.ceil(all.length / dlPer));
            const page = Math.min(pages, queryInt(query, `dl_${worker}`, 1, 1, 1_000_000));
            return { worker, items: all.slice((page - 1) * dlPer, page * dlPer), total: all.length, page, pages, offset: (page - 1) * dlPer };
          })),
        )
      : names,
    runs: await section(async () => {
      const { runs: all, problems } = await source.runs();
      const pages = Math.max(1, Math.ceil(all.length / runsPer));
      const page = Math.min(pages, queryInt(query, 'runs', 1, 1, 1_000_000));
      return { recent: all.slice((page - 1) * runsPer, page * runsPer), total: all.length, problems, page, pages, offset: (page - 1) * runsPer };
    }),
    locks: await section(() => Promise.all(pipelineNames(ctx.cfg).map(async (name) => ({ name, status: await source.lockStatus(name) })))),
    workers: source.backend === 'postgres' ? await section(async () => (await source.workers())!) : null,
    throughput: await section(() => throughput(ctx.ws, now.getTime())),
    refreshMs: OPS_REFRESH_MS,
    query: Object.fromEntries(Object.entries(query).filter((e): e is [string, string] => typeof e[1] === 'string' && /^(runs|runs_per|dl_per|dl_[A-Za-z0-9_-]+)$/.test(e[0]))),
  };
}

/** The headers of every page: no caching, no framing, and a CSP admitting only the page's own style and script. */
function pageHeaders(reply: FastifyReply, nonce: string): FastifyReply {
  return reply
    .header('Content-Type', 'text/html; charset=utf-8')
    .header('Cache-Control', 'no-store')
    .header('X-Content-Type-Options', 'nosniff')
    .header('Referrer-Policy', 'no-referrer')
    .header('X-Frame-Options', 'DENY')
    .header(
      'Content-Security-Policy',
      `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
    );
}

/** An id from a URL that the rules of its kind accept; else null (the page answers 404). */
function valid(check: () => unknown): boolean {
  try {
    return check() !== false;
  } catch {
    return false;
  }
}

/**
 * GET /ops: one server-rendered page over the JSON API (reads as the API reads; the page's buttons
 * call the guarded write endpoints with the token typed into it). Read access is checked by the
 * server's onRequest hook like every other non-health route: open on loopback, token elsewhere.
 * `GET /ops?part=data` answers only the data panels, which the page's Refresh swaps in.
 */
export function registerOpsPage(app: FastifyInstance, ctx: OpsContext, source: OpsSource, lookup: { task(worker: string, id: string): Promise<TaskView | null> }): void {
  app.get('/ops', async (req: FastifyRequest<{ Querystring: PageQuery }>, reply) => {
    const nonce = randomBytes(16).toString('base64');
    const view = await opsPageView(ctx, source, new Date(), req.query ?? {});
    const body = req.query.part === 'data' ? renderOpsData(view) : renderOpsPage(view, nonce);
    return pageHeaders(reply, nonce).send(body);
  });
  // Relative redirects: behind a proxy that serves the server under a path prefix they stay under it.
  app.get('/ops/', async (_req, reply) => reply.redirect('../ops'));
  app.get('/', async (_req, reply) => reply.redirect('ops'));

  app.get('/ops/task/:worker/:id', async (req: FastifyRequest<{ Params: { worker: string; id: string } }>, reply) => {
    const nonce = randomBytes(16).toString('base64');
    const { worker, id } = req.params;
    const ok = valid(() => assertQueueName(worker)) && checkTaskId(id) === null;
    const d = ok ? await source.deadLetter(worker, id).catch(() => null) : null;
    if (d) return pageHeaders(reply, nonce).send(renderTaskPage(nonce, worker, d));
    // Any other task of the queue, in whatever state it is: its record from the queue itself.
    const v = ok ? await lookup.task(worker, id) : null;
    if (!v) return pageHeaders(reply.code(404), nonce).send(renderMissingPage(nonce, `No task ${id.slice(0, 200)} in ${worker.slice(0, 100)} (never there, or a completed one past retention).`, '../../../ops'));
    return pageHeaders(reply, nonce).send(renderTaskViewPage(nonce, worker, v));
  });

  app.get('/ops/run/:run_id', async (req: FastifyRequest<{ Params: { run_id: string } }>, reply) => {
    const nonce = randomBytes(16).toString('base64');
    const id = req.params.run_id;
    const run = valid(() => checkRunId(id)) ? ((await source.runs()).runs.find((r) => r.run_id === id) ?? null) : null;
    if (!run) return pageHeaders(reply.code(404), nonce).send(renderMissingPage(nonce, `No run ${id.slice(0, 200)} with manifests in ${source.backend === 'files' ? 'this workspace' : source.where}.`, '../../ops'));
    const manifests = await source.manifests(run.steps.map((s) => s.manifest));
    return pageHeaders(reply, nonce).send(renderRunPage(nonce, run, manifests));
  });
}
