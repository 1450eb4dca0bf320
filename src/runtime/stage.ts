import type { QueuePolicy } from '../config/policy.js';
import { monotonicMs } from '../queue/system-clock.js';
import type { DeadLetter, NewTask, Owner, Queue, TaskState } from '../queue/types.js';
import type { HandlerHost } from './isolation/host.js';
import { runWorker, type RunSummary } from './runner.js';
import { DurationRecorder } from '../storage/task-durations.js';
import { sleep } from './sleep.js';
import type { WorkerDefinition, WorkerInitContext } from './worker-api.js';

/** How the tasks of one group (one date of a pipeline) ended. */
export interface StageDrain {
  total: number;
  enqueued: number;
  /**
   * Completed, cancelled or dead-lettered by an earlier run and run again: a replay re-executes
   * (the store decides what is new), and dead tasks get fresh attempts.
   */
  rerun: number;
  already_queued: number;
  completed: number;
  retried: number;
  /** The group's tasks that ended in the dead letters in this run. */
  dead: DeadLetter[];
  /**
   * Tasks neither completed nor dead when the drain gave up (held by another live worker, or
   * cancelled meanwhile: those are counted in `cancelled` too).
   */
  unsettled: number;
  /** The group's tasks found cancelled (a run that superseded this one cancelled them): never run. Always set by drainStage. */
  cancelled?: number;
  /** The queue is paused: nothing was handed out. */
  paused: boolean;
}

export interface StageOptions {
  queue: Queue;
  worker: WorkerDefinition;
  policy: QueuePolicy;
  owner: Owner;
  init: WorkerInitContext;
  /** The tasks, in groups reported separately (a backfill drains several dates at once). */
  groups: readonly (readonly NewTask[])[];
  /** Recorded on tasks that run again (the run id). */
  by: string;
  stop: AbortSignal;
  force?: AbortSignal;
  /**
   * Where handlers run. Default: in process, as a pipeline's workers share the run's context
   * (`init.env`), which cannot cross to an isolate.
   */
  host?: HandlerHost;
}

const ZERO: RunSummary = { claimed: 0, completed: 0, retry_scheduled: 0, dead: 0, dead_contract: 0, lease_lost: 0, abandoned: 0, released: 0, forced: false };

/**
 * One pipeline stage on the worker runtime: enqueue its tasks (ids are deterministic, so a re-run
 * finds them; completed, cancelled or dead ones run again), drain until every task is completed, dead or
 * cancelled (waiting out retry backoff), and report how each group's tasks ended. Only the stage's
 * own tasks are claimed (ClaimOptions.only): a task another run left in the queue is not executed
 * here. A task another live worker holds is waited for up to two leases; a paused queue is
 * reported at once.
 */
export async function drainStage(o: StageOptions): Promise<{ groups: StageDrain[]; summary: RunSummary }> {
  const all = o.groups.flat();
  const added = await o.queue.enqueue(all, { rerun_completed: true, by: o.by });
  const ids = all.map((t) => t.id);
  const addedIds = new Set(added.added);
  const rerunIds = new Set(added.rerun);
  // A run is the operator's decision to try again: its own tasks an earlier run left in the dead
  // letters (a handler fixed since, a service that was down) go back to ready with fresh attempts,
  // so a date is never stuck at a dead letter of its own identity. A task this enqueue added or
  // made ready again is not one of them: only the others are asked about (a first run of a date
  // asks about none, where each id looked up read its record back from the queue's log).
  const others = ids.filter((id) => !addedIds.has(id) && !rerunIds.has(id));
  const before = others.length ? await o.queue.states(others) : [];
  const deadBefore = others.filter((_, i) => before[i] === 'dead');
  const revived = new Set(deadBefore.length ? await o.queue.retry({ ids: deadBefore, by: o.by }) : []);
  // One set for the whole drain: the queue resolves it to its tasks once.
  const only: ReadonlySet<string> = new Set(ids);
  const retriedOf = new Map<string, number>();
  const total: RunSummary = { ...ZERO };
  // On the monotonic clock: a wall-clock step neither ends the wait early nor stretches it.
  const deadline = monotonicMs() + 2 * o.policy.lease_ms;
  let states: (TaskState | null)[] = [];
  let paused = false;
  // metaspn_task_duration_seconds counts the attempts of pipeline stages too.
  const durations = new DurationRecorder(o.init.workspace, o.worker.name);
  for (;;) {
    paused = (await o.queue.stats()).paused;
    if (paused) {
      states = ids.length ? await o.queue.states(ids) : [];
      break;
    }
    const s = await runWorker({
      queue: o.queue,
      worker: o.worker,
      ...(o.host ? { host: o.host } : {}),
      owner: o.owner,
      policy: o.policy,
      once: true,
      only,
      init: o.init,
      stop: o.stop,
      ...(o.force ? { force: o.force } : {}),
      now: Date.now,
      mono: monotonicMs,
      sleep,
      random: Math.random,
      // The stage's own retries: another run's scheduled task must not wake this drain for nothing.
      nextDue: () => o.queue.nextDueAt(only),
      onOutcome: (out) => {
        if (out.kind === 'retry_scheduled') retriedOf.set(out.id, (retriedOf.get(out.id) ?? 0) + 1);
      },
      durations,
    });
    for (const k of Object.keys(ZERO) as (keyof RunSummary)[]) if (k !== 'forced' && k !== 'halted') total[k] += s[k];
    total.forced ||= s.forced;
    states = ids.length ? await o.queue.states(ids) : [];
    let open = 0;
    for (const st of states) if (st !== 'completed' && st !== 'dead' && st !== 'cancelled') open++;
    if (open === 0 || o.stop.aborted || monotonicMs() > deadline) break;
    await sleep(Math.min(1000, o.policy.poll_ms), o.stop);
  }
  // One pass over each group's tasks: `states[k]` is the state of `all[k]`, the groups in order.
  const groups: StageDrain[] = [];
  let k = 0;
  for (const g of o.groups) {
    const n = { enqueued: 0, rerun: 0, already_queued: 0, completed: 0, retried: 0, unsettled: 0, cancelled: 0 };
    const deadIds: string[] = [];
    for (const t of g) {
      const st = states[k++] ?? null;
      const id = t.id;
      const isAdded = addedIds.has(id);
      if (isAdded) n.enqueued++;
      if (rerunIds.has(id) || revived.has(id)) n.rerun++;
      else if (!isAdded) n.already_queued++;
      if (st === 'completed') n.completed++;
      else if (st === 'dead') deadIds.push(id);
      else n.unsettled++;
      if (st === 'cancelled') n.cancelled++;
      if (retriedOf.size) n.retried += retriedOf.get(id) ?? 0;
    }
    const dead = (await Promise.all(deadIds.map((id) => o.queue.getDead(id)))).filter((d): d is DeadLetter => d !== null);
    groups.push({
      total: g.length,
      enqueued: n.enqueued,
      rerun: n.rerun,
      already_queued: n.already_queued,
      completed: n.completed,
      retried: n.retried,
      dead,
      unsettled: n.unsettled,
      cancelled: n.cancelled,
      paused,
    });
  }
  return { groups, summary: total };
}
