import { createHash, hash } from 'node:crypto';
import { closeSync, fdatasyncSync, fstatSync, ftruncateSync } from 'node:fs';
import { safeMkdir, safeOpen } from '../safe-path.js';
import { basename, dirname, join } from 'node:path';
import { StateCorruptError } from '../../guard/errors.js';
import stringify from 'fast-json-stable-stringify';
import { appendAll, cutTornTail, readAt, readInto, readMany, readWith } from '../io.js';
import { Mutex } from '../mutex.js';
import { DateIndexFiles, type IndexEntry, type IndexMeta } from './date-index.js';
import { plainScanner } from './plain-lines.js';
import { flat } from '../../strings.js';

/** A row to store: its deterministic id, the date and params it belongs to, and its exact text. */
export interface RowToPut {
  id: string;
  date: string;
  /** Hash of the row's params (see paramsKey). */
  p: string;
  /** One stably stringified JSON object, no newline. */
  text: string;
}

/** {@link RowToPut} as the pipeline's stores hold it: `identity` is its params hash (`p`). */
export interface RowTextToPut {
  id: string;
  date: string;
  identity: string;
  text: string;
}

export interface Conflict {
  id: string;
  existing: string;
  incoming: string;
}

export interface PutResult {
  written: number;
  present: number;
  /** Ids already stored with other content: nothing of this put was written. */
  conflicts: Conflict[];
}

/** Bytes of rows {@link ArtifactStore.digest} holds and hashes at once, at most (one row may exceed it). */
const DIGEST_WINDOW = 8 << 20;
/** Bytes of the store file {@link ArtifactStore.digest} reads at once. */
const DIGEST_CHUNK = 4 << 20;

export function hashText(text: string | Buffer): string {
  // One-shot: no Hash object per row (100k rows made 100k native contexts waiting for the GC).
  // A string's hash is its UTF-8 bytes' hash. The 16 digits are copied out of the 64 (`flat`): a
  // slice is a view that keeps all 64 alive in every index entry.
  return flat(hash('sha256', text, 'hex').slice(0, 16));
}

/**
 * Lines written one after the other into one growing buffer: a row's text is encoded to UTF-8
 * once, and its hash, its length and the bytes appended all come from that encoding.
 */
class LineBuffer {
  buf: Buffer;
  /** Bytes in use. */
  length = 0;

  constructor(capacity: number) {
    this.buf = Buffer.allocUnsafe(Math.max(capacity, 4096));
  }

  /** Writes `text` and a newline at the end; gives the line's length in bytes (newline included). */
  line(text: string): number {
    const room = this.buf.length - this.length;
    // At most 3 bytes a UTF-16 unit; measured only when that much might not fit.
    if (room < 3 * text.length + 1) {
      const need = Buffer.byteLength(text) + 1;
      if (room < need) {
        const grown = Buffer.allocUnsafe(Math.max(2 * this.buf.length, this.length + need));
        this.buf.copy(grown, 0, 0, this.length);
        this.buf = grown;
      }
    }
    const n = this.buf.write(text, this.length, 'utf8');
    this.buf[this.length + n] = 0x0a;
    this.length += n + 1;
    return n + 1;
  }
}

interface PendingPut {
  rows: readonly (RowToPut | RowTextToPut)[];
  resolve: (r: PutResult) => void;
  reject: (e: unknown) => void;
}

/** The positions `k` of `entries[from + k]`, `from <= from + k < to`, in ascending offset order. */
function byOffset(entries: readonly IndexEntry[], from: number, to: number): Iterable<number> {
  const n = to - from;
  const scale = 2 ** Math.max(1, Math.ceil(Math.log2(n + 1)));
  let max = 0;
  for (let k = from; k < to; k++) max = Math.max(max, entries[k]!.o);
  if (max * scale + n >= 2 ** 53) return Array.from({ length: n }, (_, k) => k).sort((a, b) => entries[from + a]!.o - entries[from + b]!.o);
  // A native sort of float keys `offset × 2^bits + position` (exact below 2^53).
  const keys = new Float64Array(n);
  for (let k = 0; k < n; k++) keys[k] = entries[from + k]!.o * scale + k;
  keys.sort();
  const out = new Uint32Array(n);
  for (let k = 0; k < n; k++) out[k] = keys[k]! % scale;
  return out;
}

/** Reads a file forward in chunks of DIGEST_CHUNK bytes into one buffer, for rows asked in offset order. */
class ChunkReader {
  private buf = Buffer.allocUnsafe(DIGEST_CHUNK);
  private start = 0;
  private end = 0;

  constructor(
    private readonly fd: number,
    private readonly path: string,
  ) {}

  /** Copies the bytes of `e` (offset and length) into `to` at `at`. */
  copy(e: { o: number; l: number }, to: Buffer, at: number): void {
    if (e.o < this.start || e.o + e.l > this.end) {
      if (e.l > this.buf.length) this.buf = Buffer.allocUnsafe(e.l);
      const got = readInto(this.fd, this.buf, e.o);
      this.start = e.o;
      this.end = e.o + got;
      if (got < e.l) throw new StateCorruptError(`${this.path} ends at ${this.end} bytes, inside a row its index places at ${e.o} (${e.l} bytes)`);
    }
    this.buf.copy(to, at, e.o - this.start, e.o - this.start + e.l);
  }
}

/**
 * An append-only JSONL artifact file (store/s1_*.jsonl) with an on-disk index per date, so that
 * checking an id never rereads the file. Puts from concurrent tasks are group-committed: one
 * append and one fsync for all of them. A row whose id exists with the same content is not
 * written again; with different content, the put writes nothing and reports the conflict.
 */
export class ArtifactStore {
  readonly path: string;
  private readonly index: DateIndexFiles;
  private readonly mutex: Mutex;
  private readonly cache = new Map<string, Map<string, IndexEntry>>();
  /** Counts the times {@link cache} was dropped whole (a rebuild): a commit's rows then move to the new maps. */
  private generation = 0;
  private fd: number | null = null;
  /** Store bytes whose rows this process's cache has seen (others may have indexed more). */
  private seen = 0;
  /** The index's meta as the last `catchUp` (under the lock) read it; `write` extends it. */
  private meta: IndexMeta = { covered: 0, counts: {} };
  private pending: PendingPut[] = [];
  private scheduled = false;
  private flushing: Promise<void> | null = null;
  /** The end of the last `locked` call queued in this process (never its value). */
  private turn: Promise<void> = Promise.resolve();

  constructor(
    path: string,
    private readonly warn: (msg: string, details: Record<string, unknown>) => void = () => undefined,
  ) {
    this.path = path;
    this.index = new DateIndexFiles(join(dirname(path), '.index', basename(path, '.jsonl')));
    this.mutex = new Mutex(join(this.index.dir, '.mutex'), `store ${path}`);
  }

  /**
   * Puts rows (with their params hash as `p`, or as `identity`: the pipeline's rows go in as they
   * are, without a copy each); resolves once they are durable (or found present, or refused as a conflict).
   */
  put(rows: readonly (RowToPut | RowTextToPut)[]): Promise<PutResult> {
    return new Promise((resolve, reject) => {
      this.pending.push({ rows, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  /** The rows of `date` whose params hash is `p`, in the order they were written. */
  async rowsFor(date: string, p: string): Promise<Record<string, unknown>[]> {
    return (await this.textsFor(date, p)).map((t) => JSON.parse(t.text) as Record<string, unknown>);
  }

  /**
   * How many rows `date` has with params `p`, and the sha256 of their stored lines in id order:
   * what a step wrote, stable however the file grows. Reads bytes only; parses nothing.
   */
  async digest(date: string, p: string): Promise<{ rows: number; sha256: string }> {
    return this.locked(() => {
      const all = this.entries(date);
      const ids: string[] = [];
      for (const e of all.values()) if (e.p === p) ids.push(e.id);
      // The default sort orders strings by code unit, as `<` does, without a comparator call per pair.
      const entries = ids.sort().map((id) => all.get(id)!);
      const h = createHash('sha256');
      const file = new ChunkReader(this.fd!, this.path);
      // In windows of about DIGEST_WINDOW bytes of rows, each row copied into its place in id
      // order and the window hashed at once: a stage of 100k rows is hashed without holding all
      // of its bytes, its rows (written in task order, scattered by id) are read in a pass of the
      // file per window (it was a pass per 8,192 ids), and the hash is updated once per window.
      for (let i = 0; i < entries.length; ) {
        let bytes = 0;
        let j = i;
        while (j < entries.length && (j === i || bytes + entries[j]!.l <= DIGEST_WINDOW)) bytes += entries[j++]!.l;
        const window = Buffer.allocUnsafe(bytes);
        const at = new Array<number>(j - i);
        for (let k = i, o = 0; k < j; k++) {
          at[k - i] = o;
          o += entries[k]!.l;
        }
        for (const k of byOffset(entries, i, j)) file.copy(entries[i + k]!, window, at[k]!);
        h.update(window);
        i = j;
      }
      return { rows: entries.length, sha256: h.digest('hex') };
    });
  }

  /** The same rows as stored text (no newline), with their ids: hashing them needs no parse. */
  async textsFor(date: string, p: string): Promise<{ id: string; text: string }[]> {
    return this.locked(() => {
      const entries = [...this.entries(date).values()].filter((e) => e.p === p).sort((a, b) => a.o - b.o);
      const bufs = readMany(this.fd!, entries.map((e) => ({ offset: e.o, length: e.l })));
      return bufs.map((b, i) => ({ id: entries[i]!.id, text: b.toString('utf8', 0, b.length - 1) }));
    });
  }

  /** Where the rows of `date` with params `p` are in the file (offset and length, newline included), in the order they were written. Reads no row. */
  async rangesFor(date: string, p: string): Promise<{ offset: number; length: number }[]> {
    return this.locked(() =>
      [...this.entries(date).values()]
        .filter((e) => e.p === p)
        .sort((a, b) => a.o - b.o)
        .map((e) => ({ offset: e.o, length: e.l })),
    );
  }

  /** The stored texts (no newline) at these places of the file, in the order asked: places `rangesFor` gave (the file is only appended to). */
  async textsAt(ranges: readonly { offset: number; length: number }[]): Promise<string[]> {
    return this.locked(() => readMany(this.fd!, ranges).map((b) => b.toString('utf8', 0, b.length - 1)));
  }

  /** Lets go of the index of `date` kept in memory (read again from the index files when next needed). */
  async forget(date: string): Promise<void> {
    return this.locked(() => void this.cache.delete(date));
  }

  /** Counts of the rows of `date` with params `p`, and the ids among `ids` that are missing. */
  async has(date: string, p: string, ids: readonly string[]): Promise<{ present: number; missing: string[] }> {
    return this.locked(() => {
      const entries = this.entries(date);
      const missing = ids.filter((id) => entries.get(id)?.p !== p);
      return { present: ids.length - missing.length, missing };
    });
  }

  async close(): Promise<void> {
    while (this.flushing || this.pending.length) await (this.flushing ?? this.flush());
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    if (this.flushing) return this.flushing;
    const puts = this.pending.splice(0);
    if (puts.length === 0) return;
    this.flushing = this.locked(() => this.write(puts))
      .then((results) => puts.forEach((p, i) => p.resolve(results[i]!)))
      .catch((err) => puts.forEach((p) => p.reject(err)))
      .finally(() => {
        this.flushing = null;
        if (this.pending.length) void this.flush();
      });
    return this.flushing;
  }

  private write(puts: PendingPut[]): PutResult[] {
    const results: PutResult[] = [];
    let end = fstatSync(this.fd!).size;
    const start = end;
    let chars = 0;
    for (const put of puts) for (const row of put.rows) chars += row.text.length + 1;
    // Each row is written here once: its hash and length are of these bytes, which are appended
    // as they are. A row found present (or a put refused) is taken back out.
    const out = new LineBuffer(chars);
    // A new row's entry goes straight into its date's map, at the offset its bytes will have in
    // the file (start + its place in the buffer): a later row of this commit with the same id
    // finds it there (one lookup a row; there were three maps to look in and fill). Taken back
    // out if its put is refused, or if the commit fails before its rows are durable.
    const added: { e: IndexEntry; date: string; m: Map<string, IndexEntry> }[] = [];
    const takeBack = (from: number): void => {
      for (let k = added.length - 1; k >= from; k--) added[k]!.m.delete(added[k]!.e.id);
      added.length = from;
    };
    let generation = this.generation;
    try {
      for (const put of puts) {
        const result: PutResult = { written: 0, present: 0, conflicts: [] };
        const putStart = out.length;
        const putAdded = added.length;
        for (const row of put.rows) {
          const at = out.length;
          const l = out.line(row.text);
          const h = hashText(out.buf.subarray(at, at + l - 1));
          const m = this.entries(row.date);
          if (this.generation !== generation) {
            // The cache was dropped and read again (an index that did not add up, rebuilt on
            // first use of this date): this commit's rows go into the new maps.
            generation = this.generation;
            for (const a of added) (a.m = this.entries(a.date)).set(a.e.id, a.e);
          }
          const known = m.get(row.id);
          if (known) {
            out.length = at;
            if (known.h === h) result.present++;
            else result.conflicts.push({ id: row.id, existing: this.textOf(known, start, out), incoming: row.text });
            continue;
          }
          const e: IndexEntry = { id: row.id, p: (row as RowTextToPut).identity ?? (row as RowToPut).p, o: start + at, l, h };
          m.set(row.id, e);
          added.push({ e, date: row.date, m });
        }
        if (result.conflicts.length === 0) result.written = added.length - putAdded;
        else {
          takeBack(putAdded);
          out.length = putStart;
        }
        results.push(result);
      }
      if (out.length) {
        this.appendBytes(out.buf.subarray(0, out.length), start);
        fdatasyncSync(this.fd!);
      }
    } catch (err) {
      // Nothing of this commit is durable: the maps hold only what the file does.
      takeBack(0);
      throw err;
    }
    end = start + out.length;
    if (added.length) {
      const byDate = new Map<string, IndexEntry[]>();
      for (const { e, date } of added) (byDate.get(date) ?? byDate.set(date, []).get(date)!).push(e);
      this.index.append(byDate);
      this.seen = end;
      // Read by catchUp under this same lock: nobody else wrote since.
      const meta = this.meta;
      for (const [date, list] of byDate) meta.counts[date] = (meta.counts[date] ?? 0) + list.length;
      meta.covered = end;
      this.index.setMeta(meta);
    }
    return results;
  }

  /** Appends the lines' bytes at `start`. All or nothing: a failure cuts the file back to `start`. */
  private appendBytes(bytes: Buffer, start: number): void {
    // The fence: this process holds the store's lock and the file ends where its index says.
    this.mutex.assertHeld();
    const size = fstatSync(this.fd!).size;
    if (size !== start) {
      throw new StateCorruptError(`${this.path} grew from ${start} to ${size} bytes without the store's lock; nothing written`, {
        hint: 'another writer appended without the lock (an older metaspn, a hand edit); stop it, then run `metaspn doctor --workspace DIR`',
      });
    }
    try {
      appendAll(this.fd!, bytes, start);
    } catch (err) {
      try {
        ftruncateSync(this.fd!, start);
      } catch {
        // the write error is what the caller needs to hear
      }
      throw err;
    }
  }

  /** The stored text of `e`: from this commit's buffer when it was added by this commit (past `start`), else from the file. */
  private textOf(e: IndexEntry, start: number, out: LineBuffer): string {
    if (e.o >= start) return out.buf.toString('utf8', e.o - start, e.o - start + e.l - 1);
    return readAt(this.fd!, e.o, e.l).toString('utf8').replace(/\n$/, '');
  }

  private entries(date: string): Map<string, IndexEntry> {
    let m = this.cache.get(date);
    if (!m) {
      const list = this.index.read(date, this.meta.counts[date] ?? 0);
      if (!list) {
        // The index lost or garbled entries of this date: an id it forgot could be written twice.
        this.warn('store index does not add up; rebuilding it from the store file', { store: this.path, date });
        this.rebuild();
        return this.entries(date);
      }
      m = new Map(list.map((e) => [e.id, e]));
      this.cache.set(date, m);
    }
    return m;
  }

  /** Index the whole store file afresh (it is the authority). */
  private rebuild(): void {
    this.index.clear();
    this.cache.clear();
    this.generation++;
    this.seen = 0;
    this.catchUp();
  }

  /**
   * Runs `fn` under the store's lock. Calls from this process take turns (the kernel lock is not
   * re-entrant: two steps of a run reading the same upstream store at once would take it twice).
   */
  private locked<T>(fn: () => T): Promise<T> {
    const turn = this.turn.then(async () => {
      await this.mutex.acquire();
      try {
        this.catchUp();
        return fn();
      } finally {
        this.mutex.releaseLock();
      }
    });
    // The next call waits for this one's end, not for its value: a 100k-row read held here stayed
    // alive until the store's next call (for the rest of a run).
    this.turn = turn.then(
      () => undefined,
      () => undefined,
    );
    return turn;
  }

  /**
   * Two offsets: the index files cover the store up to meta.covered (whoever wrote last indexed
   * it), this process's cache up to `seen`. Rows between the two are read into the cache; rows
   * past the index are indexed; a torn tail is set aside.
   */
  private catchUp(): void {
    if (this.fd === null) {
      safeMkdir(dirname(this.path));
      this.fd = safeOpen(this.path, 'a+');
      this.seen = this.index.meta().covered;
    }
    const size = fstatSync(this.fd).size;
    const meta = this.index.meta();
    this.meta = meta;
    if (size < meta.covered || size < this.seen) {
      // The file shrank under its index (restored from a backup, cut by hand): index it afresh.
      this.warn('store file is shorter than its index; rebuilding the index', { store: this.path, size, covered: meta.covered });
      return this.rebuild();
    }
    const from = Math.min(this.seen, meta.covered);
    if (size === from) return;
    const byDate = new Map<string, IndexEntry[]>();
    const r = readWith(
      this.fd,
      from,
      plainScanner((line) => {
        const date = typeof line.row?.date === 'string' ? line.row.date : null;
        if (!line.row || typeof line.row.id !== 'string' || !date) {
          this.warn('store line is not a row; left in place and ignored', { store: this.path, offset: line.offset });
          return;
        }
        const e: IndexEntry = { id: line.row.id, p: keyOfRow(line.row), o: line.offset, l: line.length, h: hashText(line.text) };
        if (line.offset >= this.seen) this.cache.get(date)?.set(e.id, e);
        if (line.offset >= meta.covered) (byDate.get(date) ?? byDate.set(date, []).get(date)!).push(e);
      }),
    );
    if (r.tail > 0) this.cutTornTail(r.end, r.tail);
    if (byDate.size) {
      this.index.append(byDate);
      for (const [date, list] of byDate) meta.counts[date] = (meta.counts[date] ?? 0) + list.length;
    }
    if (r.end > meta.covered) {
      meta.covered = r.end;
      this.index.setMeta(meta);
    }
    this.seen = r.end;
  }

  private cutTornTail(end: number, tail: number): void {
    cutTornTail(this.fd!, this.path, end, tail, join(dirname(this.path), '..', 'quarantine', `${basename(this.path)}.torn.jsonl`));
    this.warn('torn last line of a store file set aside in quarantine/', { store: this.path, offset: end, length: tail });
  }
}

/** The params hash an index entry carries. */
export function paramsKey(params: unknown): string {
  return hashText(stringify(params ?? null) ?? 'null');
}

/**
 * The key a stored row is indexed under, read from the row itself (a rebuilt index, rows another
 * process appended): a pipeline step's row carries its step identity, which is what its writer put
 * it under; a row without one (Season 1's) is keyed by its params.
 */
export function keyOfRow(row: { identity?: unknown; params?: unknown }): string {
  return typeof row.identity === 'string' ? row.identity : paramsKey(row.params);
}

