import type { FastifyInstance, FastifyRequest } from 'fastify';
import { MetaspnError, StateCorruptError, UsageError } from '../guard/errors.js';
import { assertQueueName } from '../queue/record.js';
import { checkEnqueueBody } from '../queue/validate.js';
import type { TaskView } from '../queue/types.js';
import { isDateText } from '../pipeline/dates.js';
import { checkRunId, newRunId } from '../runtime/run-id.js';
import { Ledger } from '../storage/ledger.js';
import { problemOf, StateFileError } from '../storage/state-file.js';
import { readOpenAlerts } from './alerts/state.js';
import { bundledPipeline, bundledPipelines } from '../pipeline/bundled.js';
import { planPartition } from '../pipeline/plan.js';
import { loadPipeline, pipelineNames } from '../pipeline/registry.js';
import { QueueHandles } from './queue-handles.js';
import { readRunStart, RunStarter } from './run-start.js';
import type { OpsContext } from './server.js';
import { EventMemory, verifySignature } from './signature.js';
import { discardDeadLetters } from './discard.js';
import type { OpsSource } from './source.js';
import { unknownQueueIn } from './workspace-view.js';

type Req = FastifyRequest<{ Params: { worker: string; run_id: string }; Body: Record<string, unknown> | undefined; Querystring: { date?: string } }>;

/** `worker` when the backend has that queue; else 404 naming the nearest one. */
async function knownWorker(source: OpsSource, worker: string): Promise<string> {
  assertQueueName(worker);
  const names = await source.queueNames();
  if (!names.includes(worker)) throw Object.assign(unknownQueueIn(source.where, worker, names, source.backend === 'files' ? `metaspn queue list --workspace ${source.where}` : 'metaspn queue list'), { statusCode: 404 });
  return worker;
}

/** A write route's body: a JSON object with only the keys the route knows (a typo is a 400, never a default). */
function bodyOf(req: FastifyRequest, allowed: readonly string[], required: boolean): Record<string, unknown> {
  const b = req.body as unknown;
  if (b === undefined || b === null) {
    if (required) throw new UsageError(`this route needs a JSON body (content-type: application/json), e.g. {}; known keys: ${allowed.join(', ')}`);
    return {};
  }
  if (typeof b !== 'object' || Array.isArray(b)) throw new UsageError('the request body must be a JSON object');
  const unknown = Object.keys(b).filter((k) => !allowed.includes(k));
  if (unknown.length) throw new UsageError(`unknown key(s) in the body: ${unknown.slice(0, 5).join(', ')}; known: ${allowed.join(', ') || 'none'}`);
  return b as Record<string, unknown>;
}

function optionalString(body: Record<string, unknown>, key: string): string | undefined {
  const v = body[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '') throw new UsageError(`"${key}" must be a non-empty string`);
  return v;
}

/** Bodies of task submissions may be this large (`serve --body-limit-mb`); other writes are small. */
export const TASKS_ROUTE = '/api/queues/:worker/tasks';

export interface Api {
  /** Opens these queues now (their logs loaded), so the first write to each is as fast as the next. */
  preload(workers: readonly string[]): Promise<void>;
  /** One task of a queue the workspace has, in any state (the /ops task view); null when unknown. */
  task(worker: string, id: string): Promise<TaskView | null>;
  close(): Promise<void>;
}

/** The JSON API: reads are open on loopback (token elsewhere); writes were checked by the server's onRequest hook. */
export function registerApi(app: FastifyInstance, ctx: OpsContext, source: OpsSource): Api {
  const events = new EventMemory(ctx.ws);
  const queues = new QueueHandles(ctx.ws, ctx.cfg, ctx.log, undefined, ctx.backend ?? null);
  // Runs started here use the server's database (given by --database-url or not).
  const runs = new RunStarter({ ws: ctx.ws, bin: ctx.bin, log: ctx.log, ...(ctx.backend ? { env: { METASPN_DATABASE_URL: ctx.backend.url } } : {}) });
  const views = async (): Promise<Awaited<ReturnType<OpsSource['queueView']>>[]> => Promise.all((await source.queueNames()).map((n) => source.queueView(n)));
  const findRun = async (id: string) => (await source.runs()).runs.find((r) => r.run_id === id) ?? null;
  const actor = (req: FastifyRequest): string => `ops ${req.ip} ${req.headers['x-metaspn-actor'] ?? 'api'}`;

  app.get('/api/queues', async () => ({ queues: await views() }));
  app.get('/health/queues', async () => Object.fromEntries((await views()).map((v) => [v.queue, v])));
  app.get('/api/queues/:worker', async (req: Req) => source.queueView(await knownWorker(source, req.params.worker)));
  app.get('/api/queues/:worker/deadletters', async (req: Req) => {
    const worker = await knownWorker(source, req.params.worker);
    return { worker, dead_letters: await source.deadLetters(worker) };
  });
  // Damaged run files are left out and named in `problems`, never a 500.
  app.get('/api/runs', async (req: Req) => {
    // The CLI's check (a calendar date, not only its shape), without the CLI's flag name and hint.
    if (req.query.date !== undefined && !isDateText(req.query.date))
      throw new UsageError(`date must be YYYY-MM-DD, got "${req.query.date.slice(0, 40)}"${/^\d{4}-\d{2}-\d{2}$/.test(req.query.date) ? ' (no such calendar date)' : ''}`);
    return source.runs(req.query.date ? { date: req.query.date } : {});
  });
  app.get('/api/runs/:run_id', async (req: Req, reply) => {
    const id = req.params.run_id;
    if (!validRunId(id)) return reply.code(404).send({ error: `no run ${id.slice(0, 80)}` });
    const run = await findRun(id);
    if (run) return run;
    let started;
    try {
      started = readRunStart(ctx.ws, id);
    } catch (err) {
      if (!(err instanceof StateFileError)) throw err;
      return reply.code(200).send({ run_id: id, status: 'unknown', problems: [problemOf(ctx.ws, 'run_start', err)] });
    }
    if (started) return { ...started, steps: [] };
    return reply.code(404).send({ error: `no run ${id}` });
  });
  // The first bundled pipeline's lock (Season 1's), as before; /api/locks has every pipeline's.
  app.get('/api/lock', async () => source.lockStatus(pipelineNames(ctx.cfg)[0] ?? 's1'));
  app.get('/api/locks', async () => ({ locks: await Promise.all(pipelineNames(ctx.cfg).map(async (name) => ({ pipeline: name, ...(await source.lockStatus(name)) }))) }));
  app.get('/api/alerts', async () => {
    try {
      return { ...readOpenAlerts(ctx.ws), problems: [] };
    } catch (err) {
      if (!(err instanceof StateFileError)) throw err;
      return { checked_at: null, open: [], problems: [problemOf(ctx.ws, 'alert_state', err)] };
    }
  });
  app.get('/api/settings', async () => ({ env: ctx.settings.env, write_enabled: ctx.settings.writeEnabled, signing: ctx.settings.signingSecret !== null, backend: source.backend }));

  app.post('/api/queues/:worker/retry', async (req: Req, reply) => {
    const worker = await knownWorker(source, req.params.worker);
    const id = optionalString(bodyOf(req, ['task_id'], true), 'task_id');
    return queues.use(worker, async (q) => {
      const moved = await q.retry({ ...(id ? { ids: [id] } : {}), by: actor(req) });
      if (id && moved.length === 0) return reply.code(404).send({ error: `no dead letter ${id} in ${worker}` });
      if (moved.length) await new Ledger(ctx.ws).append('deadletter_retry', { worker, ids: moved, by: actor(req) });
      ctx.log.info({ event: 'queue_retry', worker, moved, via: 'ops' }, `retried ${moved.length}`);
      return { worker, retried: moved };
    });
  });

  // Destructive: the ids (or `"all": true`) and a reason must be said; an id that is not a dead letter is 404, nothing discarded.
  app.post('/api/queues/:worker/discard', async (req: Req) => {
    const worker = await knownWorker(source, req.params.worker);
    const body = bodyOf(req, ['task_ids', 'all', 'reason', 'dry_run'], true);
    const ids = body.task_ids;
    if (ids !== undefined && (!Array.isArray(ids) || ids.length === 0 || ids.length > 10_000 || !ids.every((id) => typeof id === 'string' && id !== ''))) {
      throw new UsageError('"task_ids" must be a list of 1 to 10000 task ids');
    }
    if (body.all !== undefined && body.all !== true) throw new UsageError('"all" must be true when given');
    if ((ids === undefined) === (body.all === undefined)) throw new UsageError('give "task_ids": [ids] or "all": true, one of the two');
    if (body.dry_run !== undefined && typeof body.dry_run !== 'boolean') throw new UsageError('"dry_run" must be true or false');
    const reason = optionalString(body, 'reason');
    if (reason === undefined && body.dry_run !== true) throw new UsageError('"reason" is required: say why these dead letters are given up (it is recorded in the ledger)');
    const by = actor(req);
    const r = await queues.use(worker, (q) => discardDeadLetters(ctx.ws, q, { worker, ids: body.all === true ? 'all' : (ids as string[]), reason: reason ?? '', by, dryRun: body.dry_run === true }, ctx.log.child({ via: 'ops' })));
    return r;
  });

  for (const verb of ['pause', 'resume'] as const) {
    app.post(`/api/queues/:worker/${verb}`, async (req: Req) => {
      const worker = await knownWorker(source, req.params.worker);
      bodyOf(req, [], false);
      await queues.use(worker, (q) => (verb === 'pause' ? q.pause(actor(req)) : q.resume(actor(req))));
      ctx.log.info({ event: `queue_${verb}`, worker, via: 'ops' }, `queue ${verb}d`);
      return { worker, paused: verb === 'pause' };
    });
  }

  app.post('/api/runs', async (req: Req, reply) => {
    const body = bodyOf(req, ['date', 'as_of', 'run_id', 'pipeline'], true);
    const date = optionalString(body, 'date') ?? '';
    const asOf = optionalString(body, 'as_of');
    // The pipeline to run: a bundled one (default: the first, Season 1) or one of the workspace's.
    const pipeline = optionalString(body, 'pipeline') ?? bundledPipelines()[0]?.name ?? '';
    const bundled = bundledPipeline(pipeline);
    let plan: { date: string; as_of: string; args: string[] };
    const given = optionalString(body, 'run_id');
    let runId: string;
    try {
      if (bundled?.runArgs) plan = bundled.runArgs(ctx.ws, ctx.cfg, { date, asOf: asOf ?? null });
      else {
        const def = await loadPipeline(ctx.ws, ctx.cfg, pipeline);
        const p = planPartition(def, date, asOf, Date.now());
        plan = { date: p.partition, as_of: p.as_of, args: ['pipeline', 'run', def.name, '--workspace', ctx.ws.root, '--date', p.partition, ...(asOf ? ['--as-of', p.as_of] : [])] };
      }
      runId = given ? checkRunId(given) : newRunId();
    } catch (err) {
      throw inBodyTerms(err);
    }
    if (given && ((await findRun(runId)) || readRunStart(ctx.ws, runId))) return reply.code(409).send({ error: `run id ${runId} is taken`, status_url: `/api/runs/${runId}` });
    const args = [...plan.args, '--run-id', runId, '--reason', `ops ${req.ip}`];
    const a = await runs.start({ pipeline, date: plan.date, asOf: asOf ? plan.as_of : null, runId, by: actor(req), args });
    return reply.code(a.status).send(a.body);
  });

  app.post(TASKS_ROUTE, async (req: Req, reply) => {
    const worker = assertQueueName(req.params.worker);
    if (ctx.settings.signingSecret) {
      const raw = (req as unknown as { rawBody?: string }).rawBody ?? '';
      const v = verifySignature(
        ctx.settings.signingSecret,
        { timestamp: header(req, 'x-metaspn-timestamp'), signature: header(req, 'x-metaspn-signature'), method: req.method, path: req.url.split('?')[0]!, body: raw },
        { toleranceSec: ctx.settings.toleranceSec, acceptLegacy: ctx.settings.acceptLegacySignatures },
      );
      if (v.refused !== null) return reply.code(401).send({ error: `signature refused: ${v.refused}` });
      if (v.legacy) {
        ctx.log.warn({ event: 'signature_legacy', worker, ip: req.ip }, 'a task submission was signed in the legacy format (timestamp.body); sign method and path too (docs/OPS.md)');
        void reply.header('x-metaspn-signature-deprecated', 'legacy format: sign "<timestamp>\\n<METHOD>\\n<path>\\n<body>"');
      }
    }
    if (req.body === undefined || req.body === null) throw new UsageError('this route needs a JSON body (content-type: application/json): {"tasks":[{"id"?, "payload"}]} or {"payload": …}');
    // The one enqueue check, the CLI's too (src/queue/validate.ts).
    const checked = checkEnqueueBody(req.body);
    if (!checked.ok) throw new UsageError(checked.rule);
    const { tasks } = checked;
    const eventId = checked.event_id;
    const enqueue = async (): Promise<{ status: number; body: unknown }> => {
      const r = await queues.use(worker, (q) => q.enqueue(tasks));
      ctx.log.info({ event: 'enqueue', worker, added: r.added.length, existing: r.existing.length, via: 'ops', ...(eventId ? { event_id: eventId } : {}) }, 'enqueued');
      return { status: 201, body: { worker, ...r } };
    };
    if (!eventId) {
      const a = await enqueue();
      return reply.code(a.status).send(a.body);
    }
    let once;
    try {
      once = await events.once(worker, eventId, enqueue);
    } catch (err) {
      if (err instanceof StateFileError) throw new StateCorruptError(err.message, { hint: err.hint, cause: err });
      throw err;
    }
    if (once.replayed) void reply.header('x-metaspn-replayed', 'true');
    return reply.code(once.answer.status).send(once.answer.body);
  });

  return {
    preload: (workers) => queues.preload(workers),
    task: async (worker, id) => ((await source.queueNames()).includes(worker) ? queues.use(worker, (q) => q.getTask(id)) : null),
    close: async () => {
      events.close();
      await queues.closeAll();
    },
  };
}

function validRunId(id: string): boolean {
  try {
    checkRunId(id);
    return true;
  } catch {
    return false;
  }
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The command-line flags the run planner's errors name, and the body fields they stand for here. */
const FLAG_FIELDS: Record<string, string> = { '--date': 'date', '--as-of': 'as_of', '--run-id': 'run_id' };

/**
 * An error of the run planner (shared with the CLI, which names its flags) in the words of a
 * `POST /api/runs` body: `--date` is the field "date", and a hint that tells how to pass a flag is
 * dropped. Anything else is returned as it is.
 */
function inBodyTerms(err: unknown): unknown {
  if (!(err instanceof MetaspnError)) return err;
  const named = /--(date|as-of|run-id)\b/;
  if (!named.test(err.message) && !named.test(err.hint ?? '')) return err;
  const message = err.message.replace(new RegExp(named.source, 'g'), (flag) => `"${FLAG_FIELDS[flag]!}"`);
  return new MetaspnError(err.code, message, { ...(err.hint && !named.test(err.hint) ? { hint: err.hint } : {}), ...(err.details ? { details: err.details } : {}) });
}
