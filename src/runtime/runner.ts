import { backoffDelay } from '../queue/backoff.js';
import { describeError } from '../queue/record.js';
import type { ClaimedTask, Owner, Queue } from '../queue/types.js';
import type { QueuePolicy } from '../config/policy.js';
import { isUnrecoverable, TaskTimeoutError, type WorkerContext, type WorkerDefinition, type WorkerInitContext } from './worker-api.js';

/** Everything the loop touches, passed in: unit tests drive it with a memory queue and a fake clock. */
export interface RunnerDeps {
  queue: Pick<Queue, 'claim' | 'complete' | 'fail' | 'deadLetter' | 'release' | 'renewLease'>;
  worker: WorkerDefinition;
  owner: Owner;
  policy: QueuePolicy;
  /** Drain what is ready, then return (no polling). */
  once: boolean;
  /** Claim at most this many tasks in this run. Default: no limit. */
  maxTasks?: number;
  /** Tasks claimed ahead of free slots, so claims batch. Default: concurrency × 8 (at most 256). */
  prefetch?: number;
  init: WorkerInitContext;
  /** First abort: stop claiming, finish running tasks, give buffered ones back. */
  stop: AbortSignal;
  /** Abort: stop now; running tasks are abandoned to their leases. */
  force?: AbortSignal;
  now: () => number;
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  random: () => number;
  /**
   * With `once`: when nothing is ready, the time the next retry is due (null when none). The loop
   * sleeps until then instead of returning, so a pipeline stage ends only with every task settled.
   */
  nextDue?: () => Promise<number | null>;
  /** After each task outcome (for guardrails and metrics). */
  onOutcome?: (o: TaskOutcome) => void;
}

export type OutcomeKind = 'completed' | 'retry_scheduled' | 'dead' | 'dead_contract' | 'lease_lost' | 'abandoned';

export interface TaskOutcome {
  id: string;
  kind: OutcomeKind;
  attempt: number;
  duration_ms: number;
  /** For dead letters: the error's code, e.g. STATE_CORRUPT. */
  code?: string;
}

export interface RunSummary {
  claimed: number;
  completed: number;
  retry_scheduled: number;
  dead: number;
  dead_contract: number;
  lease_lost: number;
  /** Running when a forced stop came: left to their leases. */
  abandoned: number;
  released: number;
  forced: boolean;
}

export async function runWorker(d: RunnerDeps): Promise<RunSummary> {
  const { policy } = d;
  const sum: RunSummary = { claimed: 0, completed: 0, retry_scheduled: 0, dead: 0, dead_contract: 0, lease_lost: 0, abandoned: 0, released: 0, forced: false };
  const maxTasks = d.maxTasks ?? Infinity;
  const prefetch = Math.max(1, d.prefetch ?? Math.min(256, policy.concurrency * 8));
  const buffer: ClaimedTask[] = [];
  const running = new Set<Promise<void>>();
  const log = d.init.logger;
  const stopped = abortPromise(d.stop);
  let drained = false;

  const start = (c: ClaimedTask): void => {
    const p = runOne(d, c).then((o) => {
      sum[o.kind]++;
      d.onOutcome?.(o);
    });
    const tracked = p.finally(() => running.delete(tracked));
    running.add(tracked);
  };

  while (!d.stop.aborted) {
    const want = Math.min(prefetch - buffer.length, maxTasks - sum.claimed);
    if (!drained && want > 0 && buffer.length <= policy.concurrency) {
      const got = await d.queue.claim({ owner: d.owner, max: want, lease_ms: policy.lease_ms });
      sum.claimed += got.length;
      buffer.push(...got);
      if (got.length === 0 && d.once) drained = true;
    }
    while (running.size < policy.concurrency && buffer.length > 0 && !d.stop.aborted) start(buffer.shift()!);
    if (running.size === 0 && buffer.length === 0) {
      if (sum.claimed >= maxTasks) break;
      if (d.once && drained) {
        const due = d.nextDue ? await d.nextDue() : null;
        if (due === null) break;
        await d.sleep(Math.max(0, due - d.now()), d.stop);
        drained = false;
        continue;
      }
      await d.sleep(policy.poll_ms, d.stop);
      continue;
    }
    if (running.size >= policy.concurrency || buffer.length === 0 || drained || sum.claimed >= maxTasks) {
      await Promise.race([...running, stopped]);
    }
  }

  // Graceful stop: buffered tasks go back untouched; running ones finish unless forced.
  for (const c of buffer.splice(0)) {
    if (await d.queue.release(c.task.id, c.lease)) sum.released++;
  }
  if (running.size > 0) {
    const forced = d.force ? abortPromise(d.force).then(() => true) : new Promise<boolean>(() => undefined);
    sum.forced = await Promise.race([Promise.all(running).then(() => false), forced]);
    if (sum.forced) log.warn({ event: 'worker_forced', running: running.size }, 'forced stop: running tasks left to their leases');
  }
  return sum;
}

async function runOne(d: RunnerDeps, c: ClaimedTask): Promise<TaskOutcome> {
  const { policy, worker } = d;
  const { task } = c;
  let lease = c.lease;
  const attempt = task.attempt_count + 1;
  const t0 = d.now();
  const log = d.init.logger.child({ task_id: task.id });
  const ctrl = new AbortController();
  const onForce = (): void => ctrl.abort(new Error('worker forced to stop'));
  d.force?.addEventListener('abort', onForce, { once: true });

  const renew = async (): Promise<void> => {
    if (await d.queue.renewLease(task.id, lease, policy.lease_ms)) {
      lease = { ...lease, expires_at: d.now() + policy.lease_ms };
    }
  };
  const renewer = setInterval(() => void renew().catch(() => undefined), Math.max(50, policy.lease_ms / 3));
  const timeout = setTimeout(() => ctrl.abort(new TaskTimeoutError(policy.timeout_ms)), policy.timeout_ms);
  renewer.unref?.();

  const outcome = (kind: OutcomeKind, code?: string): TaskOutcome => {
    const o: TaskOutcome = { id: task.id, kind, attempt, duration_ms: d.now() - t0, ...(code ? { code } : {}) };
    const level = kind === 'completed' ? 'info' : 'warn';
    log[level]({ event: 'task_end', outcome: kind, duration_ms: o.duration_ms, attempt: `${attempt} of ${task.max_attempts}` }, `task ${kind}`);
    return o;
  };

  try {
    const payload = worker.payload ? worker.payload.safeParse(task.payload) : null;
    if (payload && !payload.success) {
      const issue = payload.error.issues[0];
      const where = issue && issue.path.length ? issue.path.join('.') : 'payload';
      const err = { kind: 'contract' as const, class: 'ContractError', message: `payload invalid: ${where}: ${issue?.message ?? 'rejected'}`, at: new Date(d.now()).toISOString() };
      return outcome((await d.queue.deadLetter(task.id, lease, err)) ? 'dead_contract' : 'lease_lost');
    }
    const ctx: WorkerContext = { ...d.init, logger: log, signal: ctrl.signal, heartbeat: renew, attempt };
    const value = payload?.success ? payload.data : task.payload;
    await Promise.race([Promise.resolve().then(() => worker.handle({ ...task, payload: value }, ctx)), abortPromise(ctrl.signal)]);
    // A handler that returns because it was aborted did not finish its work.
    if (ctrl.signal.aborted) throw ctrl.signal.reason;
    return outcome((await d.queue.complete(task.id, lease)) ? 'completed' : 'lease_lost');
  } catch (raw) {
    // Forced: the process is about to exit; the lease hands the task to the next worker.
    if (d.force?.aborted) return outcome('abandoned');
    const err = ctrl.signal.aborted && ctrl.signal.reason instanceof Error ? ctrl.signal.reason : raw;
    if (isUnrecoverable(err)) {
      const e = describeError(err, 'contract', d.now());
      const ok = await d.queue.deadLetter(task.id, lease, e);
      return outcome(ok ? 'dead_contract' : 'lease_lost', e.code);
    }
    const kind = err instanceof TaskTimeoutError ? 'timeout' : 'transient';
    const delay = backoffDelay(attempt, { base_ms: policy.backoff_base_ms, cap_ms: policy.backoff_cap_ms, jitter: policy.backoff_jitter }, d.random);
    const e = describeError(err, kind, d.now());
    const result = await d.queue.fail(task.id, lease, e, delay);
    return outcome(result === 'dead' ? 'dead' : result === 'scheduled' ? 'retry_scheduled' : 'lease_lost', e.code);
  } finally {
    clearInterval(renewer);
    clearTimeout(timeout);
    d.force?.removeEventListener('abort', onForce);
  }
}

/** Resolves when `signal` aborts (never rejects, so it can sit in a Promise.race). */
export function abortPromise(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}
