import { spawn } from 'node:child_process';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { policyFor } from '../config/load.js';
import { UsageError } from '../guard/errors.js';
import { readLockStatus } from '../guard/run-lock.js';
import { DeadLetterFiles } from '../queue/file/deadletter-files.js';
import { openQueue } from '../queue/open.js';
import { assertQueueName, checkTaskId, derivedTaskId } from '../queue/record.js';
import type { NewTask } from '../queue/types.js';
import { checkRunId, newRunId } from '../runtime/run-id.js';
import { Ledger } from '../storage/ledger.js';
import { deadletterDir } from '../storage/paths.js';
import { findRun, listRuns } from '../storage/runs.js';
import { planRun } from '../../workers/s1/plan.js';
import { readOpenAlerts } from './alerts/state.js';
import { checkWrite, refuse } from './auth.js';
import type { OpsContext } from './server.js';
import { EventMemory, verifySignature } from './signature.js';
import { queueNamesOf, queueView } from './workspace-view.js';

type Req = FastifyRequest<{ Params: { worker: string; run_id: string }; Body: Record<string, unknown> | undefined; Querystring: { date?: string } }>;

function knownWorker(ctx: OpsContext, worker: string): string {
  assertQueueName(worker);
  if (!queueNamesOf(ctx.ws).includes(worker)) throw Object.assign(new UsageError(`unknown worker "${worker}"`), { statusCode: 404 });
  return worker;
}

/** The JSON API: reads are open on loopback (token elsewhere); writes need the checks of checkWrite. */
export function registerApi(app: FastifyInstance, ctx: OpsContext): void {
  const events = new EventMemory(ctx.ws);
  const actor = (req: FastifyRequest): string => `ops ${req.ip} ${req.headers['x-metaspn-actor'] ?? 'api'}`;
  const write = (req: FastifyRequest, reply: FastifyReply): boolean => {
    const no = checkWrite(ctx.settings, req);
    if (no) {
      ctx.log.warn({ event: 'ops_write_refused', ip: req.ip, url: req.url, status: no.status, reason: no.reason }, 'write refused');
      void refuse(reply, no);
      return false;
    }
    return true;
  };

  app.get('/api/queues', async () => queueNamesOf(ctx.ws).map((n) => queueView(ctx.ws, n)));
  app.get('/health/queues', async () => Object.fromEntries(queueNamesOf(ctx.ws).map((n) => [n, queueView(ctx.ws, n)])));
  app.get('/api/queues/:worker', async (req: Req) => queueView(ctx.ws, knownWorker(ctx, req.params.worker)));
  app.get('/api/queues/:worker/deadletters', async (req: Req) => new DeadLetterFiles(deadletterDir(ctx.ws, knownWorker(ctx, req.params.worker))).list());
  app.get('/api/runs', async (req: Req) => listRuns(ctx.ws, req.query.date ? { date: req.query.date } : {}));
  app.get('/api/runs/:run_id', async (req: Req, reply) => findRun(ctx.ws, req.params.run_id) ?? reply.code(404).send({ error: `no run ${req.params.run_id}` }));
  app.get('/api/lock', async () => readLockStatus(ctx.ws.locks, 's1'));
  app.get('/api/alerts', async () => readOpenAlerts(ctx.ws));
  app.get('/api/settings', async () => ({ env: ctx.settings.env, write_enabled: ctx.settings.writeEnabled, signing: ctx.settings.signingSecret !== null }));

  app.post('/api/queues/:worker/retry', async (req: Req, reply) => {
    if (!write(req, reply)) return reply;
    const worker = knownWorker(ctx, req.params.worker);
    const id = typeof req.body?.task_id === 'string' ? req.body.task_id : undefined;
    const q = openQueue(ctx.ws, worker, policyFor(ctx.cfg, worker), ctx.log);
    try {
      const moved = await q.retry({ ...(id ? { ids: [id] } : {}), by: actor(req) });
      if (id && moved.length === 0) return reply.code(404).send({ error: `no dead letter ${id} in ${worker}` });
      if (moved.length) await new Ledger(ctx.ws).append('deadletter_retry', { worker, ids: moved, by: actor(req) });
      ctx.log.info({ event: 'queue_retry', worker, moved, via: 'ops' }, `retried ${moved.length}`);
      return { worker, retried: moved };
    } finally {
      await q.close();
    }
  });

  for (const verb of ['pause', 'resume'] as const) {
    app.post(`/api/queues/:worker/${verb}`, async (req: Req, reply) => {
      if (!write(req, reply)) return reply;
      const worker = knownWorker(ctx, req.params.worker);
      const q = openQueue(ctx.ws, worker, policyFor(ctx.cfg, worker), ctx.log);
      try {
        await (verb === 'pause' ? q.pause(actor(req)) : q.resume(actor(req)));
      } finally {
        await q.close();
      }
      ctx.log.info({ event: `queue_${verb}`, worker, via: 'ops' }, `queue ${verb}d`);
      return { worker, paused: verb === 'pause' };
    });
  }

  app.post('/api/runs', async (req: Req, reply) => {
    if (!write(req, reply)) return reply;
    const date = String(req.body?.date ?? '');
    const asOf = typeof req.body?.as_of === 'string' ? req.body.as_of : undefined;
    const plan = planRun(ctx.cfg.s1, date, asOf);
    const lock = readLockStatus(ctx.ws.locks, 's1');
    if (lock.held && lock.payload?.active === 1) return reply.code(409).send({ error: `the run lock is held by pid ${lock.payload.pid} since ${lock.payload.start_ts_utc}` });
    const runId = typeof req.body?.run_id === 'string' ? checkRunId(req.body.run_id) : newRunId();
    const args = [ctx.bin, 's1', 'run-local', '--workspace', ctx.ws.root, '--date', plan.date, '--run-id', runId, ...(asOf ? ['--as-of', plan.as_of] : []), '--reason', `ops ${req.ip}`];
    const child = spawn(process.execPath, args, { detached: true, stdio: 'ignore' });
    child.unref();
    ctx.log.info({ event: 'ops_run_started', run_id: runId, date: plan.date, pid: child.pid }, 'run started from ops');
    return reply.code(202).send({ run_id: runId, date: plan.date, pid: child.pid, status_url: `/api/runs/${runId}` });
  });

  app.post('/api/queues/:worker/tasks', async (req: Req, reply) => {
    if (!write(req, reply)) return reply;
    const raw = (req as unknown as { rawBody?: string }).rawBody ?? '';
    if (ctx.settings.signingSecret) {
      const bad = verifySignature(ctx.settings.signingSecret, header(req, 'x-metaspn-timestamp'), header(req, 'x-metaspn-signature'), raw, ctx.settings.toleranceSec);
      if (bad) return reply.code(401).send({ error: `signature refused: ${bad}` });
    }
    const eventId = typeof req.body?.event_id === 'string' ? req.body.event_id : undefined;
    if (eventId) {
      const first = events.recall(eventId);
      if (first) return reply.code(first.status).header('x-metaspn-replayed', 'true').send(first.body);
    }
    assertQueueName(req.params.worker);
    const tasks = tasksOf(req.body);
    const q = openQueue(ctx.ws, req.params.worker, policyFor(ctx.cfg, req.params.worker), ctx.log);
    try {
      const r = await q.enqueue(tasks);
      const body = { worker: req.params.worker, ...r };
      if (eventId) events.remember(eventId, { status: 201, body });
      ctx.log.info({ event: 'enqueue', worker: req.params.worker, added: r.added.length, existing: r.existing.length, via: 'ops' }, 'enqueued');
      return reply.code(201).send(body);
    } finally {
      await q.close();
    }
  });
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** `{tasks: [{id?, payload, max_attempts?}]}` or one `{payload, id?}`; a task without id gets one from its payload. */
function tasksOf(body: Record<string, unknown> | undefined): NewTask[] {
  const list = Array.isArray(body?.tasks) ? (body.tasks as unknown[]) : body && 'payload' in body ? [body] : null;
  if (!list || list.length === 0) throw new UsageError('the body must be {"tasks":[{"id"?, "payload"}]} or {"payload": …}');
  return list.map((t, i) => {
    if (typeof t !== 'object' || t === null || !('payload' in t)) throw new UsageError(`tasks[${i}] has no payload`);
    const o = t as { id?: unknown; payload: unknown; max_attempts?: unknown };
    const id = o.id === undefined ? derivedTaskId(o.payload) : o.id;
    const bad = checkTaskId(id);
    if (bad) throw new UsageError(`tasks[${i}]: ${bad}`);
    if (o.max_attempts !== undefined && !(Number.isInteger(o.max_attempts) && (o.max_attempts as number) >= 1)) throw new UsageError(`tasks[${i}].max_attempts must be a whole number >= 1`);
    return { id: id as string, payload: o.payload, ...(o.max_attempts !== undefined ? { max_attempts: o.max_attempts as number } : {}) };
  });
}
