import { createHash } from 'node:crypto';
import { join } from 'node:path';
import stringify from 'fast-json-stable-stringify';
import type { Logger } from 'pino';
import { MetaspnError } from '../../src/guard/errors.js';
import { nameStoreFiles } from '../../src/pipeline/bundled.js';
import { FileStores, type PipelineStores, type RowPutResult, type RowStore } from '../../src/pipeline/stores.js';
import type { RowText } from '../../src/pipeline/types.js';
import type { TaskEffects } from '../../src/runtime/effects.js';
import { collectIfGrown } from '../../src/runtime/memory.js';
import { ContractError } from '../../src/runtime/worker-api.js';
import { writeIncident } from '../../src/storage/incidents.js';
import type { WorkspacePaths } from '../../src/storage/paths.js';
import { paramsKey, type Conflict } from '../../src/storage/store/artifact-store.js';
import { canonicalJson } from './canonical.js';
import { configHash, type S1Config } from './config.js';
import { seasonDates } from './dates.js';
import { countedDigest, SortedSignals } from './digests.js';
import { DATE_LEVEL_SUBJECT, deterministicId, makeParams, projectionParamsOf, stageCounts, withCounted, type CountedParams, type Params, type StageParams } from './ids.js';
import { settle, type ProjectedUnits, type Settlement } from './math/settle.js';
import type { ScoredSubject } from './math/rewards.js';
import { SubjectGroups } from './signal-table.js';
import { readWeightedSignalTable } from './signals.js';
import { PIPELINE, STORE_FILES } from './store-files.js';

export { PIPELINE, STORE_FILES };

export type StageName = keyof typeof STORE_FILES;

// The stores (files, `store export`) find Season 1's rows under these names, whoever loads this module.
nameStoreFiles(PIPELINE, STORE_FILES);

/**
 * Heap growth allowed between two collections at Season 1's safe points (src/runtime/memory.ts;
 * the runner's own allow 192 MiB): scoring keeps hundreds of tiny tasks in flight, whose garbage
 * outlives the young generation; 64 MiB keeps a million-signal run's peak RSS under 512 MB.
 */
const SAFE_POINT_GROWTH = 64 * 2 ** 20;

/** Rows of a date-level stage rendered and put at once, at most (files; see S1Context.putEach). */
const PUT_SLICE = 16_384;

/** A projection as the next stages read it: its subject's units, and the id of its stored row. */
export type StoredProjection = ProjectedUnits & { id: string };

/** The conflict checks of one turn of the event loop: every row to check, and who waits for which ids. */
interface ConflictCheck {
  texts: RowText[];
  waiters: { ids: ReadonlySet<string>; resolve: (c: Conflict[]) => void; reject: (err: unknown) => void }[];
}

/** Options of an {@link S1Context}. */
export interface S1ContextOptions {
  /** Where rows, manifests and pointers live (the runner's stores); default: the workspace's files, owned and closed by the context. */
  stores?: PipelineStores;
  /**
   * The rows a task computes are recorded in its `ctx.effects` and commit with its acknowledgement
   * (PostgreSQL: exactly once) instead of being put by the worker. Default false (files: put before
   * the acknowledgement, at least once, idempotent by id).
   */
  atomic?: boolean;
  /** Signals grouped by subject, already read (the pipeline reads them once). */
  signals?: SubjectGroups;
  /** The context closes `stores` when it closes (a standalone worker's). Default: only the file stores it opened itself. */
  ownsStores?: boolean;
}

/**
 * Every task of every stage carries the date and the stage's params (S1-SPEC): `as_of`,
 * `config_hash`, `inputs`, and `counted` for stages 3–4; stage 1 tasks also their subject.
 */
export interface DatePayload {
  date: string;
  as_of: string;
  config_hash: string;
  inputs: string;
  counted?: string;
}

/** One earlier date that settlement counts: the run published as current for it, and its projection rows. */
export interface CountedDate {
  date: string;
  /** The run published as current for the date. */
  run_id: string;
  /** The params of its projection rows (the pointer's, without `counted`). */
  params: Record<string, unknown>;
  rows: number;
  /** sha256 of its projection rows in id order, as ArtifactStore.digest computes it. */
  sha256: string;
}

/** What stage 3 counts for a date: the counted digest, the settlement, and the earlier runs it read. */
export interface Counted {
  /** The counted digest (S1-SPEC "Digests"). */
  digest: string;
  settlement: Settlement;
  /** The earlier dates with a published run, ascending (dates without one are not listed). */
  upstream: CountedDate[];
}

/** Writing an id that exists with other content: the inputs changed under a published id. */
export class ReplayConflictError extends MetaspnError {
  readonly unrecoverable = true;
  constructor(message: string, incident: string) {
    super('STATE_CORRUPT', message, { hint: `nothing was overwritten; see ${incident}`, details: { incident } });
    this.name = 'ReplayConflictError';
  }
}

/**
 * What the four workers share in one process: the config, the stores, the signals (read once).
 * The pipeline builds one and hands it to its workers; a standalone `worker run` builds its own.
 */
/**
 * What a cached value read: a stage's rows of a date (`'*'`: of any date), and/or the current
 * pointers. Invalidation follows these declarations, never the order of the stages.
 */
type Read = { stage: StageName; date: string } | { pointers: true };

export class S1Context {
  readonly stores: Record<StageName, RowStore>;
  /** Rows are recorded in the task's effects and commit with its acknowledgement ({@link S1ContextOptions.atomic}). */
  readonly atomic: boolean;
  readonly #pipelineStores: PipelineStores;
  readonly #ownsStores: boolean;
  readonly hash: string;
  /** Rows written and found present, per stage and date, since the pipeline last reset them. */
  private readonly counts = new Map<string, { written: number; present: number }>();
  /** Rows held back per stage and date until `commit` (a backfill keeps each file in date order). */
  private readonly deferred = new Map<string, { params: StageParams; rows: RowText[] }>();
  private signalsBySubject: Promise<SubjectGroups> | null;
  private sortedPromise: Promise<SortedSignals> | null = null;
  /** Values read once per process, each with what it read: a write or a pointer move forgets exactly the values that read it. */
  private readonly cache = new Map<string, { value: Promise<unknown>; reads: readonly Read[] }>();
  private readonly pkeys = new Map<string, string>();
  /** {@link pkey} by params object: the checked params of stages 1–2 are one object per identity. */
  private readonly pkeyOf = new WeakMap<object, string>();
  /** The checked params of stages 1–2 by their payload's identity (see {@link params}). */
  private readonly checked = new Map<string, Params>();
  /** The payload identity {@link params} checked or found last among stages 1–2, with its params. */
  private lastChecked: { date: string; as_of: string; config_hash: string; inputs: string; params: Params } | null = null;
  /** Row makers per (stage, date, params): see {@link rowMaker}. */
  private readonly makers = new Map<string, unknown>();
  /** Conflict checks waiting for the next turn of the event loop, per stage ({@link checkConflicts}). */
  private readonly checks = new Map<StageName, ConflictCheck>();
  /** Rows put since the last safe point of collection. */
  private puts = 0;
  /** The run of each date in this process (named in incidents). */
  readonly runIds = new Map<string, string>();

  constructor(
    readonly ws: WorkspacePaths,
    readonly cfg: S1Config,
    readonly log: Logger,
    o: S1ContextOptions = {},
  ) {
    this.hash = configHash(cfg);
    this.#ownsStores = o.ownsStores ?? o.stores === undefined;
    this.#pipelineStores = o.stores ?? new FileStores(ws, (msg, details) => log.warn(details, msg));
    this.atomic = o.atomic ?? false;
    const rows = (stage: StageName): RowStore => this.#pipelineStores.rows(PIPELINE, stage);
    this.stores = {
      update_attention_scores: rows('update_attention_scores'),
      project_rewards: rows('project_rewards'),
      settle_season: rows('settle_season'),
      publish_season_summary: rows('publish_season_summary'),
    };
    this.signalsBySubject = o.signals ? Promise.resolve(o.signals) : null;
  }

  /** The stores the rows, manifests and pointers are read from. */
  get pipelineStores(): PipelineStores {
    return this.#pipelineStores;
  }

  /** Signals grouped by subject, read from inputs/ once per process. */
  signals(): Promise<SubjectGroups> {
    this.signalsBySubject ??= readWeightedSignalTable(join(this.ws.inputs, 's1_signals.jsonl'), this.cfg.attention.weights).then((t) => new SubjectGroups(t));
    return this.signalsBySubject;
  }

  /**
   * Drops the signals and their sorted order (a run-local once its scoring is done): the inputs
   * digests already computed are kept; a later call of {@link signals} reads the file again.
   */
  releaseSignals(): void {
    this.signalsBySubject = null;
    this.sortedPromise = null;
    // Collected now, whatever the heap's size: the next stage reads the scores back and renders
    // its rows before its first safe point, on top of what scoring left (a million-signal run's
    // peak RSS was there, its heap at 320 MiB over ~90 MiB live).
    collectIfGrown(0, 0);
  }

  /** The signals sorted by (instant, signal_id), built once per process: the inputs digests read them. */
  sorted(): Promise<SortedSignals> {
    this.sortedPromise ??= this.signals().then((groups) => new SortedSignals(groups.table));
    return this.sortedPromise;
  }

  /** A current pointer moved (a publish): forgets every value read through the pointers (what settlement counts). */
  pointersMoved(): void {
    this.forget((r) => 'pointers' in r);
  }

  /** Rows of (stage, date) may have been committed by others (task effects, workers on other hosts): forgets what was read of them. */
  stageCommitted(stage: StageName, date: string): void {
    this.forget((r) => 'stage' in r && r.stage === stage && (r.date === date || r.date === '*'));
  }

  /** Forgets every cached value with a read that `stale` says changed. */
  private forget(stale: (r: Read) => boolean): void {
    // forEach, not for…of: no [key, value] pair made per entry (stage 1 forgets once a task).
    this.cache.forEach((e, k, cache) => {
      if (e.reads.some(stale)) cache.delete(k);
    });
  }

  /** The inputs digest of a date and as-of (S1-SPEC "Digests"), computed once per process. */
  inputsDigest(date: string, asOf: string): Promise<string> {
    return this.memo(`inputs|${date}|${asOf}`, [], async () => (await this.sorted()).digest(date, Date.parse(asOf), this.cfg.attention.window_days));
  }

  /** How many signals the date's window holds (ts before as_of): the built-in check window_has_signals. */
  async windowCount(date: string, asOf: string): Promise<number> {
    return (await this.sorted()).count(date, Date.parse(asOf), this.cfg.attention.window_days);
  }

  /** The params of stages 1 and 2 of a date: as-of, the config hash, and the date's inputs digest now. */
  async paramsFor(date: string, asOf: string): Promise<Params> {
    return makeParams(asOf, this.hash, await this.inputsDigest(date, asOf));
  }

  /**
   * The task's params, once its identity is checked against what the workspace holds now: the
   * config hash, the inputs digest, and for stages 3–4 the counted digest. A task whose inputs no
   * longer match (run by `worker run` after the inputs or an earlier date's publish changed) is a
   * contract error naming the expected and the found digest; nothing is written under its id.
   */
  async params(stage: StageName, p: DatePayload): Promise<StageParams> {
    // Stages 1–2 depend on the config and the inputs digest only, both fixed for the process (the
    // digests are never forgotten): once a payload's identity is checked, its params are one
    // object, shared by the hundred thousand tasks of a stage.
    const counts = stageCounts(stage);
    // The payload checked last (a stage's tasks come one after the other with the same four texts):
    // answered by comparing them, without making its key.
    const last = this.lastChecked;
    if (!counts && last !== null && p.date === last.date && p.as_of === last.as_of && p.config_hash === last.config_hash && p.inputs === last.inputs) return last.params;
    const key = counts ? null : `${p.date}|${p.as_of}|${p.config_hash}|${p.inputs}`;
    const known = key === null ? undefined : this.checked.get(key);
    if (known) {
      this.lastChecked = { date: p.date, as_of: p.as_of, config_hash: p.config_hash, inputs: p.inputs, params: known };
      return known;
    }
    if (p.config_hash !== this.hash) {
      throw new ContractError(`task was enqueued with config_hash ${p.config_hash}, the workspace config is now ${this.hash}`);
    }
    const inputs = await this.inputsDigest(p.date, p.as_of);
    if (p.inputs !== inputs) {
      throw new ContractError(
        `${stage} of ${p.date}: inputs digest mismatch: the task expects ${p.inputs}, inputs/s1_signals.jsonl gives ${inputs} now (the inputs changed since its run was planned); nothing was written, re-run the date`,
      );
    }
    const base = makeParams(p.as_of, p.config_hash, p.inputs);
    if (key !== null) {
      this.checked.set(key, base);
      this.lastChecked = { date: p.date, as_of: p.as_of, config_hash: p.config_hash, inputs: p.inputs, params: base };
      return base;
    }
    if (p.counted === undefined) throw new ContractError(`${stage} of ${p.date}: the task carries no counted digest`);
    const counted = (await this.counted(p.date, base)).digest;
    if (p.counted !== counted) {
      throw new ContractError(
        `${stage} of ${p.date}: counted digest mismatch: the task expects ${p.counted}, the published runs and this run's projections give ${counted} now (an earlier date was published or rolled back since its run was planned); nothing was written, re-run the date`,
      );
    }
    return withCounted(base, counted);
  }

  written(stage: StageName, date: string): { written: number; present: number } {
    return this.counts.get(`${stage}|${date}`) ?? { written: 0, present: 0 };
  }

  resetCounts(stage: StageName, date: string): void {
    this.counts.delete(`${stage}|${date}`);
  }

  /**
   * Holds the rows of (stage, date) back until `commit`: several dates can then run at once and
   * still land in the store in date order, byte for byte as if run one after the other. A crash
   * loses held rows with the run, which a re-run (or --resume) computes again.
   */
  defer(stage: StageName, date: string, params: StageParams): void {
    this.deferred.set(`${stage}|${date}`, { params, rows: [] });
  }

  /** Writes the held rows of (stage, date) in the order their tasks produced them. */
  async commit(stage: StageName, date: string): Promise<void> {
    const key = `${stage}|${date}`;
    const held = this.deferred.get(key);
    if (!held) return;
    this.deferred.delete(key);
    await this.write(stage, date, held.params, held.rows);
  }

  /**
   * Stores rows; an id already stored with other content writes nothing and raises an incident
   * (ReplayConflictError, 30). With `atomic` the rows are recorded in `effects` instead, once no id
   * is found stored with other content, and commit with the task's acknowledgement (null is
   * returned; a conflict that appears meanwhile rolls the commit back, and the task is dead-lettered, 30).
   */
  async put(stage: StageName, date: string, params: StageParams, rows: readonly ({ id: string } & object)[], effects?: TaskEffects): Promise<RowPutResult | null> {
    return this.putEach(stage, date, params, rows, (row) => ({ id: row.id, text: canonicalJson(row) }), effects);
  }

  /**
   * {@link put} of the rows `render` makes of `items`, each as its id and its stored text (the
   * row's canonical JSON, written by the caller): a stage of 100k rows then never holds its row
   * objects and their texts at once. On files, more than {@link PUT_SLICE} rows are rendered and
   * put a slice at a time, in order (the store file's bytes are those of one put): a date-level
   * stage never holds the texts of its whole output. A conflict then stops at the slice that holds
   * it; the slices before it are written (rows of the same params, new ids: nothing is
   * overwritten, and a re-run finds them present).
   */
  async putEach<T>(stage: StageName, date: string, params: StageParams, items: readonly T[], render: (item: T) => { id: string; text: string }, effects?: TaskEffects): Promise<RowPutResult | null> {
    const identity = this.pkey(params);
    // A date-level stage is about to render its output: a safe point to collect what came before.
    if (items.length > 10_000) collectIfGrown(SAFE_POINT_GROWTH);
    const textsOf = (slice: readonly T[]): RowText[] =>
      slice.map((item) => {
        const r = render(item);
        return { id: r.id, date, identity, text: r.text };
      });
    // Held back for `commit` (a backfill): looked up once (stage 1 puts a row a task).
    const held = this.deferred.size === 0 ? undefined : this.deferred.get(`${stage}|${date}`);
    if (!this.atomic && !held && items.length > PUT_SLICE) {
      const sum: RowPutResult = { written: 0, present: 0, conflicts: [] };
      for (let i = 0; i < items.length; i += PUT_SLICE) {
        const r = await this.write(stage, date, params, textsOf(items.slice(i, i + PUT_SLICE)));
        sum.written += r.written;
        sum.present += r.present;
      }
      return sum;
    }
    const texts = textsOf(items);
    if (this.atomic) {
      if (!effects) throw new Error(`${stage} of ${date}: rows commit with their task here, but no task effects were given`);
      const conflicts = await this.checkConflicts(stage, texts);
      if (conflicts.length) this.conflict(stage, date, conflicts);
      effects.texts(PIPELINE, stage, texts);
      return null;
    }
    if (held) {
      held.rows.push(...texts);
      return null;
    }
    return this.write(stage, date, params, texts);
  }

  /**
   * The rows among `texts` stored with other content. The checks of one turn of the event loop
   * (stage 1 runs hundreds of tasks at once) share one read of the store.
   */
  private checkConflicts(stage: StageName, texts: readonly RowText[]): Promise<Conflict[]> {
    return new Promise((resolve, reject) => {
      let batch = this.checks.get(stage);
      if (!batch) {
        const fresh: ConflictCheck = { texts: [], waiters: [] };
        this.checks.set(stage, fresh);
        batch = fresh;
        setImmediate(() => {
          this.checks.delete(stage);
          this.stores[stage].conflicts(fresh.texts).then(
            (all) => fresh.waiters.forEach((w) => w.resolve(all.filter((c) => w.ids.has(c.id)))),
            (err: unknown) => fresh.waiters.forEach((w) => w.reject(err)),
          );
        });
      }
      batch.texts.push(...texts);
      batch.waiters.push({ ids: new Set(texts.map((t) => t.id)), resolve, reject });
    });
  }

  /** Writes the incident of a replay conflict and throws it (ReplayConflictError, 30). */
  private conflict(stage: StageName, date: string, conflicts: readonly { id: string; existing: string; incoming: string }[]): never {
    const c = conflicts[0]!;
    // Where the id is: the store file's path (files), or the table and store (a database).
    const location = this.stores[stage].location;
    const store = this.atomic ? location : join(this.ws.root, location);
    const incident = writeIncident(this.ws, 'replay_conflict', c.id, {
      store,
      id: c.id,
      date,
      run_id: this.runIds.get(date) ?? null,
      existing: JSON.parse(c.existing) as unknown,
      incoming: JSON.parse(c.incoming) as unknown,
      conflicts: conflicts.length,
      note: 'nothing was overwritten: the inputs or code changed under an id that was already written',
    });
    this.log.error({ event: 'replay_conflict', id: c.id, store, incident }, 'replay conflict');
    throw new ReplayConflictError(`replay conflict: ${STORE_FILES[stage]} already holds ${c.id} with different content`, incident);
  }

  private async write(stage: StageName, date: string, params: StageParams, texts: readonly RowText[]): Promise<RowPutResult> {
    // What was read of this stage's rows of the date (or of any date) is stale once it writes.
    this.stageCommitted(stage, date);
    const r = await this.stores[stage].putTexts(texts);
    if (r.conflicts.length > 0) this.conflict(stage, date, r.conflicts);
    // Every 4096 rows put (scoring's tasks, a date-level stage's slices): a safe point.
    if ((this.puts += texts.length) >= 4096) {
      this.puts = 0;
      collectIfGrown(SAFE_POINT_GROWTH);
    }
    const key = `${stage}|${date}`;
    let c = this.counts.get(key);
    if (!c) this.counts.set(key, (c = { written: 0, present: 0 }));
    c.written += r.written;
    c.present += r.present;
    return r;
  }

  /** The rows of (stage, date, params) in the order they were written. */
  async rows(stage: StageName, date: string, params: Readonly<Record<string, unknown>>): Promise<Record<string, unknown>[]> {
    return (await this.stores[stage].texts(date, this.pkey(params))).map((t) => JSON.parse(t.text) as Record<string, unknown>);
  }

  /** How many rows the stage holds for the date and params, and their hash (see RowStore.digest). */
  digest(stage: StageName, date: string, params: Readonly<Record<string, unknown>>): Promise<{ rows: number; sha256: string }> {
    return this.stores[stage].digest(date, this.pkey(params));
  }

  /** The date's attention scores (score 0 included), read once per run. */
  scores(date: string, params: StageParams): Promise<ScoredSubject[]> {
    const p = makeParams(params.as_of, params.config_hash, params.inputs);
    // Each row is parsed and cut down at once: 100k whole row objects never live side by side.
    return this.cached('update_attention_scores', date, p, async () =>
      (await this.stores.update_attention_scores.texts(date, this.pkey(p))).map((t) => {
        const r = JSON.parse(t.text) as { subject_ref: string; score: number };
        return { subject_ref: r.subject_ref, score: r.score };
      }),
    );
  }

  /**
   * Remembers what a stage just stored, as the light view the next stages read: the rows are
   * exactly these (written now, or already present with the same content), so nobody rereads them.
   */
  remember<T>(stage: StageName, date: string, params: StageParams, value: T): void {
    this.cache.set(`${stage}|${date}|${this.pkey(params)}`, { value: Promise.resolve(value), reads: [{ stage, date }] });
  }

  /** The date's projections with their row ids, read once per run. */
  projections(date: string, params: StageParams): Promise<StoredProjection[]> {
    const p = makeParams(params.as_of, params.config_hash, params.inputs);
    return this.cached('project_rewards', date, p, async () =>
      (await this.stores.project_rewards.texts(date, this.pkey(p))).map((t) => {
        const r = JSON.parse(t.text) as { subject_ref: string; projected_units: number };
        return { subject_ref: r.subject_ref, projected_units: r.projected_units, id: t.id };
      }),
    );
  }

  /**
   * What settlement counts for `date` (S1-SPEC stage 3): for each earlier season date the
   * projections of the run published as current for it, for `date` this run's (those of
   * `params`, the date's stage 1–2 params). Gives the counted digest, the settlement, and the
   * earlier runs read. Computed once per run (planning, stages 3 and 4 and the checks share it).
   */
  counted(date: string, params: Params): Promise<Counted> {
    // It reads the projections of every date up to this one, and which run is current for each.
    return this.memo(`counted|${date}|${this.pkey(params)}`, [{ stage: 'project_rewards', date: '*' }, { pointers: true }], async () => {
      const byDate = new Map<string, ProjectedUnits[]>();
      const ids: string[] = [];
      const upstream: CountedDate[] = [];
      for (const d of seasonDates(this.cfg.season.start, date)) {
        if (d === date) {
          // Their ids as stage 2 made them (or as stored): not hashed again.
          const mine = await this.projections(d, params);
          byDate.set(d, mine);
          for (const x of mine) ids.push(x.id);
          continue;
        }
        const ptr = await this.#pipelineStores.pointers.read(PIPELINE, d);
        if (!ptr) continue;
        const pp = projectionParamsOf(ptr.params);
        const texts = await this.stores.project_rewards.texts(d, this.pkey(pp));
        const rows = texts.map((t) => JSON.parse(t.text) as { subject_ref: string; projected_units: number });
        byDate.set(
          d,
          rows.map((r) => ({ subject_ref: r.subject_ref, projected_units: r.projected_units })),
        );
        const h = createHash('sha256');
        for (const t of [...texts].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
          ids.push(t.id);
          h.update(`${t.text}\n`);
        }
        upstream.push({ date: d, run_id: ptr.run_id, params: pp, rows: texts.length, sha256: h.digest('hex') });
      }
      return { digest: countedDigest(ids), settlement: settle(byDate), upstream };
    });
  }

  /** The season settled up to `date` under the stage 3–4 params of a run (see {@link counted}). */
  async settlement(date: string, params: CountedParams): Promise<Settlement> {
    return (await this.counted(date, makeParams(params.as_of, params.config_hash, params.inputs))).settlement;
  }

  private cached<T>(stage: StageName, date: string, params: StageParams, load: () => Promise<T>): Promise<T> {
    return this.memo(`${stage}|${date}|${this.pkey(params)}`, [{ stage, date }], load);
  }

  private memo<T>(key: string, reads: readonly Read[], load: () => Promise<T>): Promise<T> {
    const hit = this.cache.get(key);
    if (hit) return hit.value as Promise<T>;
    const value = load();
    const entry = { value, reads };
    this.cache.set(key, entry);
    value.catch(() => {
      if (this.cache.get(key) === entry) this.cache.delete(key);
    });
    return value;
  }

  /** Params hash (paramsKey), computed once per distinct params (and found without a stringify for a params object seen before). */
  pkey(params: Readonly<Record<string, unknown>>): string {
    const seen = this.pkeyOf.get(params);
    if (seen !== undefined) return seen;
    const k = stringify(params);
    let v = this.pkeys.get(k);
    if (v === undefined) {
      v = paramsKey(params);
      this.pkeys.set(k, v);
    }
    this.pkeyOf.set(params, v);
    return v;
  }

  /**
   * The row maker of (stage, date, params), made by `make` once per process: stage 1's tasks, one
   * per subject, share what their rows' ids and texts have in common.
   */
  rowMaker<T>(stage: StageName, date: string, params: StageParams, make: () => T): T {
    const key = `${stage}|${date}|${this.pkey(params)}`;
    let m = this.makers.get(key) as T | undefined;
    if (m === undefined) {
      m = make();
      this.makers.set(key, m);
    }
    return m;
  }

  summaryIdFor(date: string, params: CountedParams): string {
    return deterministicId('publish_season_summary', date, DATE_LEVEL_SUBJECT, params);
  }

  /** Closes the stores when the context opened them (a standalone worker's); the runner closes its own. */
  async close(): Promise<void> {
    if (this.#ownsStores) await this.#pipelineStores.close();
  }
}
