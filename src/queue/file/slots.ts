import type { TaskState } from '../types.js';

export const STATES: readonly TaskState[] = ['ready', 'scheduled', 'leased', 'completed', 'dead', 'cancelled'];
export const S_READY = 0;
export const S_SCHEDULED = 1;
export const S_LEASED = 2;
export const S_COMPLETED = 3;
export const S_DEAD = 4;
export const S_CANCELLED = 5;
/** SlotTable.entry of a slot whose record is a whole line. */
export const NO_ENTRY = 0xffff;
/** A slot no valid record has placed a task in. */
export const UNPLACED = 255;

/**
 * Per-task state in typed arrays, indexed by slot (the task's ordinal in the log generation).
 * A million tasks cost about 65 bytes each here, instead of the ~250 a Map of objects would:
 * that is what keeps a worker under 150 MB with 1M tasks queued.
 */
export class SlotTable {
  count = 0;
  state = new Uint8Array(1024);
  attempts = new Uint16Array(1024);
  maxAttempts = new Uint16Array(1024);
  fence = new Uint32Array(1024);
  /** 1 while a leased task's handler has started (see Status.started). */
  started = new Uint8Array(1024);
  owner = new Int32Array(1024);
  /** The task's group, as an index into IndexState.groups; -1: none. */
  group = new Int32Array(1024);
  /** ready: since; scheduled: due; leased: expiry; completed/dead: when. */
  time = new Float64Array(1024);
  /** Where the task's latest full record sits in the log. */
  recOff = new Float64Array(1024);
  recLen = new Uint32Array(1024);
  /** Which entry of an `enqs` line the record is; NO_ENTRY: the line is the record. */
  entry = new Uint16Array(1024);
  /** The bytes of the log the record accounts for (the compaction trigger's live bytes): its line, or its share of an `enqs` line; with a short `fail`'s line. */
  weight = new Uint32Array(1024);
  /** Where a short `fail` after the record sits (failLen 0: none): the task is the record with that failure counted. */
  failOff = new Float64Array(1024);
  failLen = new Uint32Array(1024);
  /** A ready task's place in the ready queue (SlotFifo.push): the order tasks became ready, which is the order they are handed out. */
  readyPos = new Float64Array(1024);

  /** The slot's record is the line at [offset, offset+length), or entry `entry` of it, accounting for `weight` bytes; no short `fail` after it. */
  setRecord(n: number, offset: number, length: number, entry = NO_ENTRY, weight = length): void {
    this.recOff[n] = offset;
    this.recLen[n] = length;
    this.entry[n] = entry;
    this.weight[n] = weight;
    this.failLen[n] = 0;
  }

  /** A short `fail` at [offset, offset+length) follows the slot's record (which stays where it is). */
  setFail(n: number, offset: number, length: number): void {
    this.failOff[n] = offset;
    this.failLen[n] = length;
    this.weight[n] = this.weight[n]! + length;
  }

  add(): number {
    this.ensure(this.count);
    return this.count - 1;
  }

  /**
   * Room for `n` slots at once: a big log loads without doubling (and briefly holding) every
   * array, and a bulk enqueue grows them once for its batch; at least doubled when they grow, so
   * batch after batch still costs amortized constant time a slot.
   */
  reserve(n: number): void {
    if (n > this.state.length) this.grow(Math.max(n, this.state.length * 2));
  }

  /**
   * Makes room for slot `n` and counts it; slots between the old end and `n` stay unplaced. Replay
   * lets `n` pass the end only by as many slots as there were lines that failed their checksum.
   */
  ensure(n: number): void {
    while (n >= this.state.length) this.grow(this.state.length * 2);
    // Slots skipped over (their record was corrupt) stay unplaced: no record may act on them.
    if (n >= this.count) {
      this.state.fill(UNPLACED, this.count, n + 1);
      this.count = n + 1;
    }
  }

  private grow(size: number): void {
    const g = <T extends Uint8Array | Uint16Array | Uint32Array | Int32Array | Float64Array>(a: T): T => {
      const b = new (a.constructor as new (n: number) => T)(size);
      b.set(a);
      return b;
    };
    this.state = g(this.state);
    this.attempts = g(this.attempts);
    this.maxAttempts = g(this.maxAttempts);
    this.fence = g(this.fence);
    this.started = g(this.started);
    this.owner = g(this.owner);
    this.group = g(this.group);
    this.time = g(this.time);
    this.recOff = g(this.recOff);
    this.recLen = g(this.recLen);
    this.entry = g(this.entry);
    this.weight = g(this.weight);
    this.failOff = g(this.failOff);
    this.failLen = g(this.failLen);
    this.readyPos = g(this.readyPos);
  }
}

/**
 * The fingerprint `hash` computed last: two module-level int32s (small integers to V8, where a
 * uint32 above 2^31 was a heap number allocated at each store), so a lookup allocates nothing.
 */
let fpA = 0;
let fpB = 0;

/** Two independent 32-bit string hashes: a 64-bit fingerprint of a task id, left in fpA and fpB. */
function hash(id: string): void {
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  fpA = a | 0;
  fpB = b | 0;
}

/**
 * id → slot, open addressing over fingerprints. Ids themselves stay on disk: a fingerprint match is
 * confirmed by `idOf(slot)`, which reads the record (only duplicates and astronomically rare
 * collisions pay that read).
 */
export class IdIndex {
  private slots = new Int32Array(2048);
  private fa = new Int32Array(2048);
  private fb = new Int32Array(2048);
  private entries = 0;

  /** `idOf(slot)`: the id of the task in a slot, read back from its record (null when it does not read back). */
  constructor(readonly idOf: (slot: number) => string | null) {}

  /** How many ids are indexed: one per placed slot (replay checks that it adds up). */
  get size(): number {
    return this.entries;
  }

  /** Room for `n` ids without rehashing. */
  reserve(n: number): void {
    let size = this.slots.length;
    while (n * 4 > size * 3) size *= 2;
    if (size > this.slots.length) this.rehash(size);
  }

  get(id: string): number {
    hash(id);
    return this.find(id, fpA, fpB);
  }

  /**
   * `get` for a bulk enqueue that gathers fresh ids in `batch` (not indexed until their line is
   * applied): the id's slot when indexed; -2 when the batch holds it already; else -1, and the
   * batch notes it as `tasks[pick]`. One hash for both lookups.
   */
  getFresh(id: string, batch: FreshBatch, pick: number): number {
    hash(id);
    const a = fpA;
    const b = fpB;
    const s = this.find(id, a, b);
    if (s >= 0) return s;
    return batch.note(id, a, b, pick) ? -1 : -2;
  }

  private find(id: string, a: number, b: number): number {
    const mask = this.slots.length - 1;
    for (let i = a & mask; ; i = (i + 1) & mask) {
      const s = this.slots[i]!;
      if (s === 0) return -1;
      if (this.fa[i] === a && this.fb[i] === b && this.idOf(s - 1) === id) return s - 1;
    }
  }

  /**
   * Is `slot` indexed under `id`'s fingerprint? No record is read back: a check that a record
   * naming both agrees with the index, where a false match needs a 64-bit fingerprint collision.
   */
  holds(id: string, slot: number): boolean {
    hash(id);
    const a = fpA;
    const b = fpB;
    const mask = this.slots.length - 1;
    for (let i = a & mask; ; i = (i + 1) & mask) {
      const s = this.slots[i]!;
      if (s === 0) return false;
      if (s === slot + 1 && this.fa[i] === a && this.fb[i] === b) return true;
    }
  }

  /**
   * Indexes `id` at `slot` unless it is indexed already: -1 when added, else the slot that holds
   * it (nothing changed). One hash and one walk of the probe chain, where a lookup then an insert took two.
   */
  add(id: string, slot: number): number {
    this.grow();
    hash(id);
    const a = fpA;
    const b = fpB;
    const mask = this.slots.length - 1;
    let i = a & mask;
    for (let s = this.slots[i]!; s !== 0; s = this.slots[i]!) {
      if (this.fa[i] === a && this.fb[i] === b && this.idOf(s - 1) === id) return s - 1;
      i = (i + 1) & mask;
    }
    this.slots[i] = slot + 1;
    this.fa[i] = a;
    this.fb[i] = b;
    this.entries++;
    return -1;
  }

  /** Room for one more. Load factor at most 3/4: linear probing over fingerprints stays a few probes per lookup, and a million ids fit 2^21 slots (25 MB) rather than 2^22. */
  private grow(): void {
    if ((this.entries + 1) * 4 > this.slots.length * 3) this.rehash(this.slots.length * 2);
  }

  private insert(a: number, b: number, s: number): void {
    const mask = this.slots.length - 1;
    let i = a & mask;
    while (this.slots[i] !== 0) i = (i + 1) & mask;
    this.slots[i] = s;
    this.fa[i] = a;
    this.fb[i] = b;
  }

  private rehash(size: number): void {
    const { slots, fa, fb } = this;
    this.slots = new Int32Array(size);
    this.fa = new Int32Array(size);
    this.fb = new Int32Array(size);
    for (let i = 0; i < slots.length; i++) if (slots[i] !== 0) this.insert(fa[i]!, fb[i]!, slots[i]!);
  }
}

/**
 * The fresh ids a bulk enqueue has gathered for its next line (IdIndex.getFresh), up to
 * `capacity`: which tasks they are, in order, and a small table over their fingerprints to find an
 * id given twice. Cleared for each line; it allocates nothing after its construction.
 */
export class FreshBatch {
  /** Ids noted since the last clear. */
  count = 0;
  /** Entry k: the index in the caller's task list of the k-th id noted. */
  readonly picks: Int32Array;
  private readonly ids: string[];
  /** Open addressing: k + 1 of the id noted k-th; 0 empty. At most half full. */
  private readonly table: Int32Array;
  private readonly fa: Int32Array;
  private readonly fb: Int32Array;

  constructor(readonly capacity: number) {
    let size = 4;
    while (size < capacity * 2) size *= 2;
    this.picks = new Int32Array(capacity);
    this.ids = new Array<string>(capacity).fill('');
    this.table = new Int32Array(size);
    this.fa = new Int32Array(size);
    this.fb = new Int32Array(size);
  }

  /** Notes `id` (fingerprint a, b) as `tasks[pick]`; false, and nothing noted, when noted already. */
  note(id: string, a: number, b: number, pick: number): boolean {
    const mask = this.table.length - 1;
    let i = a & mask;
    for (let k = this.table[i]!; k !== 0; k = this.table[i]!) {
      if (this.fa[i] === a && this.fb[i] === b && this.ids[k - 1] === id) return false;
      i = (i + 1) & mask;
    }
    if (this.count === this.capacity) throw new RangeError(`FreshBatch: more than ${this.capacity} ids`);
    this.table[i] = this.count + 1;
    this.fa[i] = a;
    this.fb[i] = b;
    this.ids[this.count] = id;
    this.picks[this.count++] = pick;
    return true;
  }

  clear(): void {
    if (this.count === 0) return;
    this.table.fill(0);
    this.ids.fill('', 0, this.count);
    this.count = 0;
  }
}

/**
 * A growable FIFO of slots, in the order they were pushed. Each push has a position (0, 1, 2, …
 * over the FIFO's life); a slot pushed again (a task ready again after a claim, a release, a
 * retry) leaves its older entry behind, which the reader tells from the live one by its position
 * (SlotTable.readyPos): entries go stale when a task leaves the state or is pushed again, and are
 * skipped on read.
 */
export class SlotFifo {
  private buf = new Int32Array(1024);
  private head = 0;
  private tail = 0;
  /** The position of buf[0]. */
  private base = 0;

  /** Appends `slot`; returns its position. */
  push(slot: number): number {
    if (this.tail === this.buf.length) {
      const live = this.tail - this.head;
      if (live * 2 <= this.buf.length) {
        this.buf.copyWithin(0, this.head, this.tail);
      } else {
        const next = new Int32Array(this.buf.length * 2);
        next.set(this.buf.subarray(this.head, this.tail));
        this.buf = next;
      }
      this.base += this.head;
      this.head = 0;
      this.tail = live;
    }
    this.buf[this.tail] = slot;
    return this.base + this.tail++;
  }

  /** The first entry for which `keep(slot, position)` is true; stale entries before it are dropped. */
  peek(keep: (slot: number, pos: number) => boolean): number {
    while (this.head < this.tail) {
      const s = this.buf[this.head]!;
      if (keep(s, this.base + this.head)) return s;
      this.head++;
    }
    return -1;
  }

  shift(): void {
    if (this.head < this.tail) this.head++;
  }

  /** Visits entries (slot, position) from the head on, without removing any, until `visit` returns false. */
  scan(visit: (slot: number, pos: number) => boolean): void {
    for (let i = this.head; i < this.tail; i++) if (!visit(this.buf[i]!, this.base + i)) return;
  }
}

/** A min-heap of (time, slot) with lazy deletion, for retries waiting on their due time; ties go to the lower slot. */
export class DueHeap {
  private times: number[] = [];
  private slots: number[] = [];

  get size(): number {
    return this.times.length;
  }

  push(time: number, slot: number): void {
    const t = this.times;
    const s = this.slots;
    let i = t.length;
    t.push(time);
    s.push(slot);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (t[p]! < time || (t[p] === time && s[p]! < slot)) break;
      t[i] = t[p]!;
      s[i] = s[p]!;
      i = p;
    }
    t[i] = time;
    s[i] = slot;
  }

  /** Drops stale tops; returns the top slot that `valid(time, slot)` accepts, or -1. */
  top(valid: (time: number, slot: number) => boolean): { time: number; slot: number } | null {
    while (this.times.length > 0) {
      if (valid(this.times[0]!, this.slots[0]!)) return { time: this.times[0]!, slot: this.slots[0]! };
      this.pop();
    }
    return null;
  }

  pop(): void {
    const t = this.times;
    const s = this.slots;
    const lastT = t.pop()!;
    const lastS = s.pop()!;
    if (t.length === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= t.length) break;
      const r = l + 1;
      const c = r < t.length && (t[r]! < t[l]! || (t[r] === t[l] && s[r]! < s[l]!)) ? r : l;
      if (t[c]! > lastT || (t[c] === lastT && s[c]! > lastS)) break;
      t[i] = t[c]!;
      s[i] = s[c]!;
      i = c;
    }
    t[i] = lastT;
    s[i] = lastS;
  }
}
