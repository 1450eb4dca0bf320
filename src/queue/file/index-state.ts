import { localTime, wallTime, type ClockReading } from '../clock.js';
import { transition, type Event, type Status } from '../state.js';
import type { NewTask, Owner, QueueStats, TaskState } from '../types.js';
import { isShortFail, type LogRecord, type Pair, type ShortFail } from './records.js';
import { impossibleValue } from './impossible.js';
import { DueHeap, IdIndex, NO_ENTRY, SlotFifo, SlotTable, STATES, S_CANCELLED, S_COMPLETED, S_DEAD, S_LEASED, S_READY, S_SCHEDULED, UNPLACED } from './slots.js';

/**
 * A record that cannot occur in a log written under the queue's lock, or totals that do not add
 * up: the first one a replay met. Unlike a refused record (a stale fence, a claim someone else won,
 * which any log may hold), it means two writers appended at once or the file was edited, and the
 * state rebuilt from it would silently drop a task.
 */
export interface ReplayConflict {
  /** Byte offset of the record's line in the log (for `counts`, the end of the replay). */
  offset: number;
  /** The record's type (`enq`, `claim`, …), or `counts` when the totals do not add up. */
  record: string;
  /** The slot the record names, when it names one. */
  slot: number | null;
  /** The task ids involved: the record's, and the one already in the slot. */
  ids: string[];
  /** What cannot happen, in words. */
  reason: string;
}

/**
 * Thrown by `IndexState.apply`, in a salvage (`lenient`), for a record holding values no writer
 * writes (impossible.ts): the salvage keeps the task another way or skips the record.
 */
export class ImpossibleRecordError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'ImpossibleRecordError';
  }
}

/** Thrown by `IndexState.apply` for a record that cannot happen (see ReplayConflict); the state is left as it was. */
export class ReplayConflictError extends Error {
  constructor(readonly conflict: ReplayConflict) {
    super(`replay conflict at byte ${conflict.offset}: ${conflict.reason}`);
    this.name = 'ReplayConflictError';
  }
}

/** A claim's `only`, as slots of one loaded log (see ClaimOptions.only). */
export interface Scope {
  /** The slots of the ids found, in the order of the ids. */
  slots: number[];
  has(slot: number): boolean;
}

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
 *
 * A record that no writer holding the lock can produce (a task placed in a slot that is taken or
 * that is not the next one, an id enqueued twice, a slot that does not exist) is not refused but
 * a conflict: `apply` throws ReplayConflictError and `conflict` keeps the first one, because
 * applying or skipping it would lose an acknowledged task without a word. Each check is O(1).
 */
export class IndexState {
  readonly slots = new SlotTable();
  readonly ids: IdIndex;
  /** Ready tasks in the order they became ready (entries a task left behind are skipped: liveReady). */
  readonly ready = new SlotFifo();
  /** Ready snaps of a compacted log not yet queued: [their `ro`, slot] (see `settle`). */
  private pendingReady: [number, number][] = [];
  /** The `ro` of the snap being applied; null: the task joins the ready queue at once. */
  private snapOrder: number | null = null;
  readonly due = new DueHeap();
  readonly leased = new Set<number>();
  /** Lease expiries, soonest first: finding expired leases costs nothing while none has expired. */
  readonly expiries = new DueHeap();
  /** Leased tasks per owner (by owner index): only owners holding something are checked for liveness. */
  readonly leasesOf: number[] = [];
  readonly deadSlots = new Set<number>();
  readonly owners: Owner[] = [];
  /** The boot each owner's claim was written on (null: unknown), by owner index. */
  readonly ownerBoots: (string | null)[] = [];
  private readonly ownerIdx = new Map<string, number>();
  /**
   * The reader's clocks, as of this replay step or round: record times are placed on its
   * monotonic timeline (src/queue/clock.ts). Set by LoadedLog before each read and each round.
   */
  me: ClockReading = { wall: 0, mono: 0, boot: null };
  /** The boot the `m` of the records being applied count from (the latest `clk` record); null: none yet. */
  logBoot: string | null = null;
  /**
   * Salvage mode: a record holding impossible values throws ImpossibleRecordError instead of
   * failing the replay, and one that breaks a rule of the state (a fence going backwards, a start
   * of a lease never granted) is refused like a stale one.
   */
  lenient = false;
  /** Task groups seen, interned: SlotTable.group holds an index into this. */
  readonly groups: string[] = [];
  private readonly groupIdx = new Map<string, number>();
  /** Tasks by state, indexed like STATES. */
  readonly counts = [0, 0, 0, 0, 0, 0];
  paused = false;
  completedDropped = 0;
  /** Cancelled tasks a compaction dropped past retention (counted in stats like completed ones). */
  cancelledDropped = 0;
  /** Failed attempts, arrivals in the dead letters, dead letters retried: carried across compactions. */
  totals = { failed: 0, dead_lettered: 0, retried: 0 };
  refused = 0;
  /** The first record that cannot happen under the lock; once set, nothing more is applied. */
  conflict: ReplayConflict | null = null;
  /** Slots holding a task (the others were passed over: their record failed its checksum). */
  placed = 0;
  /**
   * Slots that may be passed over: one per line that failed its checksum. A rotted `enq` line
   * leaves its slot empty and the next `enq` one further on; that gap is explained, any other is not.
   */
  private gapAllowance = 0;
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
      started: t.started[slot] === 1,
    };
  }

  stateOf(slot: number): TaskState {
    return STATES[this.slots.state[slot]!]!;
  }

  /** The index of a group in `groups`, -1 when no task has it. */
  groupIndex(group: string): number {
    return this.groupIdx.get(group) ?? -1;
  }

  private internGroup(group: unknown): number {
    if (typeof group !== 'string') return -1;
    let i = this.groupIdx.get(group);
    if (i === undefined) {
      i = this.groups.length;
      this.groups.push(group);
      this.groupIdx.set(group, i);
    }
    return i;
  }

  private internOwner(id: string, pid: number, host: string, boot: string | null): number {
    let i = this.ownerIdx.get(id);
    if (i === undefined) {
      i = this.owners.length;
      this.owners.push({ id, pid, host });
      this.ownerBoots.push(boot);
      this.ownerIdx.set(id, i);
    }
    return i;
  }

  /** A record's time on the reader's monotonic timeline (`at` wall ms, `m` monotonic ms on the log's current boot). */
  private local(at: number, m: number | undefined): number {
    return localTime(at, m, this.logBoot, this.me);
  }

  /** A local time as a wall-clock epoch ms, as of the reader's clocks. */
  wall(local: number): number {
    return wallTime(local, this.me);
  }

  /** Applies one record read from (or about to be written to) the log at [offset, offset+length). */
  apply(r: LogRecord, offset: number, length: number): void {
    if (this.conflict) throw new ReplayConflictError(this.conflict);
    // Ready snaps and `enqs` lines of a compaction wait to be queued in their ready order (`ro`) until the records after them.
    // (A snap of a task that is not ready, a `kept`, a `clk` or the `head` among them queues nothing.)
    if (
      this.pendingReady.length > 0 &&
      (r.t === 'snap' ? r.s === 'ready' && r.ro === undefined : r.t === 'enqs' || r.t === 'enq' ? r.ro === undefined : r.t !== 'kept' && r.t !== 'clk' && r.t !== 'head')
    ) {
      this.settle();
    }
    // Values no writer writes, in a record that passed its checksum: corrupt, not trusted.
    const bad = impossibleValue(r);
    if (bad !== null) {
      if (this.lenient) throw new ImpossibleRecordError(bad);
      const rec = r as { n?: unknown; task?: { id?: unknown }; id?: unknown };
      const id = typeof rec.task?.id === 'string' ? rec.task.id : typeof rec.id === 'string' ? rec.id : null;
      this.fail({ offset, record: String(r.t).slice(0, 40), slot: typeof rec.n === 'number' ? rec.n : null, ids: id === null ? [] : [id], reason: `impossible value: ${bad}` });
    }
    const at = 'at' in r ? this.local(r.at, r.m) : 0;
    switch (r.t) {
      case 'clk':
        this.logBoot = typeof r.b === 'string' ? r.b : null;
        return;
      case 'head':
        this.completedDropped = r.completed_dropped;
        this.cancelledDropped = typeof r.cancelled_dropped === 'number' ? r.cancelled_dropped : 0;
        if (r.totals) this.totals = { ...r.totals };
        this.paused = r.paused;
        return;
      case 'enq':
        // The writer enqueues only ids it does not know, always into the next slot.
        this.checkPlacement(r.t, r.n, r.task.id, offset);
        // `i`: a salvage placing one entry of an `enqs` line on its own.
        if (r.i !== undefined) this.place(r.t, r.n, r.task.id, offset, length, r.i, 0);
        else this.place(r.t, r.n, r.task.id, offset, length);
        this.slots.group[r.n] = this.internGroup(r.task.group);
        // `ro`: an entry of a compaction's `enqs` line that a salvage places on its own.
        this.placeReady(r.n, r.task.max_attempts, at, typeof r.ro === 'number' ? r.ro : null);
        return;
      case 'enqs': {
        // Entry i is slot n + i, each placed as its own `enq` would be; each accounts for its share of the line.
        // A compaction's line (`ro`) queues entry i at ready order ro + i, with the ready snaps.
        const l = r.l;
        const share = Math.ceil(length / l.length);
        const ro = typeof r.ro === 'number' ? r.ro : null;
        this.ids.reserve(this.ids.size + l.length);
        for (let i = 0; i < l.length; i++) {
          const e = l[i]!;
          this.placeEntry(r.n, i, e[0], e[3], e[2] ?? r.x, at, ro === null ? null : ro + i, offset, length, share);
        }
        return;
      }
      case 'claim': {
        const o = this.internOwner(r.o, r.pid, r.host, r.m !== undefined ? this.logBoot : null);
        for (const [n] of r.l) this.checkSlot(r.t, n, offset);
        for (const [n, f] of r.l) {
          // The claimer judged the task due: replay does not ask this reader's clock again.
          const out = this.event(n, { type: 'claim', owner: r.o, lease_ms: r.ms, started: r.st === 1, judged: true }, at);
          if (out && out.fence === f) this.setStatus(n, out, o);
          else if (out && !this.lenient) {
            // The task was claimable: its claimer read its fence under the lock and wrote the next one.
            const was = this.slots.fence[n]!;
            this.fail({ offset, record: r.t, slot: n, ids: this.idsOf(n), reason: `impossible value: claim of slot ${n} gives fence ${f}, but its fence is ${was} (a claim gives ${was + 1}; a fence never goes backwards nor skips)` });
          } else this.refused++;
        }
        return;
      }
      case 'renew':
        return this.pairs(r.t, r.l, (n, f) => ({ type: 'renew', owner: r.o, fence: f, lease_ms: r.ms }), at, offset);
      case 'start':
        return this.pairs(r.t, r.l, (n, f) => ({ type: 'start', owner: r.o, fence: f }), at, offset);
      case 'done':
        return this.done(r.l, r.o, at, offset);
      case 'rel':
        return this.pairs(r.t, r.l, (n, f) => ({ type: 'release', owner: r.o, fence: f }), at, offset);
      case 'fail':
        this.checkSlot(r.t, r.n, offset);
        if (isShortFail(r)) return this.shortFail(r, at, offset, length);
        return this.single(r.n, { type: 'fail', owner: r.o, fence: r.f, delay_ms: r.ms }, at, offset, length);
      case 'dead':
        this.checkSlot(r.t, r.n, offset);
        return this.single(r.n, { type: 'dead_letter', owner: r.o, fence: r.f }, at, offset, length);
      case 'reclaim':
        this.checkSlot(r.t, r.n, offset);
        return this.single(r.n, { type: 'reclaim', fence: r.f }, at, offset, length);
      case 'retry':
        this.checkSlot(r.t, r.n, offset);
        return this.single(r.n, { type: 'retry' }, at, offset, length);
      case 'rerun':
        this.checkSlot(r.t, r.n, offset);
        return this.single(r.n, { type: 'rerun' }, at, offset, length);
      case 'cancel':
        this.checkSlot(r.t, r.n, offset);
        return this.single(r.n, { type: 'cancel' }, at, offset, length);
      case 'discard':
        this.checkSlot(r.t, r.n, offset);
        return this.single(r.n, { type: 'discard' }, at, offset, length);
      case 'pause':
      case 'resume':
        this.paused = r.t === 'pause';
        return;
      case 'snap': {
        // A compaction writes snaps into the next slot; `enqueue --rerun` of an id whose completed
        // task only a tombstone remembers writes one over that tombstone, with the same id.
        if (r.n < this.slots.count && r.n >= 0 && this.slots.state[r.n] === S_COMPLETED && this.ids.get(r.task.id) === r.n) {
          this.slots.setRecord(r.n, offset, length);
        } else {
          this.checkPlacement(r.t, r.n, r.task.id, offset);
          this.place(r.t, r.n, r.task.id, offset, length);
        }
        this.slots.group[r.n] = this.internGroup(r.task.group);
        const o = r.o !== undefined ? this.internOwner(r.o, r.pid ?? 0, r.host ?? '', typeof r.ob === 'string' ? r.ob : null) : -1;
        this.snapOrder = typeof r.ro === 'number' ? r.ro : null;
        this.setStatus(
          r.n,
          { state: r.s, attempt_count: r.task.attempt_count, max_attempts: r.task.max_attempts, fence: r.f, time: this.local(r.tm, r.mt), owner: r.o ?? null, started: r.st === 1 },
          o,
        );
        this.snapOrder = null;
        return;
      }
      case 'kept':
        this.checkPlacement(r.t, r.n, r.id, offset);
        this.place(r.t, r.n, r.id, offset, length);
        this.slots.group[r.n] = -1;
        this.setStatus(r.n, { state: 'completed', attempt_count: 0, max_attempts: 0, fence: r.f, time: this.local(r.tm, r.mt), owner: null }, -1);
        return;
    }
  }

  /**
   * An `enqs` line of fresh tasks this process encoded from them (Round.emitFresh; `at`, `m`, `n`,
   * `x` its fields, entry k the task `tasks[picks[k]]`), applied from the tasks: what `apply` does
   * with the line's record, without building it. The caller checked that the record has no
   * impossible value (`freshPossible`).
   */
  applyFresh(at: number, m: number | undefined, n: number, x: number, tasks: readonly NewTask[], picks: Int32Array, count: number, offset: number, length: number): void {
    if (this.conflict) throw new ReplayConflictError(this.conflict);
    if (this.pendingReady.length > 0) this.settle();
    const local = this.local(at, m);
    const share = Math.ceil(length / count);
    this.ids.reserve(this.ids.size + count);
    for (let k = 0; k < count; k++) {
      const t = tasks[picks[k]!]!;
      this.placeEntry(n, k, t.id, t.group, t.max_attempts ?? x, local, null, offset, length, share);
    }
  }

  /**
   * Entry `k` of an `enqs` line at [offset, offset+length) whose first slot is `n`: placed as its
   * own `enq` would be, accounting for `share` of the line; ready at local time `at` (in ready
   * order `ro` for a compaction's line).
   */
  private placeEntry(n: number, k: number, id: string, group: string | undefined, maxAttempts: number, at: number, ro: number | null, offset: number, length: number, share: number): void {
    const slot = n + k;
    this.checkPlacement('enqs', slot, id, offset);
    this.place('enqs', slot, id, offset, length, k, share);
    this.slots.group[slot] = group === undefined ? -1 : this.internGroup(group);
    this.placeReady(slot, maxAttempts, at, ro);
  }

  /** Room for `count` more tasks in the slot table and the id index, grown once (a bulk enqueue's batch). */
  reserveFresh(count: number): void {
    this.slots.reserve(this.slots.count + count);
    this.ids.reserve(this.ids.size + count);
  }

  /** A line failed its checksum: one more slot may be passed over (see `gapAllowance`). */
  corruptLine(): void {
    this.gapAllowance++;
  }

  /**
   * A task can be placed only in the next slot, under an id not yet known: the writer numbers
   * slots by its replay of the whole log and enqueues only ids it does not know. Anything else
   * is a second writer's record (or an edit). O(1): one comparison here, and the id's lookup in
   * `place`, which indexes it in the same walk.
   */
  private checkPlacement(t: string, n: number, id: string, offset: number): void {
    const count = this.slots.count;
    if (n !== count) {
      if (Number.isInteger(n) && n > count && n - count <= this.gapAllowance) {
        // Slots whose `enq` lines failed their checksum: passed over, and explained by them.
        this.gapAllowance -= n - count;
      } else if (Number.isInteger(n) && n >= 0 && n < count && this.slots.state[n] !== UNPLACED) {
        const there = this.ids.idOf(n);
        this.fail({ offset, record: t, slot: n, ids: there === null ? [id] : [id, there], reason: `task ${id} placed in slot ${n}, which already holds ${there ?? 'a task'} (the next free slot was ${count})` });
      } else {
        this.fail({ offset, record: t, slot: n, ids: [id], reason: `task ${id} placed in slot ${n}, but the next slot was ${count}` });
      }
    }
  }

  /**
   * A record may act only on a slot that exists. One beyond the end is explained only by `enq`
   * lines that failed their checksum (then the record is refused like a stale one); a slot passed
   * over that way exists but is empty, and `event` refuses records on it.
   */
  private checkSlot(t: string, n: number, offset: number): void {
    if (typeof n !== 'number') return; // a malformed record: refused below, as before
    if (n < this.slots.count && n >= 0 && Number.isInteger(n)) return;
    if (Number.isInteger(n) && n >= this.slots.count && n < this.slots.count + this.gapAllowance) return;
    this.fail({ offset, record: t, slot: n, ids: [], reason: `${t} names slot ${n}, but the log has only ${this.slots.count} slot(s)` });
  }

  /** The id of the task in a slot, as a list (empty when it does not read back). */
  private idsOf(n: number): string[] {
    const id = this.ids.idOf(n);
    return id === null ? [] : [id];
  }

  private fail(c: ReplayConflict): never {
    this.conflict = c;
    throw new ReplayConflictError(c);
  }

  /**
   * After a replay: every placed slot is counted in exactly one state and indexed under one id.
   * O(1); a mismatch means the log made the state contradict itself (it never should), and is a
   * conflict at `end`.
   */
  verify(end: number): void {
    if (this.conflict) throw new ReplayConflictError(this.conflict);
    this.settle();
    const c = this.counts;
    const sum = c[0]! + c[1]! + c[2]! + c[3]! + c[4]! + c[5]!;
    if (sum !== this.placed || this.ids.size !== this.placed) {
      this.fail({
        offset: end,
        record: 'counts',
        slot: null,
        ids: [],
        reason: `the counts do not add up: ${this.placed} task(s) placed, ${sum} counted by state, ${this.ids.size} indexed by id`,
      });
    }
  }

  /**
   * Puts a task back to ready whatever its state, attempts and fence kept: for `doctor --repair`,
   * on tasks whose history a conflict made ambiguous (delivery stays at least once).
   */
  makeReady(n: number, now: number): void {
    const t = this.slots;
    // A task ready already keeps its place in the ready order, and so its time.
    const time = t.state[n] === S_READY ? t.time[n]! : now;
    this.setStatus(n, { state: 'ready', attempt_count: t.attempts[n]!, max_attempts: t.maxAttempts[n]!, fence: t.fence[n]!, time, owner: null }, -1);
  }

  /**
   * Queues the ready snaps of a compacted log held back so far, in their ready order (`ro`; equal
   * ones in slot order). Replay does it before the first record after them; readers of the ready
   * order call it first.
   */
  settle(): void {
    if (this.pendingReady.length === 0) return;
    const p = this.pendingReady;
    this.pendingReady = [];
    p.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const t = this.slots;
    for (const [, n] of p) if (t.state[n] === S_READY) t.readyPos[n] = this.ready.push(n);
  }

  /** Is the ready queue's entry (`slot`, `pos`) the live one of a ready task (not one it left behind)? */
  private liveReady = (slot: number, pos: number): boolean => this.slots.state[slot] === S_READY && this.slots.readyPos[slot] === pos;

  /**
   * Visits the ready tasks in the order they became ready, which is the order they are handed out,
   * until `visit` returns false. Nothing is changed.
   */
  forEachReady(visit: (slot: number) => boolean): void {
    this.settle();
    this.ready.scan((s, pos) => !this.liveReady(s, pos) || visit(s));
  }

  /**
   * Puts task `id` in slot `n` (checkPlacement said it is the next one), unless the id is known
   * already: a conflict, nothing changed. `entry`, `weight`: see SlotTable.setRecord (an `enqs`
   * entry; a salvaged one accounts for no bytes).
   */
  private place(t: string, n: number, id: string, offset: number, length: number, entry = NO_ENTRY, weight = length): void {
    const s = this.ids.add(id, n);
    if (s >= 0) this.fail({ offset, record: t, slot: n, ids: [id], reason: `task ${id} placed in slot ${n}, but it is already in slot ${s}` });
    this.placed++;
    this.slots.ensure(n);
    this.slots.state[n] = UNPLACED; // not yet counted in any state
    this.slots.setRecord(n, offset, length, entry, weight);
    this.liveBytes += weight;
  }

  /**
   * A slot just placed becomes ready with no attempt: setStatus from UNPLACED to ready without a
   * Status object (a fresh task, in `enq` and `enqs` lines). `order`: its ready order (`ro`) in a
   * compaction's line, null to queue it at once.
   */
  private placeReady(n: number, maxAttempts: number, time: number, order: number | null): void {
    const t = this.slots;
    this.counts[S_READY]!++;
    t.state[n] = S_READY;
    t.attempts[n] = 0;
    t.maxAttempts[n] = maxAttempts;
    t.fence[n] = 0;
    t.time[n] = time;
    t.started[n] = 0;
    t.owner[n] = -1;
    if (order !== null) this.pendingReady.push([order, n]);
    else {
      if (this.pendingReady.length > 0) this.settle();
      t.readyPos[n] = this.ready.push(n);
    }
  }

  private event(n: number, e: Event, at: number): Status | null {
    if (!(n >= 0 && n < this.slots.count) || this.slots.state[n] === UNPLACED) return null;
    const out = transition(this.status(n), e, at);
    return out.ok ? out.status : null;
  }

  private pairs(t: string, l: Pair[], make: (n: number, f: number) => Event, at: number, offset: number): void {
    for (const [n] of l) this.checkSlot(t, n, offset);
    if (t === 'start' && !this.lenient) {
      for (const [n, f] of l) {
        // A start follows its claim: a fence no claim of the slot gave is a lease never granted.
        if (n < this.slots.count && this.slots.state[n] !== UNPLACED && f > this.slots.fence[n]!) {
          this.fail({ offset, record: t, slot: n, ids: this.idsOf(n), reason: `impossible value: start of slot ${n} with fence ${f}, but no claim gave it (its fence is ${this.slots.fence[n]!})` });
        }
      }
    }
    for (const [n, f] of l) {
      const out = this.event(n, make(n, f), at);
      if (out) this.setStatus(n, out, this.slots.owner[n]!);
      else this.refused++;
    }
  }

  /**
   * A `done` record: `pairs` with a `complete` event, without an Event, a Status and transition's
   * copy of it a task. A pair applies when its slot is leased to the record's owner under the
   * pair's fence (transition's guard, `holds`), and is refused otherwise.
   */
  private done(l: Pair[], owner: string, at: number, offset: number): void {
    for (const [n] of l) this.checkSlot('done', n, offset);
    const o = this.ownerIdx.get(owner) ?? -1;
    const t = this.slots;
    for (const [n, f] of l) {
      if (!(n >= 0 && n < t.count) || t.state[n] !== S_LEASED || t.fence[n] !== f || t.owner[n] !== o || o < 0) {
        this.refused++;
        continue;
      }
      // setStatus from leased to completed, attempts and fence kept.
      this.counts[S_LEASED]!--;
      this.counts[S_COMPLETED]!++;
      t.state[n] = S_COMPLETED;
      t.time[n] = at;
      t.started[n] = 0;
      this.leased.delete(n);
      this.leasesOf[o]!--;
      t.owner[n] = -1;
      this.liveBytes -= t.weight[n]!;
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
    if (this.slots.state[n] !== S_COMPLETED) this.liveBytes += length - this.slots.weight[n]!;
    this.slots.setRecord(n, offset, length);
    this.setStatus(n, out, out.owner === null ? -1 : this.slots.owner[n]!);
  }

  /**
   * A short `fail`: the same transition as a long one, but the slot's record stays where it is and
   * the `fail` is noted after it (the task reads back from both). Its attempt count must be the one
   * the transition gives, and a writer writes at most one short `fail` onto a record: anything else
   * is a record no writer wrote.
   */
  private shortFail(r: ShortFail, at: number, offset: number, length: number): void {
    const n = r.n;
    const out = this.event(n, { type: 'fail', owner: r.o, fence: r.f, delay_ms: r.ms }, at);
    if (!out) {
      this.refused++;
      return;
    }
    const t = this.slots;
    const why =
      out.attempt_count !== r.a
        ? `short fail of slot ${n} gives attempt ${r.a}, but the task had ${t.attempts[n]!} (a failure counts one more)`
        : t.failLen[n] !== 0
          ? `short fail of slot ${n} follows another one (a writer writes at most one after a task's record)`
          : !this.ids.holds(r.id, n)
            ? `short fail of slot ${n} names task ${r.id}, which is not in that slot`
            : null;
    if (why !== null) {
      if (this.lenient) throw new ImpossibleRecordError(why);
      this.fail({ offset, record: r.t, slot: n, ids: this.idsOf(n), reason: `impossible value: ${why}` });
    }
    this.totals.failed++;
    this.liveBytes += length;
    t.setFail(n, offset, length);
    this.setStatus(n, out, -1);
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
    t.started[n] = after === S_LEASED && s.started === true ? 1 : 0;
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
    if (after === S_READY && before !== S_READY) {
      // Tasks are handed out in the order they became ready (a compaction's ready snaps: their `ro`).
      if (this.snapOrder !== null) this.pendingReady.push([this.snapOrder, n]);
      else {
        // Behind any ready snaps still held back (a salvage making a task ready right after them).
        if (this.pendingReady.length > 0) this.settle();
        t.readyPos[n] = this.ready.push(n);
      }
    }
    if (after === S_SCHEDULED) this.due.push(s.time, n);
    if (after === S_COMPLETED && before !== S_COMPLETED) this.liveBytes -= t.weight[n]!;
    else if (before === S_COMPLETED && after !== S_COMPLETED) this.liveBytes += t.weight[n]!;
    if (after === S_DEAD && before !== S_DEAD) {
      if (before !== UNPLACED) this.totals.dead_lettered++;
      this.deadSlots.add(n);
      this.effects?.dead.push(n);
    } else if (before === S_DEAD && after !== S_DEAD) {
      this.deadSlots.delete(n);
      this.effects?.undead.push(n);
    }
  }

  /**
   * Up to `max` claimable slots: due retries first, then ready tasks in order. Nothing is changed.
   * With `scope`, only its slots: whichever is smaller is walked, the scope's slots (ready ones then
   * go in slot order) or the claimable tasks (skipping the others, which stay where they are).
   */
  pickClaimable(now: number, max: number, scope?: Scope): number[] {
    this.settle();
    if (scope) return scope.slots.length <= this.counts[S_READY]! + this.counts[S_SCHEDULED]! ? this.pickAmong(now, max, scope) : this.pickMembers(now, max, scope);
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
      const s = this.ready.peek((x, pos) => this.liveReady(x, pos) && !seen.has(x));
      if (s < 0) break;
      this.ready.shift();
      seen.add(s);
      picked.push(s);
    }
    return picked;
  }

  /** The scope's own slots, looked at one by one: O(scope) whatever the queue holds. */
  private pickAmong(now: number, max: number, scope: Scope): number[] {
    const t = this.slots;
    const due: number[] = [];
    // The `max` ready ones that became ready first, in that order (as without a scope), kept
    // sorted as the walk finds them: a stage's tasks mostly became ready in slot order, so once
    // `max` are held each further one is refused by one comparison, not sorted with the rest.
    const ready: number[] = [];
    const pos = t.readyPos;
    for (const n of scope.slots) {
      const st = t.state[n]!;
      if (st === S_SCHEDULED && t.time[n]! <= now) due.push(n);
      else if (st === S_READY) {
        const p = pos[n]!;
        if (ready.length === max && p >= pos[ready[max - 1]!]!) continue;
        let i = ready.length < max ? ready.push(n) - 1 : max - 1;
        while (i > 0 && pos[ready[i - 1]!]! > p) {
          ready[i] = ready[i - 1]!;
          i--;
        }
        ready[i] = n;
      }
    }
    due.sort((a, b) => t.time[a]! - t.time[b]! || a - b);
    if (due.length >= max) return due.slice(0, max);
    return [...due, ...ready].slice(0, max);
  }

  /** The claimable tasks in their usual order, skipping those outside the scope (left untouched). */
  private pickMembers(now: number, max: number, scope: Scope): number[] {
    const t = this.slots;
    const picked: number[] = [];
    const seen = new Set<number>();
    const skipped: { time: number; slot: number }[] = [];
    while (picked.length < max) {
      const top = this.due.top((time, s) => t.state[s] === S_SCHEDULED && t.time[s] === time);
      if (!top || top.time > now) break;
      this.due.pop();
      if (!scope.has(top.slot)) skipped.push(top);
      else if (!seen.has(top.slot)) {
        seen.add(top.slot);
        picked.push(top.slot);
      }
    }
    for (const s of skipped) this.due.push(s.time, s.slot);
    if (picked.length < max) {
      this.ready.scan((s, pos) => {
        if (this.liveReady(s, pos) && scope.has(s) && !seen.has(s)) {
          seen.add(s);
          picked.push(s);
        }
        return picked.length < max;
      });
    }
    return picked;
  }

  /** Slots of a group that `cancel` may take: ready or scheduled, in slot (enqueue) order. O(slots), no I/O. */
  cancellable(group: string): number[] {
    const g = this.groupIndex(group);
    const out: number[] = [];
    if (g < 0) return out;
    const t = this.slots;
    for (let n = 0; n < t.count; n++) {
      if (t.group[n] === g && (t.state[n] === S_READY || t.state[n] === S_SCHEDULED)) out.push(n);
    }
    return out;
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

  /** The queue's counts; `now` on the reader's monotonic timeline (`me.mono`), times out as wall-clock epoch ms. */
  stats(name: string, now: number, corrupt: number): QueueStats {
    const t = this.slots;
    this.settle();
    const head = this.ready.peek(this.liveReady);
    const top = this.due.top((time, s) => t.state[s] === S_SCHEDULED && t.time[s] === time);
    let oldest = head >= 0 ? t.time[head]! : null;
    if (top && top.time <= now) oldest = Math.min(oldest ?? Infinity, top.time);
    // Measured on the monotonic clock, shown as wall-clock times as of the reader's clocks.
    return {
      queue: name,
      ready: this.counts[S_READY]!,
      scheduled: this.counts[S_SCHEDULED]!,
      leased: this.counts[S_LEASED]!,
      completed: this.counts[S_COMPLETED]! + this.completedDropped,
      dead: this.counts[S_DEAD]!,
      cancelled: this.counts[S_CANCELLED]! + this.cancelledDropped,
      paused: this.paused,
      next_due_at: top ? this.wall(top.time) : null,
      oldest_ready_at: oldest === null ? null : this.wall(oldest),
      corrupt_records: corrupt,
      totals: { ...this.totals },
    };
  }
}
