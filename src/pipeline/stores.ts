/**
 * Everything the pipeline runner persists goes through these small interfaces: the rows a step
 * writes, the manifests, the current pointers and the ledger. The file implementation is the
 * workspace on disk; the memory one serves unit tests; a PostgreSQL one can follow without
 * touching the runner. One conformance suite (test/pipeline/stores-conformance.ts) runs against
 * every implementation.
 */
import { join, relative } from 'node:path';
import { createHash } from 'node:crypto';
import { rowTextOf } from './canonical.js';
import { entryHash, GENESIS, Ledger, type LedgerEntry, type LedgerKind } from '../storage/ledger.js';
import { manifestsOf, writeManifest, type Manifest } from '../storage/manifest.js';
import { safeExists, safeReaddir } from '../storage/safe-path.js';
import type { WorkspacePaths } from '../storage/paths.js';
import { pointerDates, pointerPath, readPointer, writePointer, type CurrentPointer } from '../storage/pointers.js';
import { runsFrom, scanManifests, type ManifestEntry, type RunsFilter, type RunsRead } from '../storage/runs.js';
import { StateFileError, type StateFileProblem } from '../storage/state-file.js';
import { ArtifactStore, keyOfRow, type Conflict } from '../storage/store/artifact-store.js';
import { rowsByKey } from '../storage/store/plain-lines.js';
import { MetaspnError } from '../guard/errors.js';
import { collectIfGrown } from '../runtime/memory.js';
import type { RunLockFence } from '../guard/run-lock.js';
import type { RowText, StoredRow } from './types.js';
import { storeFileOf } from './bundled.js';

/** What a put did: rows written, rows already present with the same content, and conflicts. */
export interface RowPutResult {
  written: number;
  present: number;
  /** Ids already stored with other content: nothing of this put was written. */
  conflicts: Conflict[];
}

/**
 * The rows of one step, append-only and content-addressed: a row whose id exists with the same
 * content is not written again; with other content the whole put writes nothing and reports the
 * conflict (corruption or non-determinism: the runner exits 30).
 */
export interface RowStore {
  /** Where the rows live, for manifests (a path relative to the workspace, or a table name). */
  readonly location: string;
  put(rows: readonly StoredRow[]): Promise<RowPutResult>;
  /**
   * Puts rows already in their stored form (the same rules as `put`): a pipeline whose rows follow
   * a spec of their own (Season 1) decides their text and identity itself.
   */
  putTexts(rows: readonly RowText[]): Promise<RowPutResult>;
  /** The rows of a partition written under an identity, in key order. */
  rows(partition: string, identity: string): Promise<StoredRow[]>;
  /**
   * The same rows in the same key order, `size` at a time: a reader holds one page, not every row
   * (a 100k-row step). Optional: a store without it is read whole by `rows` and paged from there
   * ({@link rowPages}).
   */
  pages?(partition: string, identity: string, size: number): AsyncIterable<StoredRow[]>;
  /** The stored texts of a partition's rows under an identity, with their ids, in the store's order (the order `store export` writes). */
  texts(partition: string, identity: string): Promise<{ id: string; text: string }[]>;
  /** Which of `rows` are stored with other content (read only: nothing is written). */
  conflicts(rows: readonly RowText[]): Promise<Conflict[]>;
  /**
   * The rows of (partition, identity) written since its last seal take their final place in the
   * store's order: after every row sealed before them, in the order of `order` (ids; rows it does
   * not name follow in write order). A step seals its output when it ends, so a store whose tasks
   * commit in any order (a database, workers on many hosts) reads back in the order a run on one
   * machine appends it. The file and memory stores append rows where they commit: a no-op there.
   */
  seal(partition: string, identity: string, order?: readonly string[]): Promise<void>;
  /** How many rows, and sha256 over their texts in id order (stable however the file grows). */
  digest(partition: string, identity: string): Promise<{ rows: number; sha256: string }>;
  /**
   * Lets go of what the store keeps in memory to read faster (the file store: its index of every
   * row of a date), to be read again when next needed: a run calls it once a step's rows are
   * written and read by the steps after it. Optional; nothing is lost either way.
   */
  release?(): Promise<void>;
  close(): Promise<void>;
}

/** Manifests: one per step of a run, written whole or not at all. */
export interface ManifestStore {
  /** Writes (or replaces) the manifest of (run, step, partition); returns where (relative to the workspace). */
  write(m: Manifest): Promise<string>;
  /** Every manifest of a pipeline's step and partition (any run), oldest first. */
  list(pipeline: string, step: string, partition: string): Promise<Manifest[]>;
  /** Whether a manifest of these steps, of any partition, carries this run id (any pipeline: run ids name folders). */
  hasRun(runId: string, steps: readonly string[]): Promise<boolean>;
  /**
   * Every manifest that reads back, of one partition and/or pipeline when given, with where it is
   * (the file backend: its absolute path); one that does not read back is left out and named in
   * `problems`.
   * The run records (runs list, show, retry) are made from it ({@link readRunRecords}).
   */
  scan(filter?: { date?: string; pipeline?: string }): Promise<{ manifests: ManifestEntry[]; problems: StateFileProblem[] }>;
}

/** Current pointers: which run is published for a partition. */
export interface PointerStore {
  read(pipeline: string, partition: string): Promise<CurrentPointer | null>;
  /** Replaces the partition's pointer atomically. */
  write(ptr: CurrentPointer): Promise<void>;
  /** Partitions with a pointer, ascending. */
  partitions(pipeline: string): Promise<string[]>;
  /** Where the partition's pointer is, as a run's report names it (a path relative to the workspace on files). */
  location(pipeline: string, partition: string): string;
}

/** The append-only, hash-chained ledger of publishes, restatements and rollbacks. */
export interface LedgerStore {
  append(kind: LedgerKind, detail: Record<string, unknown>, runId?: string): Promise<LedgerEntry>;
}

/** A ledger entry as a publish writes it. */
export interface PublishEntry {
  kind: LedgerKind;
  detail: Record<string, unknown>;
  runId?: string;
}

/** The stores a pipeline runner works with. */
export interface PipelineStores {
  rows(pipeline: string, step: string): RowStore;
  manifests: ManifestStore;
  pointers: PointerStore;
  ledger: LedgerStore;
  /**
   * A publish: the ledger entry, then the partition's pointer replaced by `ptr`, inside the run
   * lock's fence when given (a holder that lost its lock writes neither: RunLockLostError, 30).
   * The file backend appends the entry (durable) and then replaces the pointer atomically; a
   * database writes both in one transaction. Returns the ledger entry written.
   */
  publish(ptr: CurrentPointer, entry: PublishEntry, fence?: RunLockFence): Promise<LedgerEntry>;
  close(): Promise<void>;
}

/** A publish as two writes, the entry first (the file and memory backends). */
async function publishInOrder(stores: Pick<PipelineStores, 'ledger' | 'pointers'>, ptr: CurrentPointer, entry: PublishEntry, fence?: RunLockFence): Promise<LedgerEntry> {
  const write = async (): Promise<LedgerEntry> => {
    const e = await stores.ledger.append(entry.kind, entry.detail, entry.runId);
    await stores.pointers.write(ptr);
    return e;
  };
  return fence ? fence.whileHeld(write) : write();
}

function sortRows(rows: StoredRow[]): StoredRow[] {
  return rows.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** A macrotask turn: timers (lease renewals, timeouts) run between two pages of a long read. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * The rows of (partition, identity) in key order, `size` at a time, from whichever store holds
 * them: its own `pages` when it has one, else `rows` read whole and sliced. Each page after the
 * first is handed over on a new macrotask, so a handler reading 100k rows lets the worker renew
 * its lease between pages.
 */
export async function* rowPages(store: RowStore, partition: string, identity: string, size: number): AsyncGenerator<StoredRow[]> {
  let first = true;
  const source: AsyncIterable<StoredRow[]> = store.pages ? store.pages(partition, identity, size) : sliced(await store.rows(partition, identity), size);
  for await (const page of source) {
    if (!first) {
      await turn();
      collectIfGrown();
    }
    first = false;
    yield page;
  }
}

async function* sliced(rows: StoredRow[], size: number): AsyncGenerator<StoredRow[]> {
  for (let i = 0; i < rows.length; i += size) yield rows.slice(i, i + size);
}

/** Ids read to learn their rows' keys, at once: a slice of a step's rows, not all of them. */
const KEY_SLICE = 8192;
/** Key orders a file store keeps (a step's rows are read by several steps after it). */
const KEY_ORDERS = 8;

/** The workspace on disk: store/<pipeline>.<step>.jsonl, manifests/, manifests/current/, ledger. */
export class FileStores implements PipelineStores {
  private readonly open = new Map<string, FileRowStore>();
  readonly manifests: ManifestStore;
  readonly pointers: PointerStore;
  readonly ledger: LedgerStore;

  /**
   * @param readOnly rows are read straight from their files, without the store's lock or index
   *   (nothing is written, not even an index catching up): what `doctor` reads through. `put`
   *   then throws. Default false.
   */
  constructor(
    private readonly ws: WorkspacePaths,
    private readonly warn: (msg: string, details: Record<string, unknown>) => void = () => undefined,
    private readonly readOnly = false,
  ) {
    this.manifests = {
      write: (m) => Promise.resolve(relative(ws.root, writeManifest(ws, m))),
      list: (pipeline, step, partition) =>
        Promise.resolve(
          manifestsOf(ws, step, partition)
            .filter((m) => m.pipeline === pipeline)
            .sort((a, b) => a.started_at.localeCompare(b.started_at)),
        ),
      hasRun: (runId, steps) => Promise.resolve(steps.some((s) => safeReaddir(join(ws.manifests, s)).some((d) => safeExists(join(ws.manifests, s, d, `run=${runId}`))))),
      scan: (filter = {}) => Promise.resolve(scanManifests(ws, filter)),
    };
    this.pointers = {
      read: (pipeline, partition) => Promise.resolve(readPointer(ws, pipeline, partition)),
      write: (ptr) => Promise.resolve(writePointer(ws, ptr)),
      partitions: (pipeline) => Promise.resolve(pointerDates(ws, pipeline)),
      location: (pipeline, partition) => relative(ws.root, pointerPath(ws, pipeline, partition)),
    };
    const ledger = new Ledger(ws, warn);
    this.ledger = { append: (kind, detail, runId) => ledger.append(kind, detail, runId) };
  }

  rows(pipeline: string, step: string): RowStore {
    const k = `${pipeline}.${step}`;
    let s = this.open.get(k);
    if (this.readOnly) return new ReadOnlyFileRowStore(this.ws, join(this.ws.store, storeFileOf(pipeline, step)));
    if (!s) {
      s = new FileRowStore(this.ws, join(this.ws.store, storeFileOf(pipeline, step)), this.warn);
      this.open.set(k, s);
    }
    return s;
  }

  publish(ptr: CurrentPointer, entry: PublishEntry, fence?: RunLockFence): Promise<LedgerEntry> {
    return publishInOrder(this, ptr, entry, fence);
  }

  async close(): Promise<void> {
    await Promise.all([...this.open.values()].map((s) => s.close()));
    this.open.clear();
  }
}

/** A step's rows read straight from the file (no lock, no index, nothing written): for readers such as doctor. */
class ReadOnlyFileRowStore implements RowStore {
  readonly location: string;

  constructor(
    ws: WorkspacePaths,
    private readonly path: string,
  ) {
    this.location = relative(ws.root, path);
  }

  put(): Promise<RowPutResult> {
    return Promise.reject(new MetaspnError('INTERNAL_ERROR', `${this.location} is open read-only`));
  }

  putTexts(): Promise<RowPutResult> {
    return this.put();
  }

  /** The texts of (partition, identity), one per id (the first, as the store keeps it), in file order. */
  async texts(partition: string, identity: string): Promise<{ id: string; text: string }[]> {
    const key = `${partition}|${identity}`;
    // Keyed as the store's index keys them (keyOfRow: a step's identity, else Season 1's params).
    const found = rowsByKey(this.path, new Set([key]), (r) => `${r.date as string}|${keyOfRow(r)}`).get(key) ?? [];
    const byId = new Map<string, string>();
    for (const t of found) if (!byId.has(t.id)) byId.set(t.id, t.text);
    return [...byId].map(([id, text]) => ({ id, text }));
  }

  async conflicts(rows: readonly RowText[]): Promise<Conflict[]> {
    return conflictsIn(rows, (partition, identity) => this.texts(partition, identity));
  }

  seal(): Promise<void> {
    return Promise.resolve();
  }

  private async byId(partition: string, identity: string): Promise<{ id: string; text: string }[]> {
    return (await this.texts(partition, identity)).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async rows(partition: string, identity: string): Promise<StoredRow[]> {
    return sortRows((await this.byId(partition, identity)).map((t) => JSON.parse(t.text) as StoredRow));
  }

  async digest(partition: string, identity: string): Promise<{ rows: number; sha256: string }> {
    const texts = await this.byId(partition, identity);
    const h = createHash('sha256');
    for (const t of texts) h.update(`${t.text}\n`);
    return { rows: texts.length, sha256: h.digest('hex') };
  }

  async close(): Promise<void> {}
}

class FileRowStore implements RowStore {
  readonly location: string;
  private store: ArtifactStore;
  /** Calls under way on `store` (it is swapped for a fresh one only when there are none). */
  private busy = 0;
  private readonly orders = new Map<string, { offsets: Float64Array; lengths: Uint32Array }>();

  constructor(
    ws: WorkspacePaths,
    private readonly path: string,
    private readonly warn: (msg: string, details: Record<string, unknown>) => void,
  ) {
    this.location = relative(ws.root, path);
    this.store = new ArtifactStore(path, warn);
  }

  private async on<T>(fn: (s: ArtifactStore) => Promise<T>): Promise<T> {
    this.busy++;
    try {
      return await fn(this.store);
    } finally {
      this.busy--;
    }
  }

  put(rows: readonly StoredRow[]): Promise<RowPutResult> {
    return this.putTexts(rows.map(rowTextOf));
  }

  putTexts(rows: readonly RowText[]): Promise<RowPutResult> {
    return this.on((s) => s.put(rows));
  }

  async rows(partition: string, identity: string): Promise<StoredRow[]> {
    return sortRows((await this.on((s) => s.rowsFor(partition, identity))) as StoredRow[]);
  }

  /**
   * Pages in key order holding one page of rows at a time: where each row is in the file, in key
   * order, is learnt once (rows read a slice at a time for their keys) and kept for the next
   * reader of the same rows while their number is unchanged (rows of an identity are only ever
   * added); the store's index of the date, which that needs, is let go at once (a reader of a
   * 100k-row step then holds 12 bytes a row, not 250).
   */
  async *pages(partition: string, identity: string, size: number): AsyncGenerator<StoredRow[]> {
    const at = await this.keyOrder(partition, identity);
    for (let i = 0; i < at.offsets.length; i += size) {
      const ranges: { offset: number; length: number }[] = [];
      for (let j = i; j < Math.min(i + size, at.offsets.length); j++) ranges.push({ offset: at.offsets[j]!, length: at.lengths[j]! });
      const texts = await this.on((s) => s.textsAt(ranges));
      yield texts.map((t) => JSON.parse(t) as StoredRow);
    }
  }

  private async keyOrder(partition: string, identity: string): Promise<{ offsets: Float64Array; lengths: Uint32Array }> {
    const ranges = await this.on((s) => s.rangesFor(partition, identity));
    await this.on((s) => s.forget(partition));
    const k = `${partition}|${identity}`;
    const known = this.orders.get(k);
    if (known && known.offsets.length === ranges.length) return known;
    const keys: string[] = [];
    for (let i = 0; i < ranges.length; i += KEY_SLICE) {
      for (const t of await this.on((s) => s.textsAt(ranges.slice(i, i + KEY_SLICE)))) keys.push((JSON.parse(t) as StoredRow).key);
    }
    const idx = keys.map((_, i) => i).sort((a, b) => (keys[a]! < keys[b]! ? -1 : keys[a]! > keys[b]! ? 1 : 0));
    const order = { offsets: Float64Array.from(idx, (i) => ranges[i]!.offset), lengths: Uint32Array.from(idx, (i) => ranges[i]!.length) };
    this.orders.delete(k);
    this.orders.set(k, order);
    if (this.orders.size > KEY_ORDERS) this.orders.delete(this.orders.keys().next().value!);
    return order;
  }

  texts(partition: string, identity: string): Promise<{ id: string; text: string }[]> {
    return this.on((s) => s.textsFor(partition, identity));
  }

  conflicts(rows: readonly RowText[]): Promise<Conflict[]> {
    return conflictsIn(rows, (partition, identity) => this.texts(partition, identity));
  }

  seal(): Promise<void> {
    return Promise.resolve();
  }

  digest(partition: string, identity: string): Promise<{ rows: number; sha256: string }> {
    return this.on((s) => s.digest(partition, identity));
  }

  /**
   * A fresh store in place of this one, which is closed: its index of the dates it read (about
   * 250 bytes a row: 25 MB for a 100k-row step) is read again from the index files when next
   * needed. Not while a call is under way (then it keeps it).
   */
  async release(): Promise<void> {
    if (this.busy > 0) return;
    const old = this.store;
    this.store = new ArtifactStore(this.path, this.warn);
    await old.close();
  }

  close(): Promise<void> {
    return this.store.close();
  }
}

/**
 * Everything in memory, for unit tests of pipelines and of the runner. Same rules as the files:
 * content-addressed rows with conflicts, manifests by step and partition, pointers, a ledger.
 */
export class MemoryStores implements PipelineStores {
  private readonly stores = new Map<string, MemoryRowStore>();
  readonly manifestList: Manifest[] = [];
  readonly pointerMap = new Map<string, CurrentPointer>();
  readonly entries: LedgerEntry[] = [];
  readonly manifests: ManifestStore = {
    write: (m) => {
      const i = this.manifestList.findIndex((x) => x.run_id === m.run_id && x.step === m.step && x.date === m.date);
      if (i >= 0) this.manifestList[i] = structuredClone(m);
      else this.manifestList.push(structuredClone(m));
      return Promise.resolve(`memory:manifests/${m.step}/${m.date}/${m.run_id}`);
    },
    list: (pipeline, step, partition) =>
      Promise.resolve(
        this.manifestList
          .filter((m) => m.pipeline === pipeline && m.step === step && m.date === partition)
          .sort((a, b) => a.started_at.localeCompare(b.started_at))
          .map((m) => structuredClone(m)),
      ),
    hasRun: (runId, steps) => Promise.resolve(this.manifestList.some((m) => m.run_id === runId && steps.includes(m.step))),
    scan: (filter = {}) =>
      Promise.resolve({
        problems: [],
        manifests: this.manifestList
          .filter((m) => (!filter.date || m.date === filter.date) && (!filter.pipeline || m.pipeline === filter.pipeline))
          .map((m) => ({ m: structuredClone(m), path: `memory:manifests/${m.step}/${m.date}/${m.run_id}` })),
      }),
  };
  readonly pointers: PointerStore = {
    read: (pipeline, partition) => Promise.resolve(structuredClone(this.pointerMap.get(`${pipeline}|${partition}`) ?? null)),
    write: (ptr) => {
      this.pointerMap.set(`${ptr.pipeline}|${ptr.date}`, structuredClone(ptr));
      return Promise.resolve();
    },
    partitions: (pipeline) =>
      Promise.resolve(
        [...this.pointerMap.values()]
          .filter((p) => p.pipeline === pipeline)
          .map((p) => p.date)
          .sort(),
      ),
    location: (pipeline, partition) => `memory:pointers/${pipeline}/date=${partition}`,
  };
  readonly ledger: LedgerStore = {
    append: (kind, detail, runId) => {
      const prev = this.entries[this.entries.length - 1];
      const body: Omit<LedgerEntry, 'hash'> = {
        seq: (prev?.seq ?? 0) + 1,
        at: new Date().toISOString(),
        kind,
        ...(runId ? { run_id: runId } : {}),
        detail: structuredClone(detail),
        prev_hash: prev?.hash ?? GENESIS,
      };
      const entry: LedgerEntry = { ...body, hash: entryHash(body) };
      this.entries.push(entry);
      return Promise.resolve(structuredClone(entry));
    },
  };

  rows(pipeline: string, step: string): RowStore {
    const k = `${pipeline}.${step}`;
    let s = this.stores.get(k);
    if (!s) {
      s = new MemoryRowStore(`memory:${k}`);
      this.stores.set(k, s);
    }
    return s;
  }

  publish(ptr: CurrentPointer, entry: PublishEntry, fence?: RunLockFence): Promise<LedgerEntry> {
    return publishInOrder(this, ptr, entry, fence);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

class MemoryRowStore implements RowStore {
  private readonly stored = new Map<string, { partition: string; identity: string; text: string }>();
  constructor(readonly location: string) {}

  put(rows: readonly StoredRow[]): Promise<RowPutResult> {
    return this.putTexts(rows.map(rowTextOf));
  }

  putTexts(rows: readonly RowText[]): Promise<RowPutResult> {
    const conflicts: Conflict[] = [];
    const fresh = new Map<string, { partition: string; identity: string; text: string }>();
    let present = 0;
    for (const r of rows) {
      const text = r.text;
      const had = this.stored.get(r.id) ?? fresh.get(r.id);
      if (had === undefined) fresh.set(r.id, { partition: r.date, identity: r.identity, text });
      else if (had.text === text) present++;
      else conflicts.push({ id: r.id, existing: had.text, incoming: text });
    }
    if (conflicts.length) return Promise.resolve({ written: 0, present: 0, conflicts });
    for (const [id, v] of fresh) this.stored.set(id, v);
    return Promise.resolve({ written: fresh.size, present, conflicts });
  }

  rows(partition: string, identity: string): Promise<StoredRow[]> {
    return this.texts(partition, identity).then((ts) => sortRows(ts.map((t) => JSON.parse(t.text) as StoredRow)));
  }

  texts(partition: string, identity: string): Promise<{ id: string; text: string }[]> {
    const out: { id: string; text: string }[] = [];
    for (const [id, v] of this.stored) if (v.partition === partition && v.identity === identity) out.push({ id, text: v.text });
    return Promise.resolve(out);
  }

  conflicts(rows: readonly RowText[]): Promise<Conflict[]> {
    return Promise.resolve(
      rows.flatMap((r) => {
        const had = this.stored.get(r.id);
        return had && had.text !== r.text ? [{ id: r.id, existing: had.text, incoming: r.text }] : [];
      }),
    );
  }

  seal(): Promise<void> {
    return Promise.resolve();
  }

  digest(partition: string, identity: string): Promise<{ rows: number; sha256: string }> {
    const ids = [...this.stored.entries()].filter(([, v]) => v.partition === partition && v.identity === identity).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const h = ids.reduce((acc, [, v]) => acc.update(`${v.text}\n`), createHash('sha256'));
    return Promise.resolve({ rows: ids.length, sha256: h.digest('hex') });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Which of `rows` a store holds with other text, reading each (partition, identity) of them once
 * through `texts`.
 */
export async function conflictsIn(rows: readonly RowText[], texts: (partition: string, identity: string) => Promise<{ id: string; text: string }[]>): Promise<Conflict[]> {
  const groups = new Map<string, RowText[]>();
  for (const r of rows) {
    const k = `${r.date}|${r.identity}`;
    (groups.get(k) ?? groups.set(k, []).get(k)!).push(r);
  }
  const out: Conflict[] = [];
  for (const list of groups.values()) {
    const have = new Map((await texts(list[0]!.date, list[0]!.identity)).map((t) => [t.id, t.text]));
    for (const r of list) {
      const had = have.get(r.id);
      if (had !== undefined && had !== r.text) out.push({ id: r.id, existing: had, incoming: r.text });
    }
  }
  return out;
}

/**
 * The runs the stores' manifests make, newest first, with the partitions' current pointers read
 * through the stores (a pointer that does not read back is named in `problems`, and its runs are
 * not current). The same records `runs list` shows, on any backend.
 */
export async function readRunRecords(stores: PipelineStores, filter: RunsFilter = {}): Promise<RunsRead> {
  const { manifests, problems } = await stores.manifests.scan(filter);
  const pointers = new Map<string, CurrentPointer | null>();
  for (const { m } of manifests) {
    const key = `${m.pipeline}|${m.date}`;
    if (pointers.has(key)) continue;
    try {
      pointers.set(key, await stores.pointers.read(m.pipeline, m.date));
    } catch (err) {
      if (!(err instanceof StateFileError)) throw err;
      problems.push({ path: err.path, kind: 'pointer', error: err.message.slice(err.path.length + 2) });
      pointers.set(key, null);
    }
  }
  return { runs: runsFrom(manifests, (p, d) => pointers.get(`${p}|${d}`) ?? null, filter), problems };
}
