import { setMaxListeners } from 'node:events';
import { backoffDelay } from '../queue/backoff.js';
import { collectIfGrown } from './memory.js';
import { isDiskFull, MetaspnError } from '../guard/errors.js';
import { commitsEffects, wakesWorkers, type ClaimedTask, type EffectsCommit, type Lease, type Owner, type Queue, type WakesWorkers } from '../queue/types.js';
import { EffectBuffer } from './effects.js';
import { StartMarksAhead } from './start-ahead.js';
import type { QueuePolicy } from '../config/policy.js';
import type { DurationRecorder } from '../storage/task-durations.js';
import { HandlerAbandonedError, inProcessHost, IsolateStartError, type HandlerHost } from './isolation/host.js';
import { describeFailure, HandlerError, isInstance, isPermissionDenied, permissionFailure, safeError } from './thrown.js';
import { isUnrecoverable, LeaseLostError, TaskTimeoutError, type WorkerContext, type WorkerDefinition, type WorkerInitContext } from './worker-api.js';

/** Everything the loop touches, passed in: unit tests drive it with a memory queue and a fake clock. */
export interface RunnerDeps {
  queue: Pick<Queue, 'claim' | 'start' | 'complete' | 'fail' | 'deadLetter' | 'release' | 'renewLease'>;
  worker: WorkerDefinition;
  /**
   * Runs each attempt's handler and settles only when it has really ended. Default: in this
   * process (`inProcessHost`); `isolatedHost` runs it in a thread or child process per slot.
   */
  host?: HandlerHost;
  owner: Owner;
  policy: QueuePolicy;
  /** Drain what is ready, then return (no polling). */
  once: boolean;
  /** Claim at most this many tasks in this run. Default: no limit. */
  maxTasks?: number;
  /**
   * Claim only tasks whose id is in this set (ClaimOptions.only): a pipeline stage runs its own
   * tasks, never another run's. Pass the same set for the whole run (it is resolved once). Default:
   * any task of the queue.
   */
  only?: ReadonlySet<string>;
  /**
   * Tasks claimed ahead of free slots, so claims batch. Default: adaptive, so that a buffered task
   * starts within a quarter of its lease (between concurrency and 512).
   */
  prefetch?: number;
  /**
   * How many buffered tasks beyond the free slots may be marked started ahead of their turn, their
   * marks written in batches (0–4096). A handler still runs only once its own mark is written; a
   * worker that dies charges at most this many never-run tasks an attempt, besides those in its
   * slots. Default: what the queue asks for ({@link StartMarksAhead}: PostgreSQL's `start_ahead`),
   * else 0: each task is marked as its handler is about to run (files).
   */
  startAhead?: number;
  init: WorkerInitContext;
  /** First abort: stop claiming, finish running tasks, give buffered ones back. */
  stop: AbortSignal;
  /** Abort: stop now; running tasks are abandoned to their leases. */
  force?: AbortSignal;
  /** Wall clock, epoch ms: the times in error records, and retry due times (`nextDue`) are compared with it. */
  now: () => number;
  /**
   * A monotonic clock in ms, for what measures durations: timeouts, lease renewals, task durations.
   * A wall-clock step must not time out every running task nor stop the renewals. Default: `now`
   * (a fake clock in tests). The CLI passes CLOCK_MONOTONIC (src/queue/system-clock.ts).
   */
  mono?: () => number;
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  random: () => number;
  /**
   * With `once`: when nothing is ready, the time the next retry is due (null when none). The loop
   * sleeps until then instead of returning, so a pipeline stage ends only with every task settled.
   */
  nextDue?: () => Promise<number | null>;
  /** After each task outcome (for guardrails and metrics). */
  onOutcome?: (o: TaskOutcome) => void;
  /**
   * Where the durations of attempts whose handler ran to an end go (metaspn_task_duration_seconds):
   * observed at each outcome, flushed every 10 s and when the run ends. Default: not recorded.
   */
  durations?: Pick<DurationRecorder, 'observe' | 'flush'>;
  /**
   * A stop condition, asked as soon as each handler has ended (before its acknowledgement, with the
   * outcome about to be recorded): a reason halts claiming at once (running tasks finish, buffered
   * ones go back).
   */
  haltWhen?: (o: TaskOutcome) => string | null;
  /**
   * Commits a task's effects (`ctx.effects`) with its completion. Default: the queue itself when it
   * can ({@link commitsEffects}: PostgreSQL, in one transaction). Without either, a task whose
   * handler recorded effects is given back untouched and the worker stops with exit 64: this
   * backend has nowhere to write them (pass `effectsThenComplete(queue, sink)`, src/runtime/effects.ts).
   */
  effects?: EffectsCommit;
}

/** `released`: the task went back to the queue untouched (the disk was full: not the task's fault). */
export type OutcomeKind = 'completed' | 'retry_scheduled' | 'dead' | 'dead_contract' | 'lease_lost' | 'abandoned' | 'released';

export interface TaskOutcome {
  id: string;
  kind: OutcomeKind;
  attempt: number;
  duration_ms: number;
  /** For dead letters: the error's code, e.g. STATE_CORRUPT. */
  code?: string;
  /** An error no task can get past (disk full, permission denied, no isolate starts): the worker stops claiming and rethrows it. */
  fatal?: unknown;
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
  /** Why the stop condition halted the worker, if it did. */
  halted?: string;
}

/** Adaptive prefetch: buffered tasks should start within a quarter of their lease. */
function prefetchFor(c: number, leaseMs: number, avgMs: number, fixed?: number): number {
  if (fixed !== undefined) return Math.max(1, fixed);
  if (avgMs <= 0) return c * 2;
  const fits = Math.floor((c * leaseMs) / 4 / avgMs);
  return Math.max(c, Math.min(512, fits));
}

export async function runWorker(d: RunnerDeps): Promise<RunSummary> {
  const { policy } = d;
  const sum: RunSummary = { claimed: 0, completed: 0, retry_scheduled: 0, dead: 0, dead_contract: 0, lease_lost: 0, abandoned: 0, released: 0, forced: false };
  const maxTasks = d.maxTasks ?? Infinity;
  const buffer: ClaimedTask[] = [];
  /** Tasks whose handler runs: each holds a concurrency slot. */
  let running = 0;
  /** Tasks not yet settled in the queue: the handler ran, the acknowledgement is being committed. */
  const inflight = new Set<Promise<void>>();
  const log = d.init.logger;
  // Every running task listens for a forced stop: hundreds at once are expected, not a leak.
  setMaxListeners(0, d.stop, ...(d.force ? [d.force] : []));
  const halt = new AbortController();
  const stopped = Promise.race([abortPromise(d.stop), abortPromise(halt.signal)]);
  /**
   * `d.stop` and `halt` aborted, as flags their abort listeners set (below, with the loop's wake-up):
   * the loop and the callbacks of every task read these, not the signals. An AbortSignal's hidden
   * class is made again in each run (its transitions die with the run's signals), so a check of it
   * in the loop's optimized code failed at the end of every run and threw that code away: the next
   * run compiled the loop again (~100 ms of a V8 thread's CPU a run).
   */
  let stopping = d.stop.aborted;
  let halted = false;
  let avgMs = 0;
  let settled = 0;
  let drained = false;
  /** The last claim found nothing: an idle worker waits (or a `once` one is drained) instead of claiming again at once. */
  let foundNothing = false;
  /**
   * Attempts that gave their task back (a retry, a release, a lost lease) when the last claim found
   * nothing: one given back since may be ready at once (a retry without delay is ready, not
   * scheduled, on PostgreSQL), so `once` claims again before it looks for a due time.
   */
  const givenBack = (): number => sum.retry_scheduled + sum.released + sum.lease_lost;
  let givenBackAtDrain = 0;
  let fatal: { err: unknown } | null = null;
  // Set from the tasks' callbacks: read through this so the compiler does not take it for null.
  const fatalError = (): { err: unknown } | null => fatal;
  const live = new Set<Live>();
  const host = d.host ?? inProcessHost(d.worker);
  const mono = d.mono ?? d.now;
  /** When each buffered task's lease was taken or last renewed, on the monotonic clock: `renewedAt[i]` is `buffer[i]`'s (an array beside it, not a WeakMap: a set a task cost 0.4-2 µs). */
  const renewedAt: number[] = [];
  const ahead = new StartMarksAhead(d.queue, buffer, d.startAhead);
  const stopWatchdog = watchdog(d, mono, live, host, buffer, renewedAt, (at) => {
    sum.lease_lost++;
    ahead.removedAt(at);
  });
  // Statistics only: a flush that fails (a full disk) is logged, never the run's failure.
  const flushDurations = (): Promise<void> =>
    d.durations ? d.durations.flush().catch((err: unknown) => log.warn({ event: 'task_durations_not_saved', error: (err as Error).message }, 'task durations not saved')) : Promise.resolve();
  const durationTimer = d.durations ? setInterval(() => void flushDurations(), 10_000) : null;
  durationTimer?.unref();
  // The stop condition hears of each handler as soon as it ended: the acknowledgements of hundreds
  // of tasks may be pending, and waiting for them let hundreds more run.
  /** Failed attempts in a row (reset by a completion): `concurrency` of them and the runner claims no further ahead than its free slots. */
  let failStreak = 0;
  const judge = (o: TaskOutcome): void => {
    if (o.fatal !== undefined) {
      // No other task starts while this one is being given back.
      fatal ??= { err: o.fatal };
      halt.abort();
      return;
    }
    failStreak = o.kind === 'completed' ? 0 : failStreak + 1;
    if (halted || !d.haltWhen) return;
    const why = d.haltWhen(o);
    if (why) {
      sum.halted = why;
      halt.abort();
    }
  };
  /** `judge` of an outcome that is not fatal, its object made only when a stop condition will read it. */
  const verdict = (a: Attempt, kind: OutcomeKind): void => {
    if (halted || !d.haltWhen) failStreak = kind === 'completed' ? 0 : failStreak + 1;
    else judge({ id: a.id, kind, attempt: a.attempt, duration_ms: mono() - a.t0 });
  };

  /**
   * The worker loop's one wait: it sleeps until a slot comes free, a claim ends, the worker is
   * stopped or halted, or (when it waits for the queue to catch up) an acknowledgement settles.
   * One promise a wait, not a race over every running or pending task (which left a reaction on
   * each of up to thousands of promises, and one on the stop signal's for the run's lifetime, at
   * every turn of the loop).
   */
  let wake: (() => void) | null = null;
  let wakeOnAck = false;
  const wakeLoop = (): void => {
    const f = wake;
    if (f) {
      wake = null;
      f();
    }
  };
  const sleepUntilWoken = (onAck: boolean): Promise<void> => {
    if (stopping || halted) return Promise.resolve();
    wakeOnAck = onAck;
    return new Promise<void>((r) => (wake = r));
  };
  const onStop = (): void => {
    stopping = true;
    wakeLoop();
  };
  const onHalt = (): void => {
    halted = true;
    wakeLoop();
  };
  d.stop.addEventListener('abort', onStop);
  halt.signal.addEventListener('abort', onHalt);

  /** What every attempt of this run shares (one object, not closures per task). */
  const shared: AttemptRun = {
    d,
    mono,
    host,
    live,
    log,
    judge,
    verdict,
    handled: () => {
      running--;
      // A slot came free: the queue is asked again (as after each task when it had nothing).
      foundNothing = false;
      wakeLoop();
    },
    lostSinceMark: (c) => ahead.lostSinceMark(c),
  };
  const settle = (o: TaskOutcome): void => {
    sum[o.kind]++;
    if (++settled % 4096 === 0) collectIfGrown();
    if (o.fatal !== undefined && !fatal) {
      fatal = { err: o.fatal };
      halt.abort();
    }
    avgMs = avgMs === 0 ? o.duration_ms : avgMs * 0.9 + o.duration_ms * 0.1;
    if (o.kind === 'completed') d.durations?.observe(o.duration_ms / 1000, 'completed');
    else if (o.kind === 'retry_scheduled' || o.kind === 'dead' || o.kind === 'dead_contract') d.durations?.observe(o.duration_ms / 1000, 'failed');
    d.onOutcome?.(o);
  };

  const start = (c: ClaimedTask): void => {
    running++;
    const tracked: Promise<void> = new Attempt(shared, c, ahead.markOf(c)).run().then(
      (o) => {
        try {
          settle(o);
        } finally {
          inflight.delete(tracked);
          if (wakeOnAck) wakeLoop();
        }
      },
      (err: unknown) => {
        inflight.delete(tracked);
        if (wakeOnAck) wakeLoop();
        throw err;
      },
    );
    inflight.add(tracked);
  };

  const idle = wakesWorkers(d.queue) ? (ms: number, signal: AbortSignal) => (d.queue as unknown as WakesWorkers).waitForWork(ms, signal) : null;
  /**
   * The claim under way, if any: claims run beside the tasks, so the slots keep running the
   * buffered tasks while the next batch is fetched (one claim at a time). A claim that throws ends
   * the loop at its next turn.
   */
  let claiming: Promise<void> | null = null;
  let claimError: { err: unknown } | null = null;
  // Set from the claim's callbacks: read through these so the compiler does not take them for null.
  const claimFailed = (): { err: unknown } | null => claimError;
  const claimUnderWay = (): Promise<void> | null => claiming;
  const claimNext = (want: number): void => {
    // Prefetched: a task counts as started (and its lease as an attempt) only once its handler is
    // about to run, so a worker that dies charges nothing to the tasks it held in its buffer. With
    // start marks ahead, the claim marks those that run (or would be marked) at once in its own commit.
    const first = ahead.firstOfClaim(want, policy.concurrency - running);
    claiming = d.queue
      .claim({ owner: d.owner, max: want, lease_ms: policy.lease_ms, defer_start: true, ...(first > 0 ? { start_first: first } : {}), ...(d.only ? { only: d.only } : {}) })
      .then(
        (got) => {
          sum.claimed += got.length;
          const at = mono();
          for (const c of got) {
            buffer.push(c);
            renewedAt.push(at);
          }
          ahead.claimed(got);
          foundNothing = got.length === 0;
          if (got.length === 0 && d.once) {
            drained = true;
            givenBackAtDrain = givenBack();
          }
        },
        (err: unknown) => void (claimError = { err }),
      )
      .finally(() => {
        claiming = null;
        wakeLoop();
      });
  };
  // The loop reads these from locals, not from the deps and the policy: objects of each run, whose
  // hidden class a run's end may not share with the run its code was compiled in.
  const { once, prefetch: fixedPrefetch, stop } = d;
  const { concurrency, lease_ms: leaseMs, poll_ms: pollMs } = policy;
  const nextDue = d.nextDue ? (): Promise<number | null> => d.nextDue!() : null;
  const pause = (ms: number): Promise<void> => d.sleep(ms, stop);
  const untilDue = (due: number): Promise<void> => pause(Math.max(0, due - d.now()));
  /**
   * The worker loop, a function of its own: what runWorker does once a run (its set-up, the end)
   * meets a run's new objects, and a check of them that fails throws away the optimized code of
   * the function it is in; kept apart, the loop's code outlives the run (the next one in the
   * process starts on it instead of compiling it again).
   */
  const loop = async (): Promise<{ err: unknown } | null> => {
    try {
      while (!stopping && !halted) {
        const failedClaim = claimFailed();
        if (failedClaim) throw failedClaim.err;
        // While tasks fail (as many in a row as there are slots), claim no further ahead than the free
        // slots: a broken dependency must not leave hundreds of tasks leased to a worker about to stop.
        // One failure among completions (a retry, a bad input) keeps the claims batched.
        const prefetch = failStreak >= concurrency && fixedPrefetch === undefined ? concurrency : prefetchFor(concurrency, leaseMs, avgMs, fixedPrefetch);
        const want = Math.min(prefetch - buffer.length, maxTasks - sum.claimed);
        // The next claim starts while a quarter of the prefetch (at least the slots' worth) is still buffered.
        if (!claiming && !drained && !foundNothing && want > 0 && buffer.length <= Math.max(concurrency, Math.floor(prefetch / 4))) claimNext(want);
        ahead.markAhead(Math.max(0, concurrency - running));
        while (running < concurrency && buffer.length > 0 && !stopping && !halted) {
          ahead.shifted();
          renewedAt.shift();
          start(buffer.shift()!);
        }
        if (running === 0 && buffer.length === 0) {
          const under = claimUnderWay();
          if (under) {
            await Promise.race([under, stopped]);
            // What it found runs at once; when it found nothing, the drained or idle steps below follow.
            if (!foundNothing || buffer.length > 0 || stopping || halted) continue;
          }
          // Let acknowledgements land first: a failure becomes a scheduled retry only then.
          if (inflight.size > 0) {
            await Promise.race([Promise.all(inflight), stopped]);
            continue;
          }
          if (sum.claimed >= maxTasks) break;
          if (once && drained) {
            if (givenBack() !== givenBackAtDrain) {
              drained = false;
              foundNothing = false;
              continue;
            }
            const due = nextDue ? await nextDue() : null;
            if (due === null) break;
            await untilDue(due);
            drained = false;
            foundNothing = false;
            continue;
          }
          // Idle: a queue that can wake its workers (PostgreSQL) ends the wait as tasks arrive; the
          // poll interval stays the longest wait either way.
          await (idle ? idle(pollMs, stop) : pause(pollMs));
          foundNothing = false;
          continue;
        }
        if (inflight.size - running > Math.max(64, prefetch)) {
          // Too many acknowledgements pending: let the queue catch up before running more.
          await sleepUntilWoken(true);
        } else if (running >= concurrency || buffer.length === 0 || drained || sum.claimed >= maxTasks) {
          // A slot comes free or the claim under way ends (or, with neither, the worker stops).
          await sleepUntilWoken(false);
        }
        wakeOnAck = false;
      }
    } catch (err) {
      halt.abort();
      return { err };
    }
    return null;
  };
  // A claim that throws (the queue unreachable) ends the loop, but not before the running tasks
  // have ended and been acknowledged (or reported lost): the caller closes the queue after this.
  let loopError = await loop();
  // A claim still under way hands its tasks to the buffer, which goes back below.
  await claimUnderWay();
  loopError ??= claimFailed();

  try {
    // Graceful stop: buffered tasks go back untouched; running ones finish unless forced.
    ahead.cleared();
    renewedAt.length = 0;
    for (const c of buffer.splice(0)) {
      const back = await d.queue.release(c.task.id, c.lease).catch((err: unknown) => {
        // The disk filled up: the rest go back when their leases expire.
        if (!isDiskFull(err)) throw err;
        fatal ??= { err };
        return false;
      });
      if (back) sum.released++;
    }
    if (inflight.size > 0) {
      const forced = d.force ? abortPromise(d.force).then(() => true) : new Promise<boolean>(() => undefined);
      sum.forced = await Promise.race([Promise.all(inflight).then(() => false), forced]);
      if (sum.forced) log.warn({ event: 'worker_forced', running: running }, 'forced stop: running tasks left to their leases');
    }
  } finally {
    // Only now: the tasks still settling above read the flags (a fatal outcome halts, and is heard
    // once). Also when a release above threw: a caller's stop signal keeps no listener of this run.
    d.stop.removeEventListener('abort', onStop);
    halt.signal.removeEventListener('abort', onHalt);
    stopWatchdog();
    if (durationTimer) clearInterval(durationTimer);
  }
  await flushDurations();
  if (loopError) throw loopError.err;
  // Disk full, permission denied: retrying would only burn every task's attempts; the command fails with the cause.
  const failed = fatalError();
  if (failed) throw failed.err;
  return sum;
}

/** A task whose handler is running: what the shared watchdog needs to time it out and keep its lease. */
interface Live {
  id: string;
  lease: Lease;
  /** When the handler started (an isolate may have had to start first); Infinity until then. */
  began: number;
  renewed: number;
  timedOut: boolean;
  /** Stops the attempt: aborts its signal; an isolate is killed after a grace, or at once with `now`. */
  stop(reason: Error, now: boolean): void;
}

/**
 * One timer for all running tasks: times them out and renews their leases every lease/3, also
 * while a timed-out handler is still ending (its lease is kept until it has: no other attempt of
 * the task may start before). A renewal refused means another worker holds the task: the attempt
 * is stopped. (A timer and an AbortController per task cost more than a no-op task itself.)
 */
function watchdog(d: RunnerDeps, mono: () => number, live: Set<Live>, host: HandlerHost, buffer: ClaimedTask[], renewedAt: number[], lost: (at: number) => void): () => void {
  const { policy } = d;
  const log = d.init.logger;
  const period = Math.min(1000, Math.max(10, Math.min(policy.timeout_ms, policy.lease_ms / 3) / 4));
  const renewing = new WeakSet<ClaimedTask>();
  const timer = setInterval(() => {
    // Durations on the monotonic clock: a wall-clock step neither times tasks out nor stops renewals.
    const now = mono();
    // Claimed ahead and waiting for a slot: their leases are this worker's to keep too.
    for (let i = 0; i < buffer.length; i++) {
      const c = buffer[i]!;
      if (renewing.has(c) || now - (renewedAt[i] ?? now) < policy.lease_ms / 3) continue;
      renewing.add(c);
      void d.queue
        .renewLease(c.task.id, c.lease, policy.lease_ms)
        .then((ok) => {
          const at = buffer.indexOf(c);
          if (ok) {
            if (at >= 0) renewedAt[at] = now;
            c.lease = { ...c.lease, expires_at: d.now() + policy.lease_ms };
          }
          if (!ok && at >= 0) {
            buffer.splice(at, 1);
            renewedAt.splice(at, 1);
            lost(at);
          }
        })
        // A renewal that failed (the queue unreachable for a moment) is tried again next period;
        // the lease may still lapse, and then the claim is lost as above. Say so in the log.
        .catch((err: unknown) =>
          log.warn({ event: 'lease_renewal_failed', task_id: c.task.id, error: (err as Error)?.message ?? String(err) }, `renewing the lease of prefetched task ${c.task.id} failed`),
        )
        .finally(() => renewing.delete(c));
    }
    for (const t of live) {
      if (!t.timedOut && now - t.began >= policy.timeout_ms) {
        t.timedOut = true;
        if (host.isolation === 'none') {
          log.warn(
            { event: 'task_timeout', task_id: t.id, timeout_ms: policy.timeout_ms, isolation: host.isolation },
            host.abandonAfterMs === undefined
              ? `task ${t.id} timed out after ${policy.timeout_ms} ms: its signal is aborted, and its slot stays taken until the handler returns (isolation none cannot stop it)`
              : `task ${t.id} timed out after ${policy.timeout_ms} ms: its signal is aborted; a handler still running ${host.abandonAfterMs} ms from now is given up`,
          );
        } else {
          log.info(
            { event: 'task_timeout', task_id: t.id, timeout_ms: policy.timeout_ms, isolation: host.isolation },
            `task ${t.id} timed out after ${policy.timeout_ms} ms: stopping its ${host.isolation}`,
          );
        }
        t.stop(new TaskTimeoutError(policy.timeout_ms), false);
      }
      if (now - t.renewed >= policy.lease_ms / 3) {
        t.renewed = now;
        void d.queue
          .renewLease(t.id, t.lease, policy.lease_ms)
          .then((ok) => {
            if (ok) t.lease = { ...t.lease, expires_at: d.now() + policy.lease_ms };
            else if (live.has(t)) t.stop(new LeaseLostError(), false);
          })
          // Tried again next period; if the lease lapses meanwhile, the next renewal says it is lost.
          .catch((err: unknown) => log.warn({ event: 'lease_renewal_failed', task_id: t.id, error: (err as Error)?.message ?? String(err) }, `renewing the lease of task ${t.id} failed`));
      }
    }
  }, period);
  // Referenced on purpose: a handler stuck on a promise that holds nothing else must still time out.
  const onForce = (): void => {
    for (const t of live) t.stop(new Error('worker forced to stop'), true);
  };
  d.force?.addEventListener('abort', onForce, { once: true });
  return () => {
    clearInterval(timer);
    d.force?.removeEventListener('abort', onForce);
  };
}

/** What every attempt of one run shares: the deps, the clocks, the host and the loop's callbacks. */
interface AttemptRun {
  d: RunnerDeps;
  mono: () => number;
  host: HandlerHost;
  /** Attempts whose handler runs: what the watchdog times out and renews. */
  live: Set<Live>;
  log: WorkerInitContext['logger'];
  /** Hears an outcome about to be recorded (with `fatal`: the worker stops claiming). */
  judge: (o: TaskOutcome) => void;
  /** `judge` of a kind that is not fatal. */
  verdict: (a: Attempt, kind: OutcomeKind) => void;
  /** The attempt's concurrency slot is free (called once per attempt). */
  handled: () => void;
  /** Has the queue lost its database since `c`'s mark ahead was written? */
  lostSinceMark: (c: ClaimedTask) => boolean;
}

/**
 * One attempt of one task: what the watchdog sees of it ({@link Live}), what the host runs
 * (HandlerHost's Attempt: `task`, `payload`, `ctx`, `started`, `onStop`), and `run`, which runs it.
 * One object and its context a task, instead of a dozen closures and a promise chain.
 *
 * `mark` is its start mark when it was asked for ahead of its turn (else `run` asks for it); the
 * handler runs only once it is written. The slot is freed (`handled`) once the handler has really
 * ended (an isolate killed, an in-process promise settled), before the acknowledgement; the stop
 * condition hears the outcome about to be recorded at the same moment.
 */
class Attempt implements Live {
  readonly id: string;
  readonly task: ClaimedTask['task'];
  readonly attempt: number;
  readonly t0: number;
  lease: Lease;
  began = Infinity;
  renewed: number;
  timedOut = false;
  /** What the handler gets (set once its start mark is written). */
  payload: unknown = undefined;
  ctx!: WorkerContext;
  /** Why the attempt was stopped (timeout, lost lease, forced stop), once it was. */
  private reason: Error | null = null;
  private ctrl: AbortController | null = null;
  private stopHost: ((reason: Error, now: boolean) => void) | null = null;
  /** The slot was freed. */
  private ended = false;

  constructor(
    private readonly shared: AttemptRun,
    private readonly c: ClaimedTask,
    private readonly mark: Promise<boolean> | undefined,
  ) {
    this.task = c.task;
    this.id = c.task.id;
    this.attempt = c.task.attempt_count + 1;
    this.lease = c.lease;
    this.t0 = this.renewed = shared.mono();
    shared.live.add(this);
  }

  stop(e: Error, now: boolean): void {
    if (!this.reason) {
      this.reason = e;
      this.ctrl?.abort(e);
    }
    this.stopHost?.(e, now);
  }

  /** The host's call when the handler really starts: the timeout counts from then. */
  started(): void {
    this.began = this.shared.mono();
  }

  onStop(f: (reason: Error, now: boolean) => void): void {
    this.stopHost = f;
    if (this.reason) f(this.reason, this.shared.d.force?.aborted === true);
  }

  /** `ctx.signal`: made on first use (most tasks never look at theirs). */
  signal(): AbortSignal {
    this.ctrl ??= new AbortController();
    if (this.reason && !this.ctrl.signal.aborted) this.ctrl.abort(this.reason);
    return this.ctrl.signal;
  }

  /** `ctx.heartbeat`: extends the lease. */
  async renew(): Promise<void> {
    const { d, mono } = this.shared;
    const now = mono();
    if (await d.queue.renewLease(this.id, this.lease, d.policy.lease_ms)) {
      this.renewed = now;
      this.lease = { ...this.lease, expires_at: d.now() + d.policy.lease_ms };
    }
  }

  /** The handler has ended: the slot is free (once), the watchdog forgets it. */
  private done(): void {
    this.shared.live.delete(this);
    if (this.ended) return;
    this.ended = true;
    this.shared.handled();
  }

  /**
   * The attempt's one `task_end` line. A failed attempt (`failure`) says it all, for the log file and
   * the terminal: the task, attempt n of m, the error (as `err`), and what happens next.
   */
  private outcome(kind: OutcomeKind, code?: string, failure?: { err: Error; retryAt?: number }): TaskOutcome {
    const { log, d } = this.shared;
    const { task, attempt } = this;
    const o: TaskOutcome = { id: task.id, kind, attempt, duration_ms: this.shared.mono() - this.t0 };
    if (code) o.code = code;
    if (failure && (kind === 'retry_scheduled' || kind === 'dead' || kind === 'dead_contract')) {
      const level = kind === 'retry_scheduled' ? 'warn' : 'error';
      // Made only when the line is written, as below (a failure's text and times cost a few µs).
      if (!log.isLevelEnabled(level)) return o;
      const fields = { event: 'task_end', task_id: task.id, outcome: kind, duration_ms: o.duration_ms, attempt: `${attempt} of ${task.max_attempts}` };
      const retryAt = kind === 'retry_scheduled' && failure.retryAt !== undefined ? new Date(failure.retryAt).toISOString() : null;
      const next = retryAt !== null ? `retry at ${retryAt}` : kind === 'dead' ? 'dead-lettered: no attempt left' : 'dead-lettered: a contract error, which no retry can fix';
      const e = failure.err;
      log[level](
        { ...fields, queue: d.worker.name, err: e, next: retryAt !== null ? 'retry' : 'dead_letter', ...(retryAt !== null ? { retry_at: retryAt } : {}) },
        `task ${task.id} of ${d.worker.name} failed, attempt ${attempt} of ${task.max_attempts}: ${e.name}: ${e.message}; ${next}`,
      );
      return o;
    }
    const level = kind === 'completed' ? 'info' : 'warn';
    // The line's fields are made only when it is written (a silent logger skips them).
    if (log.isLevelEnabled(level)) log[level]({ event: 'task_end', task_id: task.id, outcome: kind, duration_ms: o.duration_ms, attempt: `${attempt} of ${task.max_attempts}` }, `task ${kind}`);
    return o;
  }

  /** Runs the attempt: its start mark, the handler, the acknowledgement or the failure's record. */
  async run(): Promise<TaskOutcome> {
    const { d, host, verdict } = this.shared;
    const { task, mark } = this;
    const { worker } = d;
    try {
      // Written before anything of the attempt runs: from here on, a crash of this process costs it an attempt.
      if (!(await (mark ?? d.queue.start(task.id, this.lease)))) {
        this.done();
        return this.outcome('lease_lost');
      }
      const payload = worker.payload ? worker.payload.safeParse(task.payload) : null;
      if (payload && !payload.success) {
        this.done();
        verdict(this, 'dead_contract');
        const issue = payload.error.issues[0];
        const where = issue && issue.path.length ? issue.path.join('.') : 'payload';
        const err = { kind: 'contract' as const, class: 'ContractError', message: `payload invalid: ${where}: ${issue?.message ?? 'rejected'}`, at: new Date(d.now()).toISOString() };
        const failure = { err: new HandlerError({ name: err.class, message: err.message, unrecoverable: true }) };
        return this.outcome((await d.queue.deadLetter(task.id, this.lease, err)) ? 'dead_contract' : 'lease_lost', undefined, failure);
      }
      const effects = new EffectBuffer();
      this.ctx = contextOf(this, d.init, effects);
      this.payload = payload?.success ? payload.data : task.payload;
      // Settles only when the handler has really ended: the slot and the lease are held until then.
      await host.run(this);
      this.done();
      // A handler that returns because it was stopped did not finish its work.
      const stopped = this.reason;
      if (stopped) throw stopped;
      if (effects.list.length === 0) {
        verdict(this, 'completed');
        return this.outcome((await d.queue.complete(task.id, this.lease)) ? 'completed' : 'lease_lost');
      }
      const commit = d.effects ?? (commitsEffects(d.queue) ? d.queue : null);
      if (!commit) throw new NoEffectSinkError(worker.name);
      const r = await commit.completeWithEffects(task.id, this.lease, effects.list);
      if (r.status === 'conflict') {
        // The same id with other content: no retry can change that (a non-deterministic handler).
        const c = r.conflicts[0]!;
        throw new EffectConflictError(`replay conflict: ${c.store} already holds ${c.id} with different content (${r.conflicts.length} conflicting row(s)); nothing of this task was written`);
      }
      verdict(this, r.status === 'completed' ? 'completed' : 'lease_lost');
      return this.outcome(r.status === 'completed' ? 'completed' : 'lease_lost');
    } catch (raw) {
      this.done();
      return await this.failed(raw);
    } finally {
      this.done();
    }
  }

  /** What a failed attempt records (`raw`: what the handler or the queue threw). */
  private async failed(raw: unknown): Promise<TaskOutcome> {
    const { d, judge, verdict, mono } = this.shared;
    const { task, attempt, mark } = this;
    const { policy, worker } = d;
    // Forced: the process is about to exit; the lease hands the task to the next worker.
    if (d.force?.aborted) return this.outcome('abandoned');
    // A stopped handler that did not return in time (HandlerAbandonedError): the attempt is
    // recorded as its stop says, and the worker stops claiming (`fatal`): no other attempt starts
    // beside a handler that may still be running, and the command ends with its exit code (50).
    const abandoned = isInstance(raw, HandlerAbandonedError) ? raw : undefined;
    const given = (o: TaskOutcome): TaskOutcome => (abandoned ? { ...o, fatal: abandoned } : o);
    // Another worker holds the task: nothing this one records would be accepted.
    if (this.reason instanceof LeaseLostError) return given(this.outcome('lease_lost'));
    // Whatever was thrown is read once, here, into a plain Error whose reading cannot throw.
    const err = this.reason ?? (isInstance(raw, IsolateStartError) || isInstance(raw, NoEffectSinkError) ? raw : safeError(raw));
    if (err instanceof IsolateStartError || err instanceof NoEffectSinkError || isDiskFull(err) || isPermissionDenied(err)) {
      // Not the task's fault, and no task can succeed: no attempt is spent, the task goes back as
      // it was (if the queue can still write; else its lease expires) and the worker stops.
      const why = isPermissionDenied(err) ? permissionFailure(err, `task ${task.id} of ${worker.name}`) : err;
      judge({ id: task.id, kind: 'released', attempt, duration_ms: mono() - this.t0, fatal: why });
      const back = await d.queue.release(task.id, this.lease).catch(() => false);
      return { ...this.outcome(back ? 'released' : 'abandoned', (err as NodeJS.ErrnoException).code), fatal: why };
    }
    if (isUnrecoverable(err)) {
      verdict(this, 'dead_contract');
      const e = describeFailure(err, 'contract', d.now());
      const ok = await d.queue.deadLetter(task.id, this.lease, e);
      return this.outcome(ok ? 'dead_contract' : 'lease_lost', e.code, { err });
    }
    // A task marked ahead of its turn may have run after the database went away (its failure may be
    // just that): the stop condition hears of its failure once the failure is recorded, and a record
    // refused is a lost lease, not one more failure towards a paused queue. Any other is heard now.
    // A record accepted is not enough: a restarted server is back within a second, and the records
    // of the failures it caused are written on new connections. So when the queue lost its database
    // after the mark was written, the stop condition hears a lost lease, as a mark written just
    // before the handler would have reported (the failure is recorded all the same).
    if (mark === undefined) verdict(this, attempt >= task.max_attempts ? 'dead' : 'retry_scheduled');
    const kind = err instanceof TaskTimeoutError ? 'timeout' : 'transient';
    const delay = backoffDelay(attempt, { base_ms: policy.backoff_base_ms, cap_ms: policy.backoff_cap_ms, jitter: policy.backoff_jitter }, d.random);
    const e = describeFailure(err, kind, d.now());
    const result = await d.queue.fail(task.id, this.lease, e, delay);
    const recorded = result === 'dead' ? 'dead' : result === 'scheduled' ? 'retry_scheduled' : 'lease_lost';
    if (mark !== undefined) verdict(this, this.shared.lostSinceMark(this.c) ? 'lease_lost' : recorded);
    return given(this.outcome(recorded, e.code, { err, retryAt: d.now() + delay }));
  }
}

/**
 * A task's context: the worker's init fields and the attempt's own (`attempt`, `effects`,
 * `heartbeat`, `signal`), all own properties (a step spreads it). `signal` is an own getter, the
 * same function on every context, that makes the attempt's AbortSignal on first use: a getter
 * written in an object literal is a new function each time, and V8 then keeps each context in a
 * slow dictionary form (1.8 µs a task against 0.3 µs, Node 20).
 */
class TaskContext {
  readonly #of: Attempt;
  constructor(of: Attempt) {
    this.#of = of;
  }
  static signalOf(ctx: TaskContext): AbortSignal {
    return ctx.#of.signal();
  }
}

const SIGNAL: PropertyDescriptor = {
  get(this: TaskContext): AbortSignal {
    return TaskContext.signalOf(this);
  },
  enumerable: true,
  configurable: true,
};

/** The attempt's own fields win over any init field of the same name; key order as `{ ...init, own }` then, else `{ own, ...init }`. */
function contextOf(a: Attempt, init: WorkerInitContext, effects: EffectBuffer): WorkerContext {
  const ctx = new TaskContext(a) as unknown as Record<string, unknown>;
  const first = namesOwnFields(init);
  if (first) Object.assign(ctx, init);
  ctx.attempt = a.attempt;
  ctx.effects = effects;
  ctx.heartbeat = (): Promise<void> => a.renew();
  Object.defineProperty(ctx, 'signal', SIGNAL);
  if (!first) Object.assign(ctx, init);
  return ctx as unknown as WorkerContext;
}

/** The fields of a task's context that the runner sets, whatever the worker's init holds. */
const OWN_FIELDS = ['attempt', 'effects', 'heartbeat', 'signal'] as const;
const namesOwn = new WeakMap<object, boolean>();

/** Does `init` hold a field of the name of one the runner sets (asked once per init object)? */
function namesOwnFields(init: WorkerInitContext): boolean {
  let v = namesOwn.get(init);
  if (v === undefined) namesOwn.set(init, (v = OWN_FIELDS.some((k) => Object.hasOwn(init, k))));
  return v;
}

/** Resolves when `signal` aborts (never rejects, so it can sit in a Promise.race). */
export function abortPromise(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

/**
 * A task's rows conflict with rows already stored under the same ids (a non-deterministic handler,
 * or a store changed by hand): inconsistent state (30), never retried, nothing of the task written.
 */
export class EffectConflictError extends MetaspnError {
  readonly unrecoverable = true;
  constructor(message: string) {
    super('STATE_CORRUPT', message, { hint: 'nothing was overwritten. A step whose code changed on purpose changes its output: bump its params (e.g. {version: 2}) so it gets a new identity' });
    this.name = 'EffectConflictError';
  }
}

/** A handler recorded effects and this worker has nowhere to commit them: no task can complete, so the worker stops (exit 64). */
export class NoEffectSinkError extends MetaspnError {
  constructor(worker: string) {
    super('USAGE', `worker ${worker} recorded effects (ctx.effects), and this queue backend cannot commit them with the completion`, {
      hint: 'run the worker against PostgreSQL (METASPN_DATABASE_URL), which commits effects with the acknowledgement, or give the runner an effect sink',
    });
    this.name = 'NoEffectSinkError';
  }
}
