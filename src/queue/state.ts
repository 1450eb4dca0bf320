import type { TaskState } from './types.js';

/**
 * The task state machine: one enum, one transition function, no I/O.
 * Every backend applies events through `transition`, so they agree on what is legal.
 *
 *   ready ──claim──▶ leased ──complete──▶ completed
 *     ▲                │ ├──fail (attempts left)──▶ scheduled ──(due)──▶ claimable
 *     │                │ ├──fail / dead_letter (exhausted or contract)──▶ dead ──retry──▶ ready
 *     └──release / reclaim (attempt counted)──┘
 *   completed ──rerun (a replay of the same work)──▶ ready
 *   ready / scheduled ──cancel (its run was superseded)──▶ cancelled ──rerun──▶ ready
 *   dead ──discard (an operator gave up on it)──▶ cancelled
 *
 * A lease is `started` once its holder said the handler begins (`start`). Only a started attempt
 * counts: a lease reclaimed before its handler started (a prefetched task of a worker that died)
 * goes back to ready with no attempt charged, through `release` on its owner's behalf.
 */
export interface Status {
  state: TaskState;
  attempt_count: number;
  max_attempts: number;
  /** Grows by one on every claim; a lease is valid only with the current fence. */
  fence: number;
  /**
   * ready: ready since; scheduled: due at; leased: lease expiry; completed/dead/cancelled: when it
   * got there. In ms on the reader's monotonic timeline (src/queue/clock.ts), not epoch ms.
   */
  time: number;
  /** leased: the owner id; otherwise null. */
  owner: string | null;
  /** leased: the handler of this attempt has begun (or may have), so losing the lease costs an attempt. Absent means false. */
  started?: boolean;
}

export type Event =
  /**
   * `started`: the attempt begins with the claim (default false: it begins with `start`).
   * `judged`: the claimer found the task due (a replayed claim record): a scheduled task is taken
   * whatever this reader's clock says, so every reader rebuilds the same state.
   */
  | { type: 'claim'; owner: string; lease_ms: number; started?: boolean; judged?: boolean }
  | { type: 'renew'; owner: string; fence: number; lease_ms: number }
  | { type: 'start'; owner: string; fence: number }
  | { type: 'complete'; owner: string; fence: number }
  | { type: 'release'; owner: string; fence: number }
  | { type: 'fail'; owner: string; fence: number; delay_ms: number }
  | { type: 'dead_letter'; owner: string; fence: number }
  | { type: 'reclaim'; fence: number }
  | { type: 'retry' }
  | { type: 'rerun' }
  | { type: 'cancel' }
  /**
   * A dead letter an operator gives up on: it leaves the dead letters for `cancelled`, the terminal
   * state of work that will not run (an enqueue with rerun_completed runs it again, like any
   * cancelled task). Its attempts and errors are kept as history.
   */
  | { type: 'discard' };

export type Rejection = 'not_claimable' | 'lease_lost' | 'not_dead' | 'not_completed' | 'not_cancellable';

export type Outcome = { ok: true; status: Status } | { ok: false; reason: Rejection };

export function newStatus(max_attempts: number, now: number): Status {
  return { state: 'ready', attempt_count: 0, max_attempts, fence: 0, time: now, owner: null };
}

export function isClaimable(s: Status, now: number): boolean {
  return s.state === 'ready' || (s.state === 'scheduled' && s.time <= now);
}

function holds(s: Status, owner: string, fence: number): boolean {
  return s.state === 'leased' && s.fence === fence && s.owner === owner;
}

/** Counts a failed attempt and decides between another try (at `retryAt`) and the dead letters. */
function failed(s: Status, now: number, retryAt: number, exhaustNow: boolean): Status {
  const attempt_count = s.attempt_count + 1;
  if (exhaustNow || attempt_count >= s.max_attempts) {
    return { ...s, state: 'dead', attempt_count, time: now, owner: null };
  }
  return retryAt <= now
    ? { ...s, state: 'ready', attempt_count, time: now, owner: null }
    : { ...s, state: 'scheduled', attempt_count, time: retryAt, owner: null };
}

/**
 * Why `transition` would refuse `e` in status `s`, or null when it would apply it: the same guard,
 * without building the next status (a completion that only asks whether it may, then writes a
 * record, builds nothing).
 */
export function refusal(s: Status, e: Event, now: number): Rejection | null {
  switch (e.type) {
    case 'claim':
      return isClaimable(s, now) || (e.judged === true && s.state === 'scheduled') ? null : 'not_claimable';
    case 'start':
    case 'renew':
    case 'complete':
    case 'release':
    case 'fail':
    case 'dead_letter':
      return holds(s, e.owner, e.fence) ? null : 'lease_lost';
    case 'reclaim':
      return s.state === 'leased' && s.fence === e.fence ? null : 'lease_lost';
    case 'retry':
    case 'discard':
      return s.state === 'dead' ? null : 'not_dead';
    case 'rerun':
      return s.state === 'completed' || s.state === 'cancelled' ? null : 'not_completed';
    case 'cancel':
      // A leased task is its holder's: it finishes or loses it, and a later cancel catches it.
      return s.state === 'ready' || s.state === 'scheduled' ? null : 'not_cancellable';
  }
}

export function transition(s: Status, e: Event, now: number): Outcome {
  const no = refusal(s, e, now);
  if (no !== null) return { ok: false, reason: no };
  switch (e.type) {
    case 'claim':
      return { ok: true, status: { ...s, state: 'leased', fence: s.fence + 1, time: now + e.lease_ms, owner: e.owner, started: e.started === true } };
    case 'start':
      return { ok: true, status: { ...s, started: true } };
    case 'renew':
      return { ok: true, status: { ...s, time: Math.max(s.time, now + e.lease_ms) } };
    case 'complete':
      return { ok: true, status: { ...s, state: 'completed', time: now, owner: null } };
    case 'release':
      return { ok: true, status: { ...s, state: 'ready', time: now, owner: null } };
    case 'fail':
      return { ok: true, status: failed(s, now, now + e.delay_ms, false) };
    case 'dead_letter':
      return { ok: true, status: failed(s, now, now, true) };
    case 'reclaim':
      return { ok: true, status: failed(s, now, now, false) };
    case 'retry':
    case 'rerun':
      return { ok: true, status: { ...s, state: 'ready', attempt_count: 0, time: now, owner: null } };
    case 'discard':
    case 'cancel':
      return { ok: true, status: { ...s, state: 'cancelled', time: now, owner: null } };
  }
}

/** A lease reclaimed before its handler started costs no attempt: it is released on its owner's behalf. */
export function reclaimEvent(s: Status): Event {
  return s.started ? { type: 'reclaim', fence: s.fence } : { type: 'release', owner: s.owner ?? '', fence: s.fence };
}

