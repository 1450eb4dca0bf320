import { UsageError } from '../guard/errors.js';
import { wallTime, type ClockReading, type QueueClock } from './clock.js';
import type { QueueOptions } from './options.js';
import { clockOf, DEFAULT_MAX_ATTEMPTS, queueFull } from './options.js';
import { ownerAlive } from './owner.js';
import { checkTaskId, deadLetterOf, newRecord, recordAfterCancel, recordAfterDiscard, recordAfterFailure, recordAfterRetry } from './record.js';
import { checkGroup } from './validate.js';
import { isClaimable, newStatus, reclaimEvent, transition, type Event, type Status } from './state.js';
import { leaseOf, reclaimError } from './lease.js';
import type {
  CancelOptions,
  ClaimOptions,
  ClaimedTask,
  DeadLetter,
  DiscardOptions,
  EnqueueResult,
  FailOutcome,
  Lease,
  NewTask,
  Owner,
  Queue,
  QueueStats,
  TaskError,
  TaskRecord,
  TaskState,
  EnqueueOptions,
  TaskView,
} from './types.js';

interface Entry {
  record: TaskRecord;
  status: Status;
  /** Enqueue order: breaks ties between retries due at the same time. */
  seq: number;
  /** The order in which tasks became ready: ready tasks are handed out first in, first out. */
  readySeq: number;
}

/** The in-memory backend: the reference for the conformance suite and for unit tests of the runner. */
export class MemoryQueue implements Queue {
  readonly name: string;
  private readonly entries = new Map<string, Entry>();
  private readonly owners = new Map<string, Owner>();
  /** Status times are on its monotonic timeline; records and errors carry its wall time. */
  private readonly clock: QueueClock;
  private readonly maxAttempts: number;
  private readonly alive: (o: Owner) => boolean;
  private paused = false;
  private readonly totals = { failed: 0, dead_lettered: 0, retried: 0 };
  private seq = 0;
  private readySeq = 0;

  constructor(private readonly opts: QueueOptions) {
    this.name = opts.name;
    this.clock = clockOf(opts);
    this.maxAttempts = opts.max_attempts ?? DEFAULT_MAX_ATTEMPTS;
    this.alive = opts.ownerAlive ?? ownerAlive;
  }

  async enqueue(tasks: readonly NewTask[], opts: EnqueueOptions = {}): Promise<EnqueueResult> {
    for (const t of tasks) {
      const bad = checkTaskId(t.id) ?? (t.group !== undefined ? checkGroup(t.group) : null);
      if (bad) throw new UsageError(bad);
    }
    const r = this.clock.read();
    const max = this.opts.max_queue_size ?? 0;
    if (max > 0) {
      const open = [...this.entries.values()].filter((e) => ['ready', 'scheduled', 'leased'].includes(e.status.state)).length;
      const fresh = new Set(tasks.filter((t) => !this.entries.has(t.id)).map((t) => t.id)).size;
      if (open + fresh > max) throw queueFull(this.name, open, fresh, max);
    }
    const result: EnqueueResult = { added: [], existing: [], rerun: [] };
    for (const t of tasks) {
      const known = this.entries.get(t.id);
      if (known) {
        const over = known.status.state === 'completed' || known.status.state === 'cancelled';
        if (opts.rerun_completed && over && this.apply(known, { type: 'rerun' }, r)) {
          known.record = recordAfterRetry(known.record, opts.by ?? 'rerun', r.wall);
          result.rerun.push(t.id);
        } else result.existing.push(t.id);
        continue;
      }
      const record = newRecord(this.name, t, this.maxAttempts, r.wall);
      this.entries.set(t.id, { record, status: newStatus(record.max_attempts, r.mono), seq: this.seq++, readySeq: this.readySeq++ });
      result.added.push(t.id);
    }
    return result;
  }

  async claim(opts: ClaimOptions): Promise<ClaimedTask[]> {
    if (this.paused || opts.max <= 0) return [];
    await this.reclaimExpired();
    const r = this.clock.read();
    const now = r.mono;
    this.owners.set(opts.owner.id, opts.owner);
    // Due retries first (they have waited longest), then ready tasks in the order they became ready (readySeq).
    const only = opts.only;
    const pool = only && only.size < this.entries.size ? [...only].map((id) => this.entries.get(id)).filter((e): e is Entry => e !== undefined) : [...this.entries.values()];
    const candidates = pool
      .filter((e) => isClaimable(e.status, now) && (!only || only.has(e.record.id)))
      .sort((a, b) => rank(a) - rank(b) || (rank(a) === 0 ? a.status.time - b.status.time || a.seq - b.seq : a.readySeq - b.readySeq))
      .slice(0, opts.max);
    return candidates.map((e) => {
      this.apply(e, { type: 'claim', owner: opts.owner.id, lease_ms: opts.lease_ms, started: opts.defer_start !== true }, r);
      return { task: structuredClone(e.record), lease: leaseOf(e.status, r) };
    });
  }

  async start(id: string, lease: Lease): Promise<boolean> {
    return this.applyById(id, { type: 'start', owner: lease.owner, fence: lease.fence });
  }

  async renewLease(id: string, lease: Lease, lease_ms: number): Promise<boolean> {
    return this.applyById(id, { type: 'renew', owner: lease.owner, fence: lease.fence, lease_ms });
  }

  async complete(id: string, lease: Lease): Promise<boolean> {
    return this.applyById(id, { type: 'complete', owner: lease.owner, fence: lease.fence });
  }

  async release(id: string, lease: Lease): Promise<boolean> {
    return this.applyById(id, { type: 'release', owner: lease.owner, fence: lease.fence });
  }

  async fail(id: string, lease: Lease, error: Omit<TaskError, 'attempt'>, delay_ms: number): Promise<FailOutcome> {
    const ok = this.applyById(id, { type: 'fail', owner: lease.owner, fence: lease.fence, delay_ms }, error);
    if (!ok) return 'lease_lost';
    return this.entries.get(id)!.status.state === 'dead' ? 'dead' : 'scheduled';
  }

  async deadLetter(id: string, lease: Lease, error: Omit<TaskError, 'attempt'>): Promise<boolean> {
    return this.applyById(id, { type: 'dead_letter', owner: lease.owner, fence: lease.fence }, error);
  }

  async retry(opts: { ids?: readonly string[]; by: string }): Promise<string[]> {
    const r = this.clock.read();
    const targets = opts.ids
      ? opts.ids.map((id) => this.entries.get(id)).filter((e): e is Entry => !!e && e.status.state === 'dead')
      : [...this.entries.values()].filter((e) => e.status.state === 'dead');
    for (const e of targets) {
      this.apply(e, { type: 'retry' }, r);
      e.record = recordAfterRetry(e.record, opts.by, r.wall);
    }
    return targets.map((e) => e.record.id);
  }

  async cancel(opts: CancelOptions): Promise<string[]> {
    const bad = checkGroup(opts.group);
    if (bad) throw new UsageError(bad);
    const r = this.clock.read();
    const out: string[] = [];
    for (const e of [...this.entries.values()].sort((a, b) => a.seq - b.seq)) {
      if (e.record.group !== opts.group || opts.keep?.has(e.record.id)) continue;
      if (this.apply(e, { type: 'cancel' }, r)) {
        e.record = recordAfterCancel(e.record, opts.by, opts.reason, r.wall);
        out.push(e.record.id);
      }
    }
    return out;
  }

  async discard(opts: DiscardOptions): Promise<string[]> {
    const r = this.clock.read();
    const targets = opts.ids
      ? [...new Set(opts.ids)].map((id) => this.entries.get(id)).filter((e): e is Entry => e !== undefined)
      : [...this.entries.values()].sort((a, b) => a.seq - b.seq);
    const out: string[] = [];
    for (const e of targets) {
      if (!this.apply(e, { type: 'discard' }, r)) continue;
      e.record = recordAfterDiscard(e.record, opts.by, opts.reason, r.wall);
      out.push(e.record.id);
    }
    return out;
  }

  async nextDueAt(only?: ReadonlySet<string>): Promise<number | null> {
    let due: number | null = null;
    const pool = only ? [...only].map((id) => this.entries.get(id)) : this.entries.values();
    for (const e of pool) if (e && e.status.state === 'scheduled') due = Math.min(due ?? Infinity, e.status.time);
    return due === null ? null : wallTime(due, this.clock.read());
  }

  async pause(): Promise<void> {
    this.paused = true;
  }

  async resume(): Promise<void> {
    this.paused = false;
  }

  async stats(): Promise<QueueStats> {
    const r = this.clock.read();
    const now = r.mono;
    const s: QueueStats = {
      queue: this.name,
      ready: 0,
      scheduled: 0,
      leased: 0,
      completed: 0,
      dead: 0,
      cancelled: 0,
      paused: this.paused,
      next_due_at: null,
      oldest_ready_at: null,
      corrupt_records: 0,
      totals: { ...this.totals },
    };
    for (const { status } of this.entries.values()) {
      s[status.state]++;
      if (status.state === 'scheduled') s.next_due_at = Math.min(s.next_due_at ?? Infinity, status.time);
      if (status.state === 'ready' || (status.state === 'scheduled' && status.time <= now)) {
        s.oldest_ready_at = Math.min(s.oldest_ready_at ?? Infinity, status.time);
      }
    }
    // Measured on the monotonic clock, shown as wall-clock times.
    if (s.next_due_at !== null) s.next_due_at = wallTime(s.next_due_at, r);
    if (s.oldest_ready_at !== null) s.oldest_ready_at = wallTime(s.oldest_ready_at, r);
    return s;
  }

  async reclaimExpired(): Promise<string[]> {
    const r = this.clock.read();
    const now = r.mono;
    const out: string[] = [];
    for (const e of this.entries.values()) {
      const st = e.status;
      if (st.state !== 'leased') continue;
      const owner = st.owner ? this.owners.get(st.owner) : undefined;
      const gone = owner !== undefined && !this.alive(owner);
      if (st.time > now && !gone) continue;
      const error = reclaimError(gone, owner, r.wall);
      this.apply(e, reclaimEvent(st), r, error);
      out.push(e.record.id);
    }
    return out;
  }

  async states(ids: readonly string[]): Promise<(TaskState | null)[]> {
    return ids.map((id) => this.entries.get(id)?.status.state ?? null);
  }

  async listDead(): Promise<DeadLetter[]> {
    return [...this.entries.values()]
      .filter((e) => e.status.state === 'dead')
      .map((e) => deadLetterOf(e.record, wallTime(e.status.time, this.clock.read())));
  }

  async getTask(id: string): Promise<TaskView | null> {
    const e = this.entries.get(id);
    return e ? { state: e.status.state, task: structuredClone(e.record) } : null;
  }

  async getDead(id: string): Promise<DeadLetter | null> {
    const e = this.entries.get(id);
    return e && e.status.state === 'dead' ? deadLetterOf(e.record, wallTime(e.status.time, this.clock.read())) : null;
  }

  async close(): Promise<void> {}

  private applyById(id: string, event: Event, error?: Omit<TaskError, 'attempt'>): boolean {
    const e = this.entries.get(id);
    return e ? this.apply(e, event, this.clock.read(), error) : false;
  }

  /** Applies `event` at reading `r`: the state machine on the monotonic clock, the record's times on the wall clock. */
  private apply(e: Entry, event: Event, r: ClockReading, error?: Omit<TaskError, 'attempt'>): boolean {
    const out = transition(e.status, event, r.mono);
    if (!out.ok) return false;
    if (event.type === 'fail' || event.type === 'dead_letter' || event.type === 'reclaim') this.totals.failed++;
    if (event.type === 'retry') this.totals.retried++;
    if (out.status.state === 'dead' && e.status.state !== 'dead') this.totals.dead_lettered++;
    if (error && out.status.attempt_count > e.status.attempt_count) e.record = recordAfterFailure(e.record, error, r.wall);
    if (out.status.state === 'ready' && e.status.state !== 'ready') e.readySeq = this.readySeq++;
    e.status = out.status;
    return true;
  }
}

function rank(e: Entry): number {
  return e.status.state === 'scheduled' ? 0 : 1;
}

// Shared with the durable backends (which must not import this test double): src/queue/lease.ts.
export { leaseOf, reclaimError };
