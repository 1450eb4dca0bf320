import type { Buffer } from 'node:buffer';

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

/** The FNV-1a offset basis and prime (32 bits) of {@link textHash}. */
export const HASH_SEED = 0x811c9dc5 | 0;
export const HASH_PRIME = 16_777_619;

/**
 * FNV-1a (32 bits, as a signed int) over the UTF-16 code units of `text`: for an ASCII text the
 * same number as over its bytes, so a reader of bytes can hash a field as it scans it.
 */
export function textHash(text: string): number {
  let h = HASH_SEED;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), HASH_PRIME);
  return h;
}

/** Whether `text` is the ASCII bytes `bytes[from, to)`. */
function sameAscii(text: string, bytes: Uint8Array, from: number, to: number): boolean {
  if (text.length !== to - from) return false;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) !== bytes[from + i]) return false;
  return true;
}

/**
 * Distinct texts in the order added, found by text or by the ASCII bytes of one (a reader of
 * bytes looks a field up without making its string): open addressing over {@link textHash}. A
 * million signal ids in a `Set`, or their subjects in a `Map`, cost about 0.7 s each to fill;
 * here the hash is the reader's and a lookup reads two typed arrays. Pure: no I/O.
 */
export class TextTable {
  /** The texts, index `i` the i-th added. */
  readonly texts: string[] = [];
  private hashes = new Int32Array(1024);
  /** Index + 1 of the text in each slot; 0 is empty. Never more than half full. */
  private slots = new Int32Array(2048);
  private mask = 2047;

  /** How many texts. */
  get size(): number {
    return this.texts.length;
  }

  /** The index of `text`, or -1. `hash` must be {@link textHash}`(text)`. */
  find(text: string, hash: number = textHash(text)): number {
    for (let j = hash & this.mask; ; j = (j + 1) & this.mask) {
      const at = this.slots[j]! - 1;
      if (at < 0) return -1;
      if (this.hashes[at] === hash && this.texts[at] === text) return at;
    }
  }

  /** The index of the text made of the ASCII bytes `bytes[from, to)`, or -1. `hash`: FNV-1a over those bytes. */
  findAscii(bytes: Uint8Array, from: number, to: number, hash: number): number {
    for (let j = hash & this.mask; ; j = (j + 1) & this.mask) {
      const at = this.slots[j]! - 1;
      if (at < 0) return -1;
      if (this.hashes[at] === hash && sameAscii(this.texts[at]!, bytes, from, to)) return at;
    }
  }

  /** Appends `text` (the caller knows it is not there yet; a second copy would be found after the first) and gives its index. */
  add(text: string, hash: number = textHash(text)): number {
    const at = this.texts.push(text) - 1;
    if (at === this.hashes.length) {
      const more = new Int32Array(at * 2);
      more.set(this.hashes);
      this.hashes = more;
    }
    this.hashes[at] = hash;
    if (2 * (at + 1) > this.mask) this.rehash();
    else this.place(at, hash);
    return at;
  }

  /** The index of `text`, added if it is new. */
  intern(text: string): number {
    const hash = textHash(text);
    const at = this.find(text, hash);
    return at >= 0 ? at : this.add(text, hash);
  }

  private place(at: number, hash: number): void {
    let j = hash & this.mask;
    while (this.slots[j] !== 0) j = (j + 1) & this.mask;
    this.slots[j] = at + 1;
  }

  private rehash(): void {
    this.slots = new Int32Array(this.slots.length * 2);
    this.mask = this.slots.length - 1;
    for (let at = 0; at < this.texts.length; at++) this.place(at, this.hashes[at]!);
  }
}

/** Appends signals to growing columns; {@link finish} gives the table. */
export class SignalTableBuilder {
  private n = 0;
  private cap = 1024;
  /** The ids added, one entry a signal (a repeated id too: {@link indexOf} finds the first). */
  private readonly ids = new TextTable();
  private ts = new Float64Array(this.cap);
  private digits = new Uint8Array(this.cap);
  private value = new Float64Array(this.cap);
  private kind = new Uint16Array(this.cap);
  private subject = new Uint32Array(this.cap);
  private readonly kinds: string[] = [];
  private readonly subjects = new TextTable();

  /** Adds one signal (already validated). @throws RangeError past 65,535 distinct kinds. */
  add(id: string, tsMs: number, digits: number, kind: string, subject: string, value: number): void {
    this.addIndexed(id, textHash(id), tsMs, digits, this.kindIndex(kind), this.subjects.intern(subject), value);
  }

  /**
   * Adds one signal whose kind and subject are already indices ({@link kindIndex}, {@link
   * subjectAscii}); `idHash` is {@link textHash}`(id)`.
   */
  addIndexed(id: string, idHash: number, tsMs: number, digits: number, kind: number, subject: number, value: number): void {
    if (this.n === this.cap) this.grow();
    const i = this.n++;
    this.ids.add(id, idHash);
    this.ts[i] = tsMs;
    this.digits[i] = digits;
    this.value[i] = value;
    this.kind[i] = kind;
    this.subject[i] = subject;
  }

  /** The index of `kind` among the kinds, added if new. @throws RangeError past 65,535 distinct kinds. */
  kindIndex(kind: string): number {
    let k = this.kinds.indexOf(kind);
    if (k === -1) {
      if (this.kinds.length === 0xffff) throw new RangeError('more than 65,535 distinct kinds');
      k = this.kinds.push(kind) - 1;
    }
    return k;
  }

  /** The index of `subject` among the subjects, added if new. */
  subjectIndex(subject: string): number {
    return this.subjects.intern(subject);
  }

  /** The index of the subject made of the ASCII bytes `bytes[from, to)` (FNV-1a `hash`), added if new. */
  subjectAscii(bytes: Buffer, from: number, to: number, hash: number): number {
    const s = this.subjects.findAscii(bytes, from, to, hash);
    return s >= 0 ? s : this.subjects.add(bytes.toString('latin1', from, to), hash);
  }

  /** The position of the first signal added with this id, or -1. */
  indexOf(id: string, hash: number = textHash(id)): number {
    return this.ids.find(id, hash);
  }

  /** {@link indexOf} of the id made of the ASCII bytes `bytes[from, to)` (FNV-1a `hash`). */
  indexOfAscii(bytes: Uint8Array, from: number, to: number, hash: number): number {
    return this.ids.findAscii(bytes, from, to, hash);
  }

  /** The table of every signal added, in the order added. */
  finish(): SignalTable {
    const n = this.n;
    return new SignalTable(this.ids.texts, this.ts.slice(0, n), this.digits.slice(0, n), this.value.slice(0, n), this.kind.slice(0, n), this.subject.slice(0, n), this.kinds, this.subjects.texts);
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
    // The subjects are distinct strings: the default sort (UTF-16 code units, no comparator
    // called from the sort) gives compareText's order, and each subject's rank is found by name.
    const n = table.subjects.length;
    this.names = table.subjects.slice().sort();
    for (let r = 0; r < n; r++) this.rank.set(this.names[r]!, r);
    const rankOfIndex = new Uint32Array(n);
    for (let i = 0; i < n; i++) rankOfIndex[i] = this.rank.get(table.subjects[i]!)!;
    const start = new Uint32Array(n + 1);
    for (let i = 0; i < table.length; i++) start[rankOfIndex[table.subject[i]!]! + 1]!++;
    for (let r = 0; r < n; r++) start[r + 1]! += start[r]!;
    const fill = start.slice(0, n);
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
