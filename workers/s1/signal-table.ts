import { compareText } from './math/order.js';

/**
 * The signals of a file in columns: one typed array per number field and one string per signal
 * id, kinds and subjects interned. A million signals as objects (each with its strings, a group
 * array and a sorted copy) held 600–900 MB and kept the collector busy for a third of a run; in
 * columns they are about 60 MB of arrays and a million id strings. Pure: no I/O.
 */

/**
 * One validated signal. `ts_ms` is the epoch milliseconds of `ts` (its UTC day is
 * `floor(ts_ms / DAY_MS)`); the text itself is not kept, but `ts_digits` (how many
 * fraction-of-second digits it was written with, 0–3) gives it back exactly (signals.ts `tsText`).
 * Absent, it counts as 0 for a whole second and 3 otherwise.
 */
export type Signal = {
  signal_id: string;
  ts_ms: number;
  subject_ref: string;
  kind: string;
  value: number;
  ts_digits?: number;
};

/** The columns of a {@link SignalTable}, index `i` the i-th signal in file order. */
export interface SignalColumns {
  /** `signal_id` of each signal. */
  readonly ids: readonly string[];
  /** Epoch milliseconds of `ts`. */
  readonly ts: Float64Array;
  /** Fraction digits `ts` was written with, 0–3 (see {@link Signal.ts_digits}). */
  readonly digits: Uint8Array;
  /** `value` (1 where absent), finite and >= 0. */
  readonly value: Float64Array;
  /** Index into `kinds`. */
  readonly kind: Uint16Array;
  /** Index into `subjects`. */
  readonly subject: Uint32Array;
  /** The distinct kinds, in order of first appearance. */
  readonly kinds: readonly string[];
  /** The distinct subjects, in order of first appearance. */
  readonly subjects: readonly string[];
}

/** The signals of a file, in file order, as columns (see the module comment). */
export class SignalTable implements SignalColumns {
  constructor(
    readonly ids: readonly string[],
    readonly ts: Float64Array,
    readonly digits: Uint8Array,
    readonly value: Float64Array,
    readonly kind: Uint16Array,
    readonly subject: Uint32Array,
    readonly kinds: readonly string[],
    readonly subjects: readonly string[],
  ) {}

  /** How many signals. */
  get length(): number {
    return this.ids.length;
  }

  /** The i-th signal as an object (a fresh one each call: callers hold them briefly). */
  signal(i: number): Signal {
    return { signal_id: this.ids[i]!, ts_ms: this.ts[i]!, subject_ref: this.subjects[this.subject[i]!]!, kind: this.kinds[this.kind[i]!]!, value: this.value[i]!, ts_digits: this.digits[i]! };
  }

  /** Every signal as an object, in file order. */
  toSignals(): Signal[] {
    const out = new Array<Signal>(this.length);
    for (let i = 0; i < out.length; i++) out[i] = this.signal(i);
    return out;
  }

  /** A table of `signals` in their order (`ts_digits` absent: 0 for a whole second, else 3). */
  static of(signals: Iterable<Signal>): SignalTable {
    const b = new SignalTableBuilder();
    for (const s of signals) b.add(s.signal_id, s.ts_ms, s.ts_digits ?? (s.ts_ms % 1000 === 0 ? 0 : 3), s.kind, s.subject_ref, s.value);
    return b.finish();
  }
}

/** Appends signals to growing columns; {@link finish} gives the table. */
export class SignalTableBuilder {
  private n = 0;
  private cap = 1024;
  private readonly ids: string[] = [];
  private ts = new Float64Array(this.cap);
  private digits = new Uint8Array(this.cap);
  private value = new Float64Array(this.cap);
  private kind = new Uint16Array(this.cap);
  private subject = new Uint32Array(this.cap);
  private readonly kinds: string[] = [];
  private readonly subjects: string[] = [];
  private readonly subjectIndex = new Map<string, number>();

  /** Adds one signal (already validated). @throws RangeError past 65,535 distinct kinds. */
  add(id: string, tsMs: number, digits: number, kind: string, subject: string, value: number): void {
    if (this.n === this.cap) this.grow();
    const i = this.n++;
    this.ids.push(id);
    this.ts[i] = tsMs;
    this.digits[i] = digits;
    this.value[i] = value;
    let k = this.kinds.indexOf(kind);
    if (k === -1) {
      if (this.kinds.length === 0xffff) throw new RangeError('more than 65,535 distinct kinds');
      k = this.kinds.push(kind) - 1;
    }
    this.kind[i] = k;
    let s = this.subjectIndex.get(subject);
    if (s === undefined) {
      s = this.subjects.push(subject) - 1;
      this.subjectIndex.set(subject, s);
    }
    this.subject[i] = s;
  }

  /** The position of the first signal added with this id, or -1. */
  indexOf(id: string): number {
    return this.ids.indexOf(id);
  }

  /** The table of every signal added, in the order added. */
  finish(): SignalTable {
    const n = this.n;
    return new SignalTable(this.ids, this.ts.slice(0, n), this.digits.slice(0, n), this.value.slice(0, n), this.kind.slice(0, n), this.subject.slice(0, n), this.kinds, this.subjects);
  }

  private grow(): void {
    this.cap *= 2;
    const more = <T extends Float64Array | Uint8Array | Uint16Array | Uint32Array>(a: T, make: (n: number) => T): T => {
      const b = make(this.cap);
      b.set(a);
      return b;
    };
    this.ts = more(this.ts, (n) => new Float64Array(n));
    this.digits = more(this.digits, (n) => new Uint8Array(n));
    this.value = more(this.value, (n) => new Float64Array(n));
    this.kind = more(this.kind, (n) => new Uint16Array(n));
    this.subject = more(this.subject, (n) => new Uint32Array(n));
  }
}

/**
 * The signals of a table grouped by `subject_ref`: subjects in ascending order (plain `<`), each
 * group in file order, as `groupBySubject` groups objects. A read-only map whose values are made
 * on demand from the columns (fresh objects each `get`: only one subject's are held at a time).
 */
export class SubjectGroups implements ReadonlyMap<string, readonly Signal[]> {
  /** Subjects in ascending order. */
  private readonly names: string[];
  private readonly rank = new Map<string, number>();
  /** Group r is `members[start[r]] … members[start[r + 1] - 1]`: signal indices in file order. */
  private readonly start: Uint32Array;
  private readonly members: Uint32Array;

  constructor(readonly table: SignalTable) {
    const order = table.subjects.map((_, i) => i).sort((a, b) => compareText(table.subjects[a]!, table.subjects[b]!));
    this.names = order.map((i) => table.subjects[i]!);
    const rankOfIndex = new Uint32Array(order.length);
    order.forEach((index, r) => {
      rankOfIndex[index] = r;
      this.rank.set(this.names[r]!, r);
    });
    const start = new Uint32Array(order.length + 1);
    for (let i = 0; i < table.length; i++) start[rankOfIndex[table.subject[i]!]! + 1]!++;
    for (let r = 0; r < order.length; r++) start[r + 1]! += start[r]!;
    const fill = start.slice(0, order.length);
    const members = new Uint32Array(table.length);
    for (let i = 0; i < table.length; i++) members[fill[rankOfIndex[table.subject[i]!]!]!++] = i;
    this.start = start;
    this.members = members;
  }

  get size(): number {
    return this.names.length;
  }

  has(subject: string): boolean {
    return this.rank.has(subject);
  }

  /** The indices into {@link table} of the subject's signals, in file order (a view: no copy, no objects). */
  membersOf(subject: string): Uint32Array | undefined {
    const r = this.rank.get(subject);
    return r === undefined ? undefined : this.members.subarray(this.start[r]!, this.start[r + 1]!);
  }

  get(subject: string): Signal[] | undefined {
    const r = this.rank.get(subject);
    return r === undefined ? undefined : this.groupAt(r);
  }

  /**
   * The subjects with a signal whose instant lies in `[fromMs, toMs)`, ascending: who stage 1
   * scores on a date. Reads the columns only.
   */
  subjectsWithin(fromMs: number, toMs: number): string[] {
    const out: string[] = [];
    const ts = this.table.ts;
    for (let r = 0; r < this.names.length; r++) {
      for (let j = this.start[r]!; j < this.start[r + 1]!; j++) {
        const t = ts[this.members[j]!]!;
        if (t >= fromMs && t < toMs) {
          out.push(this.names[r]!);
          break;
        }
      }
    }
    return out;
  }

  forEach(fn: (value: readonly Signal[], key: string, map: ReadonlyMap<string, readonly Signal[]>) => void): void {
    for (let r = 0; r < this.names.length; r++) fn(this.groupAt(r), this.names[r]!, this);
  }

  *entries(): MapIterator<[string, readonly Signal[]]> {
    for (let r = 0; r < this.names.length; r++) yield [this.names[r]!, this.groupAt(r)];
  }

  *keys(): MapIterator<string> {
    yield* this.names;
  }

  *values(): MapIterator<readonly Signal[]> {
    for (let r = 0; r < this.names.length; r++) yield this.groupAt(r);
  }

  [Symbol.iterator](): MapIterator<[string, readonly Signal[]]> {
    return this.entries();
  }

  private groupAt(r: number): Signal[] {
    const out: Signal[] = [];
    for (let j = this.start[r]!; j < this.start[r + 1]!; j++) out.push(this.table.signal(this.members[j]!));
    return out;
  }
}
