import { join } from 'node:path';
import type { Logger } from 'pino';
import { loadConfig } from '../../src/config/load.js';
import { MetaspnError } from '../../src/guard/errors.js';
import { collectIfGrown } from '../../src/runtime/memory.js';
import { ContractError } from '../../src/runtime/worker-api.js';
import { writeIncident } from '../../src/storage/incidents.js';
import type { WorkspacePaths } from '../../src/storage/paths.js';
import { readPointer } from '../../src/storage/pointers.js';
import { ArtifactStore, paramsKey, type PutResult } from '../../src/storage/store/artifact-store.js';
import { canonicalJson } from './canonical.js';
import { configHash, type S1Config } from './config.js';
import { seasonDates } from './dates.js';
import { DATE_LEVEL_SUBJECT, deterministicId, makeParams, type Params } from './ids.js';
import { groupBySubject } from './math.js';
import { settle, type ProjectedUnits, type Settlement } from './math/settle.js';
import type { ScoredSubject } from './math/rewards.js';
import { readWeightedSignals, type Signal } from './signals.js';

export const PIPELINE = 's1';

/** The four artifact files of Season 1, by stage. */
export const STORE_FILES = {
  update_attention_scores: 's1_attention_scores.jsonl',
  project_rewards: 's1_reward_projections.jsonl',
  settle_season: 's1_settlements.jsonl',
  publish_season_summary: 's1_summaries.jsonl',
} as const;

export type StageName = keyof typeof STORE_FILES;

/** Every task of every stage carries the run's parameters; stage 1 tasks also their subject. */
export interface DatePayload {
  date: string;
  as_of: string;
  config_hash: string;
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
export class S1Context {
  readonly stores: Record<StageName, ArtifactStore>;
  readonly hash: string;
  /** Rows written and found present, per stage and date, since the pipeline last reset them. */
  private readonly counts = new Map<string, { written: number; present: number }>();
  /** Rows held back per stage and date until `commit` (a backfill keeps each file in date order). */
  private readonly deferred = new Map<string, { params: Params; rows: { id: string; text: string }[] }>();
  private signalsBySubject: Promise<Map<string, Signal[]>> | null;
  private readonly cache = new Map<string, Promise<unknown>>();
  private readonly pkeys = new Map<string, string>();
  /** The run of each date in this process (named in incidents). */
  readonly runIds = new Map<string, string>();

  constructor(
    readonly ws: WorkspacePaths,
    readonly cfg: S1Config,
    readonly log: Logger,
    signals?: Map<string, Signal[]>,
  ) {
    this.hash = configHash(cfg);
    const warn = (msg: string, details: Record<string, unknown>): void => log.warn(details, msg);
    this.stores = {
      update_attention_scores: new ArtifactStore(join(ws.store, STORE_FILES.update_attention_scores), warn),
      project_rewards: new ArtifactStore(join(ws.store, STORE_FILES.project_rewards), warn),
      settle_season: new ArtifactStore(join(ws.store, STORE_FILES.settle_season), warn),
      publish_season_summary: new ArtifactStore(join(ws.store, STORE_FILES.publish_season_summary), warn),
    };
    this.signalsBySubject = signals ? Promise.resolve(signals) : null;
  }

  static forWorkspace(ws: WorkspacePaths, log: Logger): S1Context {
    return new S1Context(ws, loadConfig(ws).s1, log);
  }

  /** Signals grouped by subject, read from inputs/ once per process. */
  signals(): Promise<Map<string, Signal[]>> {
    this.signalsBySubject ??= readWeightedSignals(join(this.ws.inputs, 's1_signals.jsonl'), this.cfg.attention.weights).then(groupBySubject);
    return this.signalsBySubject;
  }

  /** The task's params; a task enqueued under another config is a contract error, not something to retry. */
  params(p: DatePayload): Params {
    if (p.config_hash !== this.hash) {
      throw new ContractError(`task was enqueued with config_hash ${p.config_hash}, the workspace config is now ${this.hash}`);
    }
    return makeParams(p.as_of, p.config_hash);
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
  defer(stage: StageName, date: string, params: Params): void {
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

  /** Stores rows; an id already stored with other content writes nothing and raises an incident. */
  async put(stage: StageName, date: string, params: Params, rows: readonly ({ id: string } & object)[]): Promise<PutResult | null> {
    const texts = rows.map((row) => ({ id: row.id, text: canonicalJson(row) }));
    const held = this.deferred.get(`${stage}|${date}`);
    if (held) {
      held.rows.push(...texts);
      return null;
    }
    return this.write(stage, date, params, texts);
  }

  private async write(stage: StageName, date: string, params: Params, texts: readonly { id: string; text: string }[]): Promise<PutResult> {
    const p = this.pkey(params);
    // What was read of this stage's rows is stale once it writes.
    for (const k of [...this.cache.keys()]) if (k.startsWith(`${stage}|${date}|`)) this.cache.delete(k);
    if (stage === 'project_rewards') for (const k of [...this.cache.keys()]) if (k.startsWith('settle_season|')) this.cache.delete(k);
    const r = await this.stores[stage].put(texts.map((t) => ({ id: t.id, date, p, text: t.text })));
    if (r.conflicts.length > 0) {
      const c = r.conflicts[0]!;
      const incident = writeIncident(this.ws, 'replay_conflict', c.id, {
        store: this.stores[stage].path,
        id: c.id,
        date,
        run_id: this.runIds.get(date) ?? null,
        existing: JSON.parse(c.existing) as unknown,
        incoming: JSON.parse(c.incoming) as unknown,
        conflicts: r.conflicts.length,
        note: 'nothing was overwritten: the inputs or code changed under an id that was already written',
      });
      this.log.error({ event: 'replay_conflict', id: c.id, store: this.stores[stage].path, incident }, 'replay conflict');
      throw new ReplayConflictError(`replay conflict: ${STORE_FILES[stage]} already holds ${c.id} with different content`, incident);
    }
    const c = this.counts.get(`${stage}|${date}`) ?? { written: 0, present: 0 };
    c.written += r.written;
    c.present += r.present;
    this.counts.set(`${stage}|${date}`, c);
    // A date-level stage builds its whole output at once: a safe point to collect what it dropped.
    if (texts.length > 10_000) collectIfGrown();
    return r;
  }

  rows(stage: StageName, date: string, params: Params): Promise<Record<string, unknown>[]> {
    return this.stores[stage].rowsFor(date, this.pkey(params));
  }

  /** How many rows the stage holds for the date and params, and their hash (see ArtifactStore.digest). */
  digest(stage: StageName, date: string, params: Params): Promise<{ rows: number; sha256: string }> {
    return this.stores[stage].digest(date, this.pkey(params));
  }

  /** The date's attention scores (score 0 included), read once per run. */
  scores(date: string, params: Params): Promise<ScoredSubject[]> {
    return this.cached('update_attention_scores', date, params, async () =>
      (await this.rows('update_attention_scores', date, params)).map((r) => ({ subject_ref: r.subject_ref as string, score: r.score as number })),
    );
  }

  /**
   * Remembers what a stage just stored, as the light view the next stages read: the rows are
   * exactly these (written now, or already present with the same content), so nobody rereads them.
   */
  remember<T>(stage: StageName, date: string, params: Params, value: T): void {
    this.cache.set(`${stage}|${date}|${this.pkey(params)}`, Promise.resolve(value));
  }

  /** The date's projections, read once per run. */
  projections(date: string, params: Params): Promise<ProjectedUnits[]> {
    return this.cached('project_rewards', date, params, async () =>
      (await this.rows('project_rewards', date, params)).map((r) => ({ subject_ref: r.subject_ref as string, projected_units: r.projected_units as number })),
    );
  }

  /**
   * The season settled up to `date`: for each earlier season date the projections of the run
   * published as current for it, for `date` this run's. Computed once per run (stage 3 and 4 and
   * the checks share it); earlier dates are read, not kept.
   */
  settlement(date: string, params: Params): Promise<Settlement> {
    return this.cached('settle_season', date, params, async () => {
      const byDate = new Map<string, ProjectedUnits[]>();
      for (const d of seasonDates(this.cfg.season.start, date)) {
        if (d === date) {
          byDate.set(d, await this.projections(d, params));
          continue;
        }
        const ptr = readPointer(this.ws, PIPELINE, d);
        if (!ptr) continue;
        const rows = await this.rows('project_rewards', d, ptr.params);
        byDate.set(d, rows.map((r) => ({ subject_ref: r.subject_ref as string, projected_units: r.projected_units as number })));
      }
      return settle(byDate);
    });
  }

  private cached<T>(stage: StageName, date: string, params: Params, load: () => Promise<T>): Promise<T> {
    const key = `${stage}|${date}|${this.pkey(params)}`;
    let hit = this.cache.get(key) as Promise<T> | undefined;
    if (!hit) {
      hit = load();
      this.cache.set(key, hit);
      hit.catch(() => this.cache.delete(key));
    }
    return hit;
  }

  /** Params hash, computed once per distinct params. */
  pkey(params: Params): string {
    const k = `${params.as_of}|${params.config_hash}`;
    let v = this.pkeys.get(k);
    if (v === undefined) {
      v = paramsKey(params);
      this.pkeys.set(k, v);
    }
    return v;
  }

  summaryIdFor(plan: { date: string; params: Params }): string {
    return deterministicId('publish_season_summary', plan.date, DATE_LEVEL_SUBJECT, plan.params);
  }

  async close(): Promise<void> {
    await Promise.all(Object.values(this.stores).map((s) => s.close()));
  }
}
