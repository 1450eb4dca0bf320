import type { QueuePolicy } from '../config/policy.js';
import type { DeadLetter, NewTask, Owner, Queue, TaskState } from '../queue/types.js';
import { runWorker, type RunSummary } from './runner.js';
import { sleep } from './sleep.js';
import type { WorkerDefinition, WorkerInitContext } from './worker-api.js';

export interface StageDrain {
  total: number;
  enqueued: number;
  /** Completed by an earlier run and run again: a replay re-executes, the store decides what is new. */
  rerun: number;
  already_queued: number;
  completed: number;
  retried: number;
  /** The stage's tasks that ended in the dead letters (this run or an earlier one). */
  dead: DeadLetter[];
  /** Tasks neither completed nor dead when the drain gave up (held by another live worker). */
  unsettled: number;
  /** The queue is paused: nothing was handed out. */
  paused: boolean;
  summary: RunSummary;
}

export interface StageOptions {
  queue: Queue;
  worker: WorkerDefinition;
  policy: QueuePolicy;
  owner: Owner;
  init: WorkerInitContext;
  tasks: readonly NewTask[];
  /** Recorded on tasks that run again (the run id). */
  by: string;
  stop: AbortSignal;
  force?: AbortSignal;
}

/**
 * One pipeline stage on the worker runtime: enqueue its tasks (ids are deterministic, so a re-run
 * finds them), drain until every task is completed or dead (waiting out retry backoff), and
 * report how each ended. A task another live worker holds is waited for up to two leases.
 */
export async function drainStage(o: StageOptions): Promise<StageDrain> {
  const added = await o.queue.enqueue(o.tasks, { rerun_completed: true, by: o.by });
  const ids = o.tasks.map((t) => t.id);
  const total: RunSummary = { claimed: 0, completed: 0, retry_scheduled: 0, dead: 0, dead_contract: 0, lease_lost: 0, abandoned: 0, released: 0, forced: false };
  const deadline = Date.now() + 2 * o.policy.lease_ms;
  let states: (TaskState | null)[] = [];
  let paused = false;
  for (;;) {
    paused = (await o.queue.stats()).paused;
    if (paused) {
      states = ids.length ? await o.queue.states(ids) : [];
      break;
    }
    const s = await runWorker({
      queue: o.queue,
      worker: o.worker,
      owner: o.owner,
      policy: o.policy,
      once: true,
      init: o.init,
      stop: o.stop,
      ...(o.force ? { force: o.force } : {}),
      now: Date.now,
      sleep,
      random: Math.random,
      nextDue: async () => (await o.queue.stats()).next_due_at,
    });
    for (const k of Object.keys(total) as (keyof RunSummary)[]) if (k !== 'forced') total[k] += s[k];
    total.forced ||= s.forced;
    states = ids.length ? await o.queue.states(ids) : [];
    const open = states.filter((st) => st !== 'completed' && st !== 'dead').length;
    if (open === 0 || o.stop.aborted || Date.now() > deadline) break;
    await sleep(Math.min(1000, o.policy.poll_ms), o.stop);
  }
  const deadIds = ids.filter((_, i) => states[i] === 'dead');
  const dead = (await Promise.all(deadIds.map((id) => o.queue.getDead(id)))).filter((d): d is DeadLetter => d !== null);
  return {
    total: ids.length,
    enqueued: added.added.length,
    rerun: added.rerun.length,
    already_queued: added.existing.length,
    completed: states.filter((st) => st === 'completed').length,
    retried: total.retry_scheduled,
    dead,
    unsettled: states.filter((st) => st !== 'completed' && st !== 'dead').length,
    paused,
    summary: total,
  };
}
