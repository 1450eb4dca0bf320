/**
 * Everything the pipeline runner persists, on PostgreSQL: the rows of each step, manifests,
 * current pointers and the ledger (the tables of migration 3, schema-v3.ts). The same behaviour
 * as the file backend's `FileStores` (one conformance suite: test/pipeline/stores-conformance.ts),
 * with what one database adds:
 * - a put is one transaction: a conflicting row rolls all of it back;
 * - ledger appends from any number of processes and hosts serialise on one row lock
 *   (`ledger_head`), so seq and prev_hash stay gapless and unique;
 * - a publish (ledger entry plus pointer) commits in one transaction ({@link PgStores.publish}),
 *   fenced by the run lock when given one: a holder that lost its lock writes neither.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { MetaspnError } from '../../guard/errors.js';
import type { RunLockFence } from '../../guard/run-lock.js';
import type { LedgerStore, ManifestStore, PipelineStores, PointerStore, RowPutResult, RowStore } from '../../pipeline/stores.js';
import { rowTextOf } from '../../pipeline/canonical.js';
import type { RowText, StoredRow } from '../../pipeline/types.js';
import type { Conflict } from '../../storage/store/artifact-store.js';
import { entryHash, GENESIS, type LedgerEntry, type LedgerKind, type LedgerProblem, type LedgerRead } from '../../storage/ledger.js';
import type { Manifest } from '../../storage/manifest.js';
import { POINTER_REPAIR_HINT, type CurrentPointer } from '../../storage/pointers.js';
import type { ManifestEntry } from '../../storage/runs.js';
import { StateFileError, type StateFileProblem } from '../../storage/state-file.js';
import { inTransaction, pgError, sharedPool, type PgPool, type PoolLease } from './connection.js';
import { putRowsOn } from './effects.js';
import { ensureSchema, quoteSchema } from './migrations.js';
import { DEFAULT_POOL_MAX, DEFAULT_SCHEMA, type PgSetting } from './setting.js';

/** Anything statements can run on: a pool, a pooled connection, or a lock session. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

/**
 * A transaction fenced by a run lock (PgRunLock in run-locks.ts implements it): `fn` runs inside a
 * transaction on the lock's own session that holds the lock's row (nobody can take the lock over
 * meanwhile), and what `fn` writes commits only while the lock is this holder's.
 * @throws RunLockLostError (30) without calling `fn` when the lock is no longer held.
 */
export interface PgTxFence {
  whileHeldTx<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
}

/** Options of {@link PgStores}. */
export interface PgStoresOptions {
  /** The database and schema; `url` is used unless `pool` is given. */
  setting: Pick<PgSetting, 'url' | 'source'> & Partial<Pick<PgSetting, 'schema' | 'pool_max'>>;
  /** A pool to use instead of the process's shared one (the stores do not end a pool they were given). */
  pool?: PgPool;
}

/** Rows per round trip of an export. */
const EXPORT_CHUNK = 10_000;

const byKey = (a: StoredRow, b: StoredRow): number => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
const byId = <T extends { id: string }>(a: T, b: T): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** Thrown inside a put's transaction to roll it back; never leaves this module. */
class PutConflict extends Error {
  constructor(readonly result: RowPutResult) {
    super('conflict');
  }
}

/**
 * The pipeline stores of one schema. Nothing connects until the first statement, which migrates
 * the schema when it is behind (a newer one is refused, exit 30). Driver errors become
 * MetaspnErrors: 11 unreachable, 20 login or privileges refused, 50 anything else (connection.ts).
 * Locations and manifest references name the table, e.g. `pg:metaspn.artifact/demo.load`.
 */
export class PgStores implements PipelineStores {
  readonly manifests: ManifestStore;
  readonly pointers: PointerStore;
  readonly ledger: LedgerStore;
  /** The quoted schema, for statements. */
  readonly #s: string;
  readonly #schema: string;
  readonly #pool: PgPool;
  readonly #lease: PoolLease | null;
  readonly #setting: PgStoresOptions['setting'] & { schema: string };
  #ready: Promise<void> | null = null;
  #closed = false;

  constructor(opts: PgStoresOptions) {
    this.#schema = opts.setting.schema ?? DEFAULT_SCHEMA;
    this.#s = quoteSchema(this.#schema);
    this.#setting = { ...opts.setting, schema: this.#schema };
    if (opts.pool) {
      this.#pool = opts.pool;
      this.#lease = null;
    } else {
      this.#lease = sharedPool({ url: opts.setting.url, pool_max: opts.setting.pool_max ?? DEFAULT_POOL_MAX });
      this.#pool = this.#lease.pool;
    }
    const S = this.#s;
    this.manifests = {
      write: (m) =>
        this.#run('writing a manifest', async () => {
          await this.#pool.query(
            `INSERT INTO ${S}.manifest (pipeline, step, date, run_id, started_at, body) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (pipeline, step, date, run_id) DO UPDATE SET started_at = excluded.started_at, body = excluded.body, written_at = now()`,
            [m.pipeline, m.step, m.date, m.run_id, m.started_at, JSON.stringify(m)],
          );
          return this.manifestRef(m);
        }),
      list: (pipeline, step, partition) =>
        this.#run('reading manifests', async () => {
          const r = await this.#pool.query<{ body: string }>(`SELECT body FROM ${S}.manifest WHERE pipeline = $1 AND step = $2 AND date = $3 ORDER BY started_at, run_id`, [pipeline, step, partition]);
          return r.rows.map((x) => JSON.parse(x.body) as Manifest).sort((a, b) => a.started_at.localeCompare(b.started_at));
        }),
      hasRun: (runId, steps) =>
        this.#run('reading manifests', async () => {
          const r = await this.#pool.query(`SELECT 1 FROM ${S}.manifest WHERE run_id = $1 AND step = ANY($2::text[]) LIMIT 1`, [runId, [...steps]]);
          return r.rowCount === 1;
        }),
      scan: (filter = {}) =>
        this.#run('reading manifests', async () => {
          const r = await this.#pool.query<{ pipeline: string; step: string; date: string; run_id: string; body: string }>(
            `SELECT pipeline, step, date, run_id, body FROM ${S}.manifest WHERE ($1::text IS NULL OR date = $1) AND ($2::text IS NULL OR pipeline = $2) ORDER BY step, date, run_id`,
            [filter.date ?? null, filter.pipeline ?? null],
          );
          const manifests: ManifestEntry[] = [];
          const problems: StateFileProblem[] = [];
          for (const x of r.rows) {
            const path = this.manifestRef(x);
            try {
              manifests.push({ m: JSON.parse(x.body) as Manifest, path });
            } catch (err) {
              problems.push({ path, kind: 'manifest', error: `not valid JSON (${(err as Error).message})` });
            }
          }
          return { manifests, problems };
        }),
    };
    this.pointers = {
      read: (pipeline, partition) =>
        this.#run('reading a pointer', async () => {
          const r = await this.#pool.query<{ body: string }>(`SELECT body FROM ${S}.current_pointer WHERE pipeline = $1 AND date = $2`, [pipeline, partition]);
          return r.rows[0] ? this.#pointerOf(r.rows[0].body, pipeline, partition) : null;
        }),
      write: (ptr) =>
        this.#run('writing a pointer', async () => {
          await this.#pool.query(this.#upsertPointer(), [ptr.pipeline, ptr.date, ptr.run_id, JSON.stringify(ptr)]);
        }),
      partitions: (pipeline) =>
        this.#run('reading pointers', async () => {
          const r = await this.#pool.query<{ date: string }>(`SELECT date FROM ${S}.current_pointer WHERE pipeline = $1 ORDER BY date`, [pipeline]);
          return r.rows.map((x) => x.date);
        }),
      location: (pipeline, partition) => `pg:${this.#schema}.current_pointer/${pipeline}/date=${partition}`,
    };
    this.ledger = {
      append: (kind, detail, runId) => this.#run('appending to the ledger', () => inTransaction(this.#pool, (c) => this.#append(c, kind, detail, runId))),
    };
  }

  /** The schema these stores use. */
  get schema(): string {
    return this.#schema;
  }

  /** Where a manifest is, for reports: `pg:<schema>.manifest/<pipeline>/<step>/date=<D>/run=<R>`. */
  manifestRef(m: Pick<Manifest, 'pipeline' | 'step' | 'date' | 'run_id'>): string {
    return `pg:${this.#schema}.manifest/${m.pipeline}/${m.step}/date=${m.date}/run=${m.run_id}`;
  }

  rows(pipeline: string, step: string): RowStore {
    return new PgRowStore(this, `${pipeline}.${step}`);
  }

  /**
   * A publish in one transaction: the ledger entry (`kind`, `detail`, `runId`) is appended and the
   * partition's pointer replaced by `ptr`, both or neither. With `fence` (the run lock,
   * PgRunLock), the transaction runs on the lock's session while it holds the lock's row: a holder
   * that lost its lock writes nothing (RunLockLostError, 30), and nobody takes the lock over until
   * it committed. The fence must be a lock of the same database and schema.
   * @returns the ledger entry written.
   * @throws RunLockLostError (30) from the fence; the mapped driver error (11, 20, 50).
   */
  async publish(ptr: CurrentPointer, entry: { kind: LedgerKind; detail: Record<string, unknown>; runId?: string }, fence?: PgTxFence | RunLockFence): Promise<LedgerEntry> {
    const moves = [{ pipeline: ptr.pipeline, date: ptr.date, to: ptr }];
    if (fence && !('whileHeldTx' in fence)) {
      // A run lock's fence: the PostgreSQL lock it carries fences the transaction itself; a lock
      // of another backend fences it from outside.
      const t = fence.transactional as Partial<PgTxFence> | undefined;
      if (typeof t?.whileHeldTx === 'function') return this.movePointers(entry, moves, t as PgTxFence);
      return fence.whileHeld(() => this.movePointers(entry, moves));
    }
    return this.movePointers(entry, moves, fence);
  }

  /**
   * A ledger entry and any number of pointer moves in one transaction (a rollback: each partition
   * set to `to`, or its pointer removed when `to` is null), fenced by the run lock when given, as
   * {@link publish}.
   * @returns the ledger entry written.
   * @throws RunLockLostError (30) from the fence; the mapped driver error (11, 20, 50).
   */
  async movePointers(
    entry: { kind: LedgerKind; detail: Record<string, unknown>; runId?: string },
    moves: readonly { pipeline: string; date: string; to: CurrentPointer | null }[],
    fence?: PgTxFence,
  ): Promise<LedgerEntry> {
    const work = async (c: Queryable): Promise<LedgerEntry> => {
      const e = await this.#append(c, entry.kind, entry.detail, entry.runId);
      for (const m of moves) {
        if (m.to) await c.query(this.#upsertPointer(), [m.pipeline, m.date, m.to.run_id, JSON.stringify(m.to)]);
        else await c.query(`DELETE FROM ${this.#s}.current_pointer WHERE pipeline = $1 AND date = $2`, [m.pipeline, m.date]);
      }
      return e;
    };
    if (fence) {
      await this.ensureReady();
      try {
        return await fence.whileHeldTx(work);
      } catch (err) {
        throw pgError(err, this.#setting, 'publishing');
      }
    }
    return this.#run('publishing', () => inTransaction(this.#pool, work));
  }

  /**
   * The whole ledger, verified as `readLedger` verifies ledger.jsonl: each entry's hash, its link
   * to the one before, and seq from 1 without gaps (`line` in a problem is the seq's position).
   */
  async readLedger(): Promise<LedgerRead> {
    return this.#run('reading the ledger', async () => {
      const r = await this.#pool.query<{ body: string }>(`SELECT body FROM ${this.#s}.ledger ORDER BY seq`);
      const entries: LedgerEntry[] = [];
      const problems: LedgerProblem[] = [];
      let prev = GENESIS;
      let seq = 0;
      r.rows.forEach((row, i) => {
        const n = i + 1;
        let e: LedgerEntry;
        try {
          e = JSON.parse(row.body) as LedgerEntry;
        } catch {
          problems.push({ line: n, rule: 'not valid JSON' });
          return;
        }
        const { hash, ...rest } = e;
        if (hash !== entryHash(rest)) problems.push({ line: n, rule: `hash does not match the entry (seq ${e.seq}): it was edited` });
        if (e.prev_hash !== prev) problems.push({ line: n, rule: `prev_hash does not link to the entry before (seq ${e.seq}): an entry was edited, removed or inserted` });
        if (e.seq !== seq + 1) problems.push({ line: n, rule: `seq ${e.seq} follows ${seq}` });
        prev = hash;
        seq = e.seq;
        entries.push(e);
      });
      return { entries, problems };
    });
  }

  /**
   * The stored lines of a step's rows (each the row's exact text plus `\n`), in write order, of
   * one partition when `date` is given: the bytes a file backend's `store/<pipeline>.<step>.jsonl`
   * holds for the same puts. Read in slices of 10k rows; `onLines` gets each slice.
   */
  async exportRows(pipeline: string, step: string, onLines: (lines: string) => void | Promise<void>, date?: string): Promise<number> {
    return this.#run('exporting rows', async () => {
      let after = 0n;
      let n = 0;
      for (;;) {
        const r = await this.#pool.query<{ at: string; body: string }>(
          `SELECT seq::text AS at, body FROM ${this.#s}.artifact WHERE store = $1 AND seq > $2 AND ($3::text IS NULL OR date = $3) ORDER BY seq LIMIT ${EXPORT_CHUNK}`,
          [`${pipeline}.${step}`, after.toString(), date ?? null],
        );
        if (r.rows.length === 0) return n;
        n += r.rows.length;
        after = BigInt(r.rows[r.rows.length - 1]!.at);
        await onLines(r.rows.map((x) => `${x.body}\n`).join(''));
      }
    });
  }

  /** The steps (`<pipeline>.<step>`) that have rows, sorted. */
  async storeNames(): Promise<string[]> {
    return this.#run('listing stores', async () => (await this.#pool.query<{ store: string }>(`SELECT DISTINCT store FROM ${this.#s}.artifact ORDER BY store`)).rows.map((x) => x.store));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#lease?.release();
  }

  /** The schema is migrated (once per pool); a failure is not kept, so the next call tries again. */
  ensureReady(): Promise<void> {
    if (this.#closed) return Promise.reject(new MetaspnError('INTERNAL_ERROR', 'pipeline stores are closed'));
    this.#ready ??= ensureSchema(this.#pool, this.#setting);
    const p = this.#ready;
    p.catch(() => {
      if (this.#ready === p) this.#ready = null;
    });
    return p;
  }

  /** @internal Runs `f` on a ready schema, mapping driver errors. */
  async run<T>(what: string, f: (pool: PgPool, s: string) => Promise<T>): Promise<T> {
    return this.#run(what, () => f(this.#pool, this.#s));
  }

  async #run<T>(what: string, f: () => Promise<T>): Promise<T> {
    await this.ensureReady();
    try {
      return await f();
    } catch (err) {
      throw pgError(err, this.#setting, what);
    }
  }

  #upsertPointer(): string {
    return `INSERT INTO ${this.#s}.current_pointer (pipeline, date, run_id, body) VALUES ($1, $2, $3, $4)
            ON CONFLICT (pipeline, date) DO UPDATE SET run_id = excluded.run_id, body = excluded.body, written_at = now()`;
  }

  #pointerOf(body: string, pipeline: string, date: string): CurrentPointer {
    const where = `pg:${this.#schema}.current_pointer/${pipeline}/date=${date}`;
    let p: CurrentPointer;
    try {
      p = JSON.parse(body) as CurrentPointer;
    } catch {
      throw new StateFileError(where, 'not valid JSON', POINTER_REPAIR_HINT);
    }
    if (p?.pipeline !== pipeline || p.date !== date) throw new StateFileError(where, `names ${String(p?.pipeline)} ${String(p?.date)}, not ${pipeline} ${date}`, POINTER_REPAIR_HINT);
    return p;
  }

  /** Appends one entry on `c`, which must be inside a transaction: the head's row lock serialises appenders. */
  async #append(c: Queryable, kind: LedgerKind, detail: Record<string, unknown>, runId?: string): Promise<LedgerEntry> {
    const S = this.#s;
    const head = (await c.query<{ seq: string; hash: string }>(`SELECT seq::text AS seq, hash FROM ${S}.ledger_head WHERE one FOR UPDATE`)).rows[0];
    if (!head)
      throw new MetaspnError('STATE_CORRUPT', `PostgreSQL schema ${this.#schema}: the ledger head row is missing`, {
        hint: 'the ledger tables were changed outside metaspn; restore them from a backup',
      });
    const body: Omit<LedgerEntry, 'hash'> = {
      seq: Number(head.seq) + 1,
      at: new Date().toISOString(),
      kind,
      ...(runId ? { run_id: runId } : {}),
      detail,
      prev_hash: head.hash,
    };
    const entry: LedgerEntry = { ...body, hash: entryHash(body) };
    await c.query(`INSERT INTO ${S}.ledger (seq, kind, run_id, at, prev_hash, hash, body) VALUES ($1, $2, $3, $4, $5, $6, $7)`, [
      entry.seq,
      kind,
      runId ?? null,
      entry.at,
      entry.prev_hash,
      entry.hash,
      JSON.stringify(entry),
    ]);
    await c.query(`UPDATE ${S}.ledger_head SET seq = $1, hash = $2 WHERE one`, [entry.seq, entry.hash]);
    // What a reader gets back: the entry as stored (undefined values dropped, as in ledger.jsonl).
    return JSON.parse(JSON.stringify(entry)) as LedgerEntry;
  }
}

/** The rows of one step: `artifact` rows of store `<pipeline>.<step>`. */
class PgRowStore implements RowStore {
  readonly location: string;

  constructor(
    private readonly stores: PgStores,
    private readonly store: string,
  ) {
    this.location = `pg:${stores.schema}.artifact/${store}`;
  }

  put(rows: readonly StoredRow[]): Promise<RowPutResult> {
    return this.putTexts(rows.map(rowTextOf));
  }

  async putTexts(rows: readonly RowText[]): Promise<RowPutResult> {
    if (rows.length === 0) return { written: 0, present: 0, conflicts: [] };
    try {
      return await this.stores.run('writing rows', (pool, S) =>
        inTransaction(pool, async (c) => {
          const r = await putRowsOn(c, S, this.store, rows);
          if (r.conflicts.length) throw new PutConflict({ written: 0, present: 0, conflicts: r.conflicts });
          return r;
        }),
      );
    } catch (err) {
      const c = (err as { cause?: unknown }).cause ?? err;
      if (c instanceof PutConflict) return c.result;
      if (err instanceof PutConflict) return err.result;
      throw err;
    }
  }

  async rows(partition: string, identity: string): Promise<StoredRow[]> {
    const r = await this.stores.run('reading rows', (pool, S) =>
      pool.query<{ body: string }>(`SELECT body FROM ${S}.artifact WHERE store = $1 AND date = $2 AND p = $3 ORDER BY seq`, [this.store, partition, identity]),
    );
    return r.rows.map((x) => JSON.parse(x.body) as StoredRow).sort(byKey);
  }

  async texts(partition: string, identity: string): Promise<{ id: string; text: string }[]> {
    const r = await this.stores.run('reading rows', (pool, S) =>
      pool.query<{ id: string; body: string }>(`SELECT id, body FROM ${S}.artifact WHERE store = $1 AND date = $2 AND p = $3 ORDER BY seq`, [this.store, partition, identity]),
    );
    return r.rows.map((x) => ({ id: x.id, text: x.body }));
  }

  async conflicts(rows: readonly RowText[]): Promise<Conflict[]> {
    if (rows.length === 0) return [];
    const r = await this.stores.run('reading rows', (pool, S) =>
      pool.query<{ id: string; body: string }>(`SELECT id, body FROM ${S}.artifact WHERE store = $1 AND id = ANY($2::text[])`, [this.store, rows.map((x) => x.id)]),
    );
    const had = new Map(r.rows.map((x) => [x.id, x.body]));
    return rows.flatMap((x) => {
      const e = had.get(x.id);
      return e !== undefined && e !== x.text ? [{ id: x.id, existing: e, incoming: x.text }] : [];
    });
  }

  /**
   * In one transaction, under the seal's row lock: the rows of (partition, identity) past its
   * `sealed_to` are taken out and written again at the end of the store (new `seq`), in `order`
   * then in their write order, unless they already are its tail in that order; `sealed_to` moves
   * past them. Their ids, texts and hashes do not change.
   */
  async seal(partition: string, identity: string, order: readonly string[] = []): Promise<void> {
    const key = [this.store, partition, identity];
    await this.stores.run('sealing rows', (pool, S) =>
      inTransaction(pool, async (c) => {
        await c.query(`INSERT INTO ${S}.artifact_seal (store, date, p, sealed_to) VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING`, key);
        const sealedTo = (await c.query<{ to: string }>(`SELECT sealed_to::text AS to FROM ${S}.artifact_seal WHERE store = $1 AND date = $2 AND p = $3 FOR UPDATE`, key)).rows[0]!.to;
        const open = (
          await c.query<{ id: string; h: string; body: string; seq: string }>(
            `SELECT id, h, body, seq::text AS seq FROM ${S}.artifact WHERE store = $1 AND date = $2 AND p = $3 AND seq > $4 ORDER BY seq`,
            [...key, sealedTo],
          )
        ).rows;
        if (open.length === 0) return;
        const rank = new Map(order.map((id, i) => [id, i]));
        const ordered = open.map((x, i) => ({ ...x, i })).sort((a, b) => (rank.get(a.id) ?? order.length + a.i) - (rank.get(b.id) ?? order.length + b.i));
        const first = open[0]!.seq;
        const inPlace =
          ordered.every((x, i) => x.i === i) &&
          !(await c.query(`SELECT 1 FROM ${S}.artifact WHERE store = $1 AND seq > $2 AND NOT (date = $3 AND p = $4) LIMIT 1`, [this.store, first, partition, identity])).rowCount;
        let last = open[open.length - 1]!.seq;
        if (!inPlace) {
          await c.query(`DELETE FROM ${S}.artifact WHERE store = $1 AND date = $2 AND p = $3 AND seq > $4`, [...key, sealedTo]);
          for (let i = 0; i < ordered.length; i += EXPORT_CHUNK) {
            const slice = ordered.slice(i, i + EXPORT_CHUNK);
            const ins = await c.query<{ seq: string }>(
              `INSERT INTO ${S}.artifact (store, id, date, p, h, body)
               SELECT $1, x.id, $2, $3, x.h, x.body FROM unnest($4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS x(id, h, body, n) ORDER BY x.n
               RETURNING seq::text AS seq`,
              [...key, slice.map((x) => x.id), slice.map((x) => x.h), slice.map((x) => x.body)],
            );
            for (const x of ins.rows) if (BigInt(x.seq) > BigInt(last)) last = x.seq;
          }
        }
        await c.query(`UPDATE ${S}.artifact_seal SET sealed_to = $4 WHERE store = $1 AND date = $2 AND p = $3`, [...key, last]);
      }),
    );
  }

  async digest(partition: string, identity: string): Promise<{ rows: number; sha256: string }> {
    const r = await this.stores.run('hashing rows', (pool, S) =>
      pool.query<{ id: string; body: string }>(`SELECT id, body FROM ${S}.artifact WHERE store = $1 AND date = $2 AND p = $3`, [this.store, partition, identity]),
    );
    // Sorted here, by JavaScript's string order: the file backend's order, whatever the collation.
    const h = createHash('sha256');
    for (const x of r.rows.sort(byId)) h.update(`${x.body}\n`);
    return { rows: r.rows.length, sha256: h.digest('hex') };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
