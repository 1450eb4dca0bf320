/**
 * The Queue interface: one narrow, typed surface named after state changes.
 * The file backend, the in-memory backend (and later PostgreSQL) implement it and pass one
 * conformance suite (test/queue/conformance.ts).
 */
import type { RowText, StoredRow } from '../pipeline/types.js';

/**
 * Where a task stands. `completed`, `dead` and `cancelled` are terminal (`queue retry` takes a dead
 * task back to ready; an enqueue with `rerun_completed` takes a completed or cancelled one back).
 * `cancelled`: its run was superseded before it ran ({@link Queue.cancel}), or it was discarded from
 * the dead letters ({@link Queue.discard}); it never runs unless enqueued again.
 */
export type TaskState = 'ready' | 'scheduled' | 'leased' | 'completed' | 'dead' | 'cancelled';

/** How an attempt ended badly: decides retry (transient, timeout, lease) or dead letters at once (contract). */
export type ErrorKind = 'transient' | 'contract' | 'timeout' | 'lease_expired' | 'owner_gone';

export interface TaskError {
  /** The attempt that failed, 1-based. */
  attempt: number;
  kind: ErrorKind;
  /** Error class name, e.g. `TypeError`. */
  class: string;
  message: string;
  /** First lines of the stack, when there was one (a handler's: down to where metaspn called it). */
  stack?: string[];
  /** ISO-8601 time of the failure. */
  at: string;
  /** The error's own code when it had one (`STATE_CORRUPT`, `ENOSPC`, ...). */
  code?: string;
}

export interface RetryMark {
  at: string;
  /** Who asked: the command line or API caller. */
  by: string;
  /** attempt_count before the reset. */
  attempt_count: number;
}

/** Who cancelled a task, when and why ({@link Queue.cancel}, {@link Queue.discard}). */
export interface CancelMark {
  /** ISO-8601 time of the cancellation. */
  at: string;
  /** Who asked: a run id, the command line or API caller. */
  by: string;
  /** Why, in words (e.g. `superseded by run r_…`). */
  reason: string;
  /** True when the task was discarded from the dead letters ({@link Queue.discard}) rather than cancelled before it ran. */
  discarded?: boolean;
}

/** The durable record of one task: everything needed to run it and to explain its history. */
export interface TaskRecord {
  id: string;
  queue: string;
  payload: unknown;
  attempt_count: number;
  max_attempts: number;
  created_at: string;
  updated_at: string;
  errors: TaskError[];
  retries: RetryMark[];
  /** The partition tag the task was enqueued with ({@link NewTask.group}); absent when it had none. */
  group?: string;
  /**
   * The latest cancellation, when the task was ever cancelled. Kept as history when the task is
   * enqueued again (its `retries` then record the rerun after it), like `errors`.
   */
  cancelled?: CancelMark;
}

/** Longest task group, in characters. */
export const GROUP_MAX_CHARS = 200;

/** A task and where it stands ({@link Queue.getTask}). */
export interface TaskView {
  state: TaskState;
  task: TaskRecord;
}

export interface NewTask {
  id: string;
  payload: unknown;
  /** Defaults to the queue policy's max_attempts. */
  max_attempts?: number;
  /**
   * An opaque partition tag, e.g. `s1/2026-01-02` (a pipeline and its partition): tasks of one
   * group can be cancelled together ({@link Queue.cancel}). 1 to 200 characters of
   * `[A-Za-z0-9._:/-]`; anything else is refused (UsageError from enqueue, exit 20 / HTTP 400 from
   * task files and the API). Stored with the task; absent: the task belongs to no group. An id
   * already present keeps the group it was enqueued with.
   */
  group?: string;
}

export interface EnqueueResult {
  added: string[];
  /** Ids already present in any state (within the completed-retention window): not added twice. */
  existing: string[];
  /** With `rerun_completed`: ids that were completed or cancelled and are ready again. */
  rerun: string[];
}

export interface EnqueueOptions {
  /**
   * Completed and cancelled tasks among the ids go back to ready (attempt count reset, the rerun
   * recorded): a pipeline replaying a date re-executes its work, and the artifact store's dedup
   * decides what is new. Default false: they are reported as `existing`.
   */
  rerun_completed?: boolean;
  /** Who asked, recorded on rerun tasks. */
  by?: string;
}

/** A process that claims tasks. `id` is unique per process run; pid and host let others see it died. */
export interface Owner {
  id: string;
  pid: number;
  host: string;
}

export interface Lease {
  owner: string;
  /** Fencing token: grows by one on every claim of the task; a stale holder's token no longer matches. */
  fence: number;
  /**
   * When the lease expires unless renewed, as a wall-clock epoch ms for display. The queue decides
   * expiry on its monotonic clock (src/queue/clock.ts): a wall-clock step does not expire a lease.
   */
  expires_at: number;
}

export interface ClaimedTask {
  task: TaskRecord;
  lease: Lease;
  /**
   * true: the claim itself counted this task as started (ClaimOptions.start_first), so no `start`
   * is needed before its handler runs. Absent: as ClaimOptions.defer_start says.
   */
  started?: boolean;
}

export interface ClaimOptions {
  owner: Owner;
  max: number;
  lease_ms: number;
  /**
   * false (default): the claimed tasks count as started at once (the caller runs each as soon as it
   * has it), so losing a lease costs an attempt. true: they are prefetched; each counts as started
   * only once `start` is called, and a lease lost before that (its owner died, it expired) costs
   * no attempt.
   */
  defer_start?: boolean;
  /**
   * With `defer_start`: the first this many claimed tasks (in the order returned) may be counted as
   * started by the claim itself, in its transaction, for the tasks the caller runs (or marks) at
   * once; a queue that does so says it in ClaimedTask.started, and one that does not (files) leaves
   * them all to `start`. 0–`max`; default 0.
   */
  start_first?: number;
  /**
   * Claim only tasks whose id is in this set (a pipeline run's own tasks): the others are skipped
   * and stay as they are (no attempt, no lease). Due retries still come first. Absent: any task.
   * Cost: the ids are looked up once per set object (keep passing the same set), then each claim
   * walks whichever is smaller, the set's unsettled tasks or the claimable ones.
   */
  only?: ReadonlySet<string>;
}

/** What {@link Queue.cancel} cancels. */
export interface CancelOptions {
  /** The group ({@link NewTask.group}) whose ready and scheduled tasks are cancelled. */
  group: string;
  /** Ids of the group to leave alone (e.g. the superseding run's own tasks). */
  keep?: ReadonlySet<string>;
  /** Who asked: recorded on each task (`TaskRecord.cancelled.by`). */
  by: string;
  /** Why: recorded on each task (`TaskRecord.cancelled.reason`). */
  reason: string;
}

/** What {@link Queue.discard} discards. */
export interface DiscardOptions {
  /** These dead letters (ids not among the dead letters are left alone); absent: every dead letter. */
  ids?: readonly string[];
  /** Who asked: recorded on each task (`TaskRecord.cancelled.by`). */
  by: string;
  /** Why: recorded on each task (`TaskRecord.cancelled.reason`). */
  reason: string;
}

/** What a failure did to the task. */
export type FailOutcome = 'scheduled' | 'dead' | 'lease_lost';

export interface DeadLetter {
  task: TaskRecord;
  worker: string;
  attempt_count: number;
  errors: TaskError[];
  first_failure_at: string | null;
  last_failure_at: string | null;
  dead_at: string;
  /** The error that sent it here. */
  reason: TaskError | null;
}

export interface QueueStats {
  queue: string;
  ready: number;
  scheduled: number;
  leased: number;
  completed: number;
  dead: number;
  /**
   * Tasks cancelled ({@link Queue.cancel}) and not enqueued again since. Like `completed`, it keeps
   * counting those a compaction dropped after the completed-retention window.
   */
  cancelled: number;
  paused: boolean;
  /**
   * Epoch ms of the earliest retry due, or null. Waits are measured on the monotonic clock: this is
   * now plus what remains of the wait, so it is right after a wall-clock step.
   */
  next_due_at: number | null;
  /** Epoch ms since which the oldest ready task has waited (now minus its monotonic age), or null when none is ready. */
  oldest_ready_at: number | null;
  /** Records that failed their checksum and were set aside. */
  corrupt_records: number;
  /** Since the queue was created: failed attempts (retried or not), tasks that reached the dead letters, dead letters retried. */
  totals: { failed: number; dead_lettered: number; retried: number };
}

export interface Queue {
  readonly name: string;
  enqueue(tasks: readonly NewTask[], opts?: EnqueueOptions): Promise<EnqueueResult>;
  claim(opts: ClaimOptions): Promise<ClaimedTask[]>;
  /**
   * The handler of this lease begins now: call it (and await it) right before running the handler.
   * From then on a lost lease (its owner died, it expired) costs an attempt; a lease reclaimed
   * before it goes back to ready with none charged (a prefetched task). Not fsynced: written before
   * it resolves, so it survives the owner's crash. false: the lease was lost; do not run the handler.
   */
  start(id: string, lease: Lease): Promise<boolean>;
  renewLease(id: string, lease: Lease, lease_ms: number): Promise<boolean>;
  /** Durable before it resolves. false: the lease was lost (fenced) and nothing changed. */
  complete(id: string, lease: Lease): Promise<boolean>;
  /** A transient failure: counts the attempt, schedules a retry after delay_ms or dead-letters when exhausted. */
  fail(id: string, lease: Lease, error: Omit<TaskError, 'attempt'>, delay_ms: number): Promise<FailOutcome>;
  /** A contract failure: counts the attempt and dead-letters at once. */
  deadLetter(id: string, lease: Lease, error: Omit<TaskError, 'attempt'>): Promise<boolean>;
  /** Gives a claimed task back unchanged (no attempt counted), e.g. on a graceful stop. */
  release(id: string, lease: Lease): Promise<boolean>;
  /** Dead letters back to ready with attempt_count reset and history kept. Returns the ids moved. */
  retry(opts: { ids?: readonly string[]; by: string }): Promise<string[]>;
  pause(by: string): Promise<void>;
  resume(by: string): Promise<void>;
  stats(): Promise<QueueStats>;
  /**
   * Cancels every task of `opts.group` that is ready or scheduled (waiting for a retry) and not in
   * `opts.keep`: each becomes `cancelled`, with who, when and why recorded on it, and never runs
   * unless enqueued again (with `rerun_completed`). Leased tasks are left alone: their holder
   * finishes or loses them, and a later cancel catches them. Durable before it resolves (fsynced
   * like `complete`). Returns the ids cancelled, in enqueue order.
   * @throws UsageError when `opts.group` is not a valid group.
   */
  cancel(opts: CancelOptions): Promise<string[]>;
  /**
   * Gives up on dead letters: each leaves the dead letters (its dead-letter record goes too) for the
   * terminal state `cancelled`, with who, when and why recorded on it (`TaskRecord.cancelled`, with
   * `discarded: true`) and its attempts and errors kept. It never runs unless enqueued again with
   * `rerun_completed`. Durable before it resolves (fsynced like `complete`). Returns the ids
   * discarded: those of `opts.ids` that were dead letters, in the order given (each once), or
   * every dead letter in enqueue order.
   */
  discard(opts: DiscardOptions): Promise<string[]>;
  /**
   * Wall-clock epoch ms at which the earliest retry is due (a time in the past: due now), among the
   * tasks of `only` when given, else among all; null when none is scheduled.
   */
  nextDueAt(only?: ReadonlySet<string>): Promise<number | null>;
  /** Returns leases whose expiry passed, or whose owner process on this host is gone, to ready. */
  reclaimExpired(): Promise<string[]>;
  /** The state of each id (null: unknown, or completed or cancelled longer ago than the retention window). */
  states(ids: readonly string[]): Promise<(TaskState | null)[]>;
  listDead(): Promise<DeadLetter[]>;
  getDead(id: string): Promise<DeadLetter | null>;
  /**
   * One task whatever its state, with its whole record (payload, every attempt's error, retries,
   * cancellation): what a task detail view shows. null for an id the queue does not know, or one
   * whose record a compaction no longer keeps (a completed or cancelled task past retention).
   */
  getTask(id: string): Promise<TaskView | null>;
  close(): Promise<void>;
}

/**
 * One effect of a task, as data: what its handler asked to be written when the task completes
 * (`ctx.effects`, src/runtime/effects.ts). Written by {@link EffectsCommit.completeWithEffects}.
 * - `rows`: rows of a pipeline step's artifact store (`<pipeline>.<step>`), keyed by their id: a
 *   row already present with the same text is left as it is (idempotent), with other text it is a
 *   conflict and nothing of the completion is written.
 * - `texts`: the same, for rows already in their stored form ({@link RowText}: id, partition,
 *   identity and exact text), as a pipeline whose rows follow a spec of its own (Season 1) makes them.
 * - `append`: one entry of an append-only log (an outbox: `log` names it, `body` is any JSON
 *   value). Not keyed: written once per completion that commits, so it shows whether effects
 *   happen exactly once.
 */
export type TaskEffect =
  | { kind: 'rows'; pipeline: string; step: string; rows: readonly StoredRow[] }
  | { kind: 'texts'; pipeline: string; step: string; rows: readonly RowText[] }
  | { kind: 'append'; log: string; body: unknown };

/** A row already stored under an id with other content ({@link EffectsOutcome}). */
export interface EffectConflict {
  /** `<pipeline>.<step>`. */
  store: string;
  id: string;
  existing: string;
  incoming: string;
}

/**
 * How a completion with effects ended:
 * - `completed`: the effects and the completion are written;
 * - `lease_lost`: the lease was not this holder's any more: the completion was refused (on an
 *   atomic backend, nothing of the effects was written either);
 * - `conflict`: a row's id is stored with other content: nothing was written, and the task is
 *   still leased to the caller (who dead-letters it: a replay conflict is no transient failure).
 */
export type EffectsOutcome = { status: 'completed' } | { status: 'lease_lost' } | { status: 'conflict'; conflicts: EffectConflict[] };

/**
 * Completes a task together with its effects. `atomic` true (PostgreSQL): the effects and the
 * completion commit in one transaction, fenced by the lease: a crash at any point leaves both or
 * neither, and a holder that lost its lease writes nothing (exactly-once effects). `atomic` false
 * (files, memory): the effects are written first, then the completion (at-least-once: a crash
 * between them, or a lost lease, runs the task again and writes its effects again; keyed rows are
 * idempotent, appends are not).
 */
export interface EffectsCommit {
  readonly atomic: boolean;
  completeWithEffects(id: string, lease: Lease, effects: readonly TaskEffect[]): Promise<EffectsOutcome>;
}

/** Whether `q` commits effects itself ({@link EffectsCommit}): the PostgreSQL queue does. */
export function commitsEffects(q: object): q is EffectsCommit {
  return typeof (q as Partial<EffectsCommit>).completeWithEffects === 'function' && typeof (q as Partial<EffectsCommit>).atomic === 'boolean';
}

/** A queue an idle worker can wait on for new work instead of sleeping (PostgreSQL: LISTEN/NOTIFY). */
export interface WakesWorkers {
  /** Resolves when new work may be there, after `ms` at the latest, or when `signal` aborts. */
  waitForWork(ms: number, signal: AbortSignal): Promise<void>;
}

/** Whether `q` can wake idle workers ({@link WakesWorkers}). */
export function wakesWorkers(q: object): q is WakesWorkers {
  return typeof (q as Partial<WakesWorkers>).waitForWork === 'function';
}

/**
 * A queue on which the runner writes the start marks of prefetched tasks ahead of their turn, in
 * batches (PostgreSQL: a start mark is a commit, and one per task would cap a drain at the commit
 * rate). `start_ahead` (0–4096) is how many buffered tasks beyond the free slots may be marked
 * started before their handler runs: a worker that dies charges at most that many never-run tasks
 * an attempt, besides those in its slots. 0, or a queue without it (files): each task is marked as
 * its handler is about to run.
 */
export interface StartsAhead {
  readonly start_ahead: number;
  /**
   * How many times this queue has lost the connection to its database or found it unreachable
   * since it was opened (a count, 0 and up, that only grows; a restarted server, a terminated
   * session, a refused connection). A task marked ahead whose mark was written before the count
   * last grew may run after its database went away: its failure is then not heard by the stop
   * condition (docs/RELIABILITY.md). Optional: a queue without it never loses its database.
   */
  outages?(): number;
}

/** How many buffered tasks the runner may mark started ahead of their turn on `q` ({@link StartsAhead}); 0 when it does not say. */
export function startAheadOf(q: object): number {
  const n = (q as Partial<StartsAhead>).start_ahead;
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? Math.min(4096, Math.floor(n)) : 0;
}

/** {@link StartsAhead.outages} of `q`: 0 when it does not count them. */
export function outagesOf(q: object): number {
  const f = (q as Partial<StartsAhead>).outages;
  return typeof f === 'function' ? f.call(q) : 0;
}
