import { hash } from 'node:crypto';
import { flat } from '../../src/strings.js';

/** The four Season 1 stages, in run order. */
export const STAGES = ['update_attention_scores', 'project_rewards', 'settle_season', 'publish_season_summary'] as const;

/** One of {@link STAGES}. */
export type Stage = (typeof STAGES)[number];

/** The id prefix of each stage: att, rwd, stl, sum. */
export const STAGE_PREFIX: Readonly<Record<Stage, string>> = Object.freeze({
  update_attention_scores: 'att',
  project_rewards: 'rwd',
  settle_season: 'stl',
  publish_season_summary: 'sum',
});

/** The `subject_ref` of date-level tasks and rows (every stage but the first). */
export const DATE_LEVEL_SUBJECT = '*';

/**
 * The `params` of stages 1 and 2 (S1-SPEC "Dates, as-of, IDs"): the canonical as-of instant, the
 * config hash, and the date's inputs digest (16 hex digits, see digests.ts).
 */
export type Params = { as_of: string; config_hash: string; inputs: string };

/** The `params` of stages 3 and 4: {@link Params} plus the date's counted digest (16 hex digits). */
export type CountedParams = Params & { counted: string };

/** The params of any stage: {@link Params} for stages 1–2, {@link CountedParams} for stages 3–4. */
export type StageParams = Params | CountedParams;

/** Builds the params of stages 1 and 2, with exactly their three keys. */
export function makeParams(asOf: string, configHash: string, inputs: string): Params {
  return { as_of: asOf, config_hash: configHash, inputs };
}

/** Builds the params of stages 3 and 4 from those of stages 1 and 2 and the counted digest. */
export function withCounted(p: Params, counted: string): CountedParams {
  return { as_of: p.as_of, config_hash: p.config_hash, inputs: p.inputs, counted };
}

/** Whether the stage's params carry the counted digest: settle_season and publish_season_summary. */
export function stageCounts(stage: Stage): boolean {
  return stage === 'settle_season' || stage === 'publish_season_summary';
}

/**
 * The stage's params rebuilt with exactly the keys the spec gives it, so that a caller's extra
 * keys never leak into an id or a row.
 * @throws RangeError when a key the stage needs is missing (stages 3–4 need `counted`).
 */
export function paramsOf(stage: Stage, params: StageParams): StageParams {
  const base = makeParams(params.as_of, params.config_hash, params.inputs);
  if (typeof base.as_of !== 'string' || typeof base.config_hash !== 'string' || typeof base.inputs !== 'string') {
    throw new RangeError(`params of ${stage} need as_of, config_hash and inputs`);
  }
  if (!stageCounts(stage)) return base;
  const counted = (params as Partial<CountedParams>).counted;
  if (typeof counted !== 'string') throw new RangeError(`params of ${stage} need the counted digest`);
  return withCounted(base, counted);
}

/**
 * The params of the rows stage 3 reads for a date from the params a pointer or stage 4 carries:
 * the same object without `counted`. A pointer written by 0.1 (`{as_of, config_hash}`) gives
 * itself back, so its rows are still found.
 */
export function projectionParamsOf(params: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const { counted: _counted, ...rest } = params;
  return rest;
}

/**
 * The deterministic id of a task or an artifact row: `<prefix>_` + the first 24 hex digits of
 * sha256(stable-stringify({stage, date, subject_ref, params})), params as {@link paramsOf} gives them.
 * @param subjectRef the subject, or {@link DATE_LEVEL_SUBJECT} (`"*"`) for date-level ones.
 * @throws RangeError when the params lack a key the stage needs.
 */
export function deterministicId(stage: Stage, date: string, subjectRef: string, params: StageParams): string {
  return idMaker(stage, date, params)(subjectRef);
}

/**
 * {@link deterministicId} of many subjects under one (stage, date, params): the text before the
 * subject is made once. The stable stringification is written out with its keys in sorted order
 * (`date`, `params` with `as_of`, `config_hash`, [`counted`,] `inputs`, `stage`, `subject_ref`;
 * every value a string, as JSON.stringify writes it): byte for byte what
 * fast-json-stable-stringify gives, without sorting the keys of two fresh objects per id.
 * @throws RangeError when the params lack a key the stage needs.
 */
export function idMaker(stage: Stage, date: string, params: StageParams): (subjectRef: string) => string {
  const idOf = quotedIdMaker(stage, date, params);
  return (subjectRef) => idOf(JSON.stringify(subjectRef));
}

/**
 * {@link idMaker} fed the subject already JSON-quoted (`JSON.stringify(subjectRef)`): a row
 * written out by hand quotes its subject once for its id and its text.
 * @throws RangeError when the params lack a key the stage needs.
 */
export function quotedIdMaker(stage: Stage, date: string, params: StageParams): (quotedSubject: string) => string {
  const p = paramsOf(stage, params);
  const head = `{"date":${JSON.stringify(date)},"params":${paramsText(p)},"stage":${JSON.stringify(stage)},"subject_ref":`;
  const prefix = `${STAGE_PREFIX[stage]}_`;
  return (quotedSubject) => flat(prefix + hash('sha256', `${head}${quotedSubject}}`, 'hex').slice(0, 24));
}

/**
 * The stable stringification of a stage's params (keys `as_of`, `config_hash`, [`counted`,]
 * `inputs`, every value a string as JSON.stringify writes it): byte for byte what
 * fast-json-stable-stringify gives for {@link paramsOf}'s object.
 */
export function paramsText(p: StageParams): string {
  const q = JSON.stringify;
  const counted = (p as Partial<CountedParams>).counted;
  return `{"as_of":${q(p.as_of)},"config_hash":${q(p.config_hash)},${counted === undefined ? '' : `"counted":${q(counted)},`}"inputs":${q(p.inputs)}}`;
}
