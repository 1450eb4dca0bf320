import { transition, type Event, type Status } from '../state.js';
import type { Owner, QueueStats, TaskState } from '../types.js';
import type { LogRecord, Pair } from './records.js';
import { DueHeap, IdIndex, SlotFifo, SlotTable, STATES, S_COMPLETED, S_DEAD, S_LEASED, S_READY, S_SCHEDULED, UNPLACED } from './slots.js';

export interface Effects {
  /** Slots that entered the dead letters. */
  dead: number[];
  /** Slots that left the dead letters. */
  undead: number[];
}

/**
 * The queue's state rebuilt from its log: the same records, applied in the same order, give every
 * process the same state. A record whose expectation no longer holds (a claim of a task someone
 * else claimed first, a completion with a stale fence) is refused, never half-applied.
 */
export class IndexState {
  readonly slots = new SlotTable();
  readonly ids: IdIndex;
  readonly ready = new SlotFifo();
  readonly due = new DueHeap();
  readonly leased = new Set<number>();
  /** Lease expiries, soonest first: finding expired leases costs nothing while none has expired. */
  readonly expiries = new DueHeap();
  /** Leased tasks per owner (by owner index): only owners holding something are checked for liveness. */
  readonly leasesOf: number[] = [];
  readonly deadSlots = new Set<number>();
  readonly owners: Owner[] = [];
  private readonly ownerIdx = new Map<string, number>();
  readonly counts = [0, 0, 0, 0, 0];
  paused = false;
  completedDropped = 0;
  /** Failed attempts, arrivals in the dead letters, dead letters retried: carried across compactions. */
  totals = { failed: 0, dead_lettered: 0, retried: 0 };
  refused = 0;
  /** Bytes of the full records of tasks not completed: what a compaction would copy. */
  liveBytes = 0;
  effects: Effects | null = null;

  constructor(idOf: (slot: number) => string | null) {
    this.ids = new IdIndex(idOf);
  }

  ownerId(slot: number): string | null {
    const i = this.slots.owner[slot]!;
    return i >= 0 ? this.owners[i]!.id : null;
  }

  ownerOf(slot: number): Owner | null {
    const i = this.slots.owner[slot]!;
    return i >= 0 ? this.owners[i]! : null;
  }

  status(slot: number): Status {
    const t = this.slots;
    return {
      state: STATES[t.state[slot]!]!,
      attempt_count: t.attempts[slot]!,
      max_attempts: t.maxAttempts[slot]!,
      fence: t.fence[slot]!,
      time: t.time[slot]!,
      owner: this.ownerId(slot),
    };
  }

  stateOf(slot: number): TaskState {
    return STATES[this.slots.state[slot]!]!;
  }

  private internOwner(id: string, pid: number, host: string): number {
    let i = this.ownerIdx.get(id);
    if (i === undefined) {
      i = this.owners.length;
      this.owners.push({ id, pid, host });
      this.ownerIdx.set(id, i);
    }
    return i;
  }

  /** Applies one record read from (or about to be written to) the log at [offset, offset+length). */
  apply(r: LogRecord, offset: number, length: number): void {
    switch (r.t) {
      case 'head':
        this.completedDropped = r.completed_dropped;
        if (r.totals) this.totals = { ...r.totals };
        this.paused = r.paused;
        return;
      case 'enq':
        if (this.ids.get(r.task.id) >= 0) {
          this.refused++;
          return;
        }
        this.place(r.n, r.task.id, offset, length);
        this.setStatus(r.n, { state: 'ready', attempt_count: 0, max_attempts: r.task.max_attempts, fence: 0, time: r.at, owner: null }, -1);
        return;
      case 'claim': {
        const o = this.internOwner(r.o, r.pid, r.host);
        for (const [n, f] of r.l) {
          const out = this.event(n, { type: 'claim', owner: r.o, lease_ms: r.ms }, r.at);
          if (out && out.fence === f) this.setStatus(n, out, o);
          else this.refused++;
        }
        return;
      }
      case 'renew':
        return this.pairs(r.l, (n, f) => ({ type: 'renew', owner: r.o, fence: f, lease_ms: r.ms }), r.at);
      case 'done':
        return this.pairs(r.l, (n, f) => ({ type: 'complete', owner: r.o, fence: f }), r.at);
      case 'rel':
        return this.pairs(r.l, (n, f) => ({ type: 'release', owner: r.o, fence: f }), r.at);
      case 'fail':
        return this.single(r.n, { type: 'fail', owner: r.o, fence: r.f, delay_ms: r.ms }, r.at, offset, length);
      case 'dead':
        return this.single(r.n, { type: 'dead_letter', owner: r.o, fence: r.f }, r.at, offset, length);
      case 'reclaim':
        return this.single(r.n, { type: 'reclaim', fence: r.f }, r.at, offset, length);
      case 'retry':
        return this.single(r.n, { type: 'retry' }, r.at, offset, length);
      case 'rerun':
        return this.single(r.n, { type: 'rerun' }, r.at, offset, length);
      case 'pause':
      case 'resume':
        this.paused = r.t === 'pause';
        return;
      case 'snap': {
        this.place(r.n, r.task.id, offset, length);
        const o = r.o !== undefined ? this.internOwner(r.o, r.pid ?? 0, r.host ?? '') : -1;
        this.setStatus(
          r.n,
          { state: r.s, attempt_count: r.task.attempt_count, max_attempts: r.task.max_attempts, fence: r.f, time: r.tm, owner: r.o ?? null },
          o,
        );
        return;
      }
      case 'kept':
        this.place(r.n, r.id, offset, length);
        this.setStatus(r.n, { state: 'completed', attempt_count: 0, max_attempts: 0, fence: r.f, time: r.tm, owner: null }, -1);
        return;
    }
  }

  private place(n: number, id: string, offset: number, length: number): void {
    this.slots.ensure(n);
    this.slots.state[n] = UNPLACED; // not yet counted in any state
    this.slots.recOff[n] = offset;
    this.slots.recLen[n] = length;
    this.liveBytes += length;
    this.ids.set(id, n);
  }

  private event(n: number, e: Event, at: number): Status | null {
    if (!(n >= 0 && n < this.slots.count) || this.slots.state[n] === UNPLACED) return null;
    const out = transition(this.status(n), e, at);
    return out.ok ? out.status : null;
  }

  private pairs(l: Pair[], make: (n: number, f: number) => Event, at: number): void {
    for (const [n, f] of l) {
      const out = this.event(n, make(n, f), at);
      if (out) this.setStatus(n, out, this.slots.owner[n]!);
      else this.refused++;
    }
  }

  private single(n: number, e: Event, at: number, offset: number, length: number): void {
    const out = this.event(n, e, at);
    if (!out) {
      this.refused++;
      return;
    }
    if (e.type === 'fail' || e.type === 'dead_letter' || e.type === 'reclaim') this.totals.failed++;
    if (e.type === 'retry') this.totals.retried++;
    // The record carries the task as it now stands (attempt counted, error kept).
    if (this.slots.state[n] !== S_COMPLETED) this.liveBytes += length - this.slots.recLen[n]!;
    this.slots.recOff[n] = offset;
    this.slots.recLen[n] = length;
    this.setStatus(n, out, out.owner === null ? -1 : this.slots.owner[n]!);
  }

  private setStatus(n: number, s: Status, owner: number): void {
    const t = this.slots;
    const before = t.state[n]!;
    const after = STATES.indexOf(s.state);
    if (before !== UNPLACED) this.counts[before]!--;
    this.counts[after]!++;
    t.state[n] = after;
    t.attempts[n] = s.attempt_count;
    t.maxAttempts[n] = s.max_attempts;
    t.fence[n] = s.fence;
    t.time[n] = s.time;
    if (before === S_LEASED) {
      this.leased.delete(n);
      this.leasesOf[t.owner[n]!]!--;
    }
    t.owner[n] = after === S_LEASED ? owner : -1;
    if (after === S_LEASED) {
      this.leased.add(n);
      this.leasesOf[owner] = (this.leasesOf[owner] ?? 0) + 1;
      this.expiries.push(s.time, n);
    }
    if (after === S_READY && before !== S_READY) this.ready.push(n);
    if (after === S_SCHEDULED) this.due.push(s.time, n);
    if (after === S_COMPLETED && before !== S_COMPLETED) this.liveBytes -= t.recLen[n]!;
    if (after === S_DEAD && before !== S_DEAD) {
      if (before !== UNPLACED) this.totals.dead_lettered++;
      this.deadSlots.add(n);
      this.effects?.dead.push(n);
    } else if (before === S_DEAD && after !== S_DEAD) {
      this.deadSlots.delete(n);
      this.effects?.undead.push(n);
    }
  }

  /** Up to `max` claimable slots: due retries first, then ready tasks in order. Nothing is changed. */
  pickClaimable(now: number, max: number): number[] {
    const picked: number[] = [];
    const seen = new Set<number>();
    const t = this.slots;
    while (picked.length < max) {
      const top = this.due.top((time, s) => t.state[s] === S_SCHEDULED && t.time[s] === time);
      if (!top || top.time > now) break;
      this.due.pop();
      if (!seen.has(top.slot)) {
        seen.add(top.slot);
        picked.push(top.slot);
      }
    }
    while (picked.length < max) {
      const s = this.ready.peek((x) => t.state[x] === S_READY && !seen.has(x));
      if (s < 0) break;
      this.ready.shift();
      seen.add(s);
      picked.push(s);
    }
    return picked;
  }

  /** Leased slots whose lease expired by `now`, soonest first. */
  expiredLeases(now: number): number[] {
    const t = this.slots;
    const out: number[] = [];
    const valid = (time: number, s: number): boolean => t.state[s] === S_LEASED && t.time[s] === time;
    for (let top = this.expiries.top(valid); top && top.time <= now; top = this.expiries.top(valid)) {
      out.push(top.slot);
      this.expiries.pop();
    }
    // Popped entries that are still leased stay findable until the reclaim record lands.
    for (const s of out) this.expiries.push(t.time[s]!, s);
    return out;
  }

  stats(name: string, now: number, corrupt: number): QueueStats {
    const t = this.slots;
    const head = this.ready.peek((x) => t.state[x] === S_READY);
    const top = this.due.top((time, s) => t.state[s] === S_SCHEDULED && t.time[s] === time);
    let oldest = head >= 0 ? t.time[head]! : null;
    if (top && top.time <= now) oldest = Math.min(oldest ?? Infinity, top.time);
    return {
      queue: name,
      ready: this.counts[S_READY]!,
      scheduled: this.counts[S_SCHEDULED]!,
      leased: this.counts[S_LEASED]!,
      completed: this.counts[S_COMPLETED]! + this.completedDropped,
      dead: this.counts[S_DEAD]!,
      paused: this.paused,
      next_due_at: top ? top.time : null,
      oldest_ready_at: oldest,
      corrupt_records: corrupt,
      totals: { ...this.totals },
    };
  }
}
