import { join, relative } from 'node:path';
import type { PipelineStores } from '../../src/pipeline/stores.js';
import type { WorkspacePaths } from '../../src/storage/paths.js';
import { pointerDates, pointerPath, readPointer, type CurrentPointer } from '../../src/storage/pointers.js';
import { StateFileError } from '../../src/storage/state-file.js';
import { paramsKey } from '../../src/storage/store/artifact-store.js';
import { rowsByKey } from '../../src/storage/store/plain-lines.js';
import { configHash, type S1Config } from './config.js';
import { PIPELINE, STORE_FILES } from './context.js';
import { defaultAsOf } from './dates.js';
import { countedDigest, SortedSignals } from './digests.js';
import { projectionParamsOf } from './ids.js';
import type { Signal } from './signals.js';

/** A published date and whether what it was computed from still holds. */
export interface PublishedDate {
  date: string;
  /** The run published as current for it. */
  run_id: string;
  /** fine: a re-run now would have the same ids; stale: its inputs, config or counted runs changed since. */
  state: 'fine' | 'stale';
  /** Why it is stale, one line each ([] when fine). */
  reasons: string[];
}

/** What a date's params would be now, beside what its pointer recorded. */
export interface ParamsNow {
  config_hash: string;
  /** The inputs digest now (null when the pointer records no as-of to compute it with). */
  inputs: string | null;
  /** The counted digest now, over the projections the pointers name now (null: not computed). */
  counted: string | null;
}

/**
 * Pure: why a published date is stale, comparing its pointer's params with what they would be
 * now. [] when they match. A pointer written by 0.1 (params without `inputs`) is stale: a re-run
 * writes its rows under the new ids.
 */
export function staleReasons(published: Readonly<Record<string, unknown>>, now: ParamsNow): string[] {
  const out: string[] = [];
  if (published.config_hash !== now.config_hash) out.push(`config changed: config_hash ${String(published.config_hash)} was published, the config gives ${now.config_hash} now`);
  if (typeof published.inputs !== 'string') {
    out.push('published by metaspn 0.1: its params carry no inputs digest; a re-run writes its rows under the new ids');
    return out;
  }
  if (now.inputs !== null && published.inputs !== now.inputs) out.push(`inputs changed: inputs digest ${published.inputs} was published, inputs/s1_signals.jsonl gives ${now.inputs} now`);
  if (now.counted !== null && published.counted !== now.counted) {
    out.push(`an earlier date was published or rolled back since: counted digest ${String(published.counted)} was published, the current pointers give ${now.counted} now`);
  }
  return out;
}

/**
 * Pure: why a provisional publish is stale once its day is over, or null. A date published before
 * its day ended, with an as-of earlier than the day's default, left out what came after that
 * as-of; once the clock passed the default, a run without `--as-of` would see all of the day.
 */
export function provisionalReason(date: string, published: { as_of: unknown; published_at: unknown }, nowMs: number): string | null {
  const fallback = defaultAsOf(date);
  const end = Date.parse(fallback);
  if (typeof published.as_of !== 'string' || Date.parse(published.as_of) >= end) return null;
  if (typeof published.published_at !== 'string' || !(Date.parse(published.published_at) < end) || nowMs < end) return null;
  return `published provisionally (as_of ${published.as_of}) before the day ended; it is over now (${fallback}): a run without --as-of counts all of it`;
}

/**
 * Every published date of Season 1 (or those in `only`), fine or stale: whether a re-run now would
 * compute other params than its pointer records (S1-SPEC "Digests": the inputs digest of its
 * window, the counted digest over the projections of the runs published now for earlier dates and
 * its own, the config hash). Reads the pointers and the projections file only (one pass, no lock,
 * nothing written: doctor calls it); damaged pointers are skipped (doctor reports them). A
 * provisional publish whose day is over is stale too ({@link provisionalReason}).
 * @param signals the workspace's signals, as read and checked (readWeightedSignals).
 * @param nowMs the clock, epoch milliseconds; default `Date.now()`.
 */
export function publishedDates(ws: WorkspacePaths, cfg: S1Config, signals: Iterable<Signal> | SortedSignals, only?: ReadonlySet<string>, nowMs: number = Date.now()): PublishedDate[] {
  const pointers = new Map<string, CurrentPointer>();
  for (const date of pointerDates(ws, PIPELINE)) {
    try {
      const p = readPointer(ws, PIPELINE, date);
      if (p) pointers.set(date, p);
    } catch (err) {
      if (!(err instanceof StateFileError)) throw err;
    }
  }
  const ids = projectionIds(join(ws.store, STORE_FILES.project_rewards), new Set([...pointers].map(([d, p]) => keyOf(d, p))));
  return datesOf(pointers, ids, cfg, signals, only, nowMs);
}

/**
 * {@link publishedDates} read through the pipeline stores (the files or a database): every
 * pointer of Season 1 (damaged ones skipped) and the projection rows each names.
 */
export async function publishedDatesIn(
  stores: PipelineStores,
  cfg: S1Config,
  signals: Iterable<Signal> | SortedSignals,
  only?: ReadonlySet<string>,
  nowMs: number = Date.now(),
): Promise<PublishedDate[]> {
  const pointers = new Map<string, CurrentPointer>();
  for (const date of await stores.pointers.partitions(PIPELINE)) {
    try {
      const p = await stores.pointers.read(PIPELINE, date);
      if (p) pointers.set(date, p);
    } catch (err) {
      if (!(err instanceof StateFileError)) throw err;
    }
  }
  const rows = stores.rows(PIPELINE, 'project_rewards');
  const ids = new Map<string, string[]>();
  for (const [date, p] of pointers)
    ids.set(
      keyOf(date, p),
      (await rows.texts(date, paramsKey(projectionParamsOf(p.params)))).map((t) => t.id),
    );
  return datesOf(pointers, ids, cfg, signals, only, nowMs);
}

/** The key of a pointer's projection rows: `date|paramsKey`. */
function keyOf(date: string, p: CurrentPointer): string {
  return `${date}|${paramsKey(projectionParamsOf(p.params))}`;
}

/** Pure: the published dates, fine or stale, from the pointers and the ids of the projection rows each names (by {@link keyOf}). */
function datesOf(
  pointers: ReadonlyMap<string, CurrentPointer>,
  ids: ReadonlyMap<string, string[]>,
  cfg: S1Config,
  signals: Iterable<Signal> | SortedSignals,
  only: ReadonlySet<string> | undefined,
  nowMs: number,
): PublishedDate[] {
  const sorted = signals instanceof SortedSignals ? signals : new SortedSignals(signals);
  const hash = configHash(cfg);
  const out: PublishedDate[] = [];
  const earlier: string[] = [];
  for (const [date, p] of [...pointers].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    const params = p.params as Readonly<Record<string, unknown>>;
    const own = ids.get(keyOf(date, p)) ?? [];
    if (!only || only.has(date)) {
      const asOf = typeof params.as_of === 'string' ? Date.parse(params.as_of) : Number.NaN;
      const now: ParamsNow = {
        config_hash: hash,
        inputs: Number.isNaN(asOf) ? null : sorted.digest(date, asOf, cfg.attention.window_days),
        counted: date >= cfg.season.start ? countedDigest([...earlier, ...own]) : null,
      };
      const reasons = staleReasons(params, now);
      const provisional = provisionalReason(date, { as_of: params.as_of, published_at: p.published_at }, nowMs);
      if (provisional) reasons.push(provisional);
      out.push({ date, run_id: p.run_id, state: reasons.length ? 'stale' : 'fine', reasons });
    }
    // Settlement counts earlier season dates only.
    if (date >= cfg.season.start) earlier.push(...own);
  }
  return out;
}

/** The ids of the projection rows of each wanted `date|paramsKey`, read in one pass of the file. */
function projectionIds(path: string, keys: ReadonlySet<string>): Map<string, string[]> {
  return new Map([...rowsByKey(path, keys)].map(([k, rows]) => [k, rows.map((r) => r.id)]));
}

/** A doctor finding about a stale published date: where, what, and the command that fixes it. */
export interface StaleFinding {
  /** The date's pointer, relative to the workspace root. */
  path: string;
  message: string;
  fix: string;
}

/**
 * The stale published dates of Season 1 as doctor findings (see {@link publishedDates}): each
 * names why, and the command that restates it (re-running the date; the later published dates
 * then count it anew, which `backfill --resume` over the range does).
 */
export function staleFindings(ws: WorkspacePaths, cfg: S1Config, signals: Iterable<Signal>): StaleFinding[] {
  const all = publishedDates(ws, cfg, signals);
  const last = all.at(-1)?.date;
  return all
    .filter((d) => d.state === 'stale')
    .map((d) => ({
      path: relative(ws.root, pointerPath(ws, PIPELINE, d.date)),
      message: `s1 ${d.date} is stale (published by run ${d.run_id}): ${d.reasons.join('; ')}`,
      fix: `re-run the date: metaspn s1 run-local --workspace ${ws.root} --date ${d.date}${last && last > d.date ? ` (then the later dates count it anew: metaspn s1 backfill --workspace ${ws.root} --start ${d.date} --end ${last} --resume)` : ''}`,
    }));
}
