import type { S1Config } from '../config.js';
import { DATE_LEVEL_SUBJECT, deterministicId, paramsOf, paramsText, quotedIdMaker, type CountedParams, type Params, type Stage, type StageParams } from '../ids.js';
import type { SubjectScore } from './attention.js';
import { compareText, round6 } from './order.js';
import type { Projection, ScoredSubject } from './rewards.js';
import { settlementStatus, type ProjectedUnits, type SettledSubject, type Settlement, type SettlementStatus } from './settle.js';
import { buildSummaryTop, type TopEntry } from './summary.js';

/**
 * The four store rows, with exactly the spec's fields in the spec's order. Each gets a fresh
 * `params` object so rows never share (and never mutate) one another's params: stages 1 and 2
 * `{as_of, config_hash, inputs}`, stages 3 and 4 the same plus `counted`.
 */

/** A row of `store/s1_attention_scores.jsonl`. */
export type AttentionRow = {
  id: string;
  stage: 'update_attention_scores';
  date: string;
  subject_ref: string;
  score: number;
  signal_count: number;
  params: Params;
};

/** A row of `store/s1_reward_projections.jsonl`. */
export type ProjectionRow = {
  id: string;
  stage: 'project_rewards';
  date: string;
  subject_ref: string;
  score: number;
  projected_units: number;
  params: Params;
};

/** A row of `store/s1_settlements.jsonl`. */
export type SettlementRow = {
  id: string;
  stage: 'settle_season';
  date: string;
  season_id: string;
  subject_ref: string;
  settled_units: number;
  days_counted: number;
  status: SettlementStatus;
  params: CountedParams;
};

/** The row of `store/s1_summaries.jsonl`. */
export type SummaryRow = {
  id: string;
  stage: 'publish_season_summary';
  date: string;
  season_id: string;
  params: CountedParams;
  subjects_scored: number;
  total_score: number;
  pool_units: number;
  allocated_units: number;
  settlement_status: SettlementStatus;
  days_counted: number;
  top: TopEntry[];
};

/** The attention row of one subject; id `att_…` over (stage, date, subject_ref, params). */
export function attentionRow(date: string, s: SubjectScore, params: Params): AttentionRow {
  const stage = 'update_attention_scores';
  return {
    id: deterministicId(stage, date, s.subject_ref, params),
    stage,
    date,
    subject_ref: s.subject_ref,
    score: s.score,
    signal_count: s.signal_count,
    params: paramsOf(stage, params) as Params,
  };
}

/** The projection row of one subject; id `rwd_…` over (stage, date, subject_ref, params). */
export function projectionRow(date: string, p: Projection, params: Params): ProjectionRow {
  const stage = 'project_rewards';
  return {
    id: deterministicId(stage, date, p.subject_ref, params),
    stage,
    date,
    subject_ref: p.subject_ref,
    score: p.score,
    projected_units: p.projected_units,
    params: paramsOf(stage, params) as Params,
  };
}

/**
 * The settlement row of one subject; id `stl_…` over (stage, date, subject_ref, params);
 * `status` is `final` when `date == season.end`.
 */
export function settlementRow(date: string, season: S1Config['season'], s: SettledSubject, params: CountedParams): SettlementRow {
  const stage = 'settle_season';
  return {
    id: deterministicId(stage, date, s.subject_ref, params),
    stage,
    date,
    season_id: season.id,
    subject_ref: s.subject_ref,
    settled_units: s.settled_units,
    days_counted: s.days_counted,
    status: settlementStatus(date, season.end),
    params: paramsOf(stage, params) as CountedParams,
  };
}

/** Inputs of {@link summaryRow}: the date's rows of the three earlier stages. */
export type SummaryInput = {
  date: string;
  season: S1Config['season'];
  params: CountedParams;
  /** The date's attention scores (every row, score 0 included). */
  scores: readonly ScoredSubject[];
  /** The date's projections (empty when no score was > 0). */
  projections: readonly ProjectedUnits[];
  settlement: Settlement;
};

/**
 * The date's summary row; id `sum_…` with subject_ref `"*"`. `subjects_scored` counts the date's
 * attention rows (score 0 included); `total_score` = round6 of their sum in subject_ref order;
 * `allocated_units` = the date's projected units (0 with `pool_units` unallocated when nobody
 * scored > 0); `days_counted` = the settlement's counted dates; `top` per {@link buildSummaryTop}.
 */
export function summaryRow(input: SummaryInput): SummaryRow {
  const { date, season, params, scores, projections, settlement } = input;
  const stage = 'publish_season_summary';
  let total = 0;
  for (const s of [...scores].sort((a, b) => compareText(a.subject_ref, b.subject_ref))) total += s.score;
  let allocated = 0;
  for (const p of projections) allocated += p.projected_units;
  return {
    id: deterministicId(stage, date, DATE_LEVEL_SUBJECT, params),
    stage,
    date,
    season_id: season.id,
    params: paramsOf(stage, params) as CountedParams,
    subjects_scored: scores.length,
    total_score: round6(total),
    pool_units: season.daily_pool_units,
    allocated_units: allocated,
    settlement_status: settlementStatus(date, season.end),
    days_counted: settlement.dates_counted,
    top: buildSummaryTop(settlement.rows, scores, projections),
  };
}

/*
 * The stored texts of the rows stages 1–3 write a hundred thousand at a time, written out with
 * their keys in sorted order: byte for byte the canonical stable stringification (strings as
 * JSON.stringify, finite numbers as String), without sorting the keys of every row.
 */

const q = JSON.stringify;
const num = (n: number): string => (Number.isFinite(n) ? String(n) : 'null');

/** The stored text of an attention row ({@link attentionRow}): its canonical JSON. */
export function attentionRowText(r: AttentionRow): string {
  return `{"date":${q(r.date)},"id":${q(r.id)},"params":${paramsText(r.params)},"score":${num(r.score)},"signal_count":${num(r.signal_count)},"stage":${q(r.stage)},"subject_ref":${q(r.subject_ref)}}`;
}

/** The stored text of a projection row ({@link projectionRow}): its canonical JSON. */
export function projectionRowText(r: ProjectionRow): string {
  return `{"date":${q(r.date)},"id":${q(r.id)},"params":${paramsText(r.params)},"projected_units":${num(r.projected_units)},"score":${num(r.score)},"stage":${q(r.stage)},"subject_ref":${q(r.subject_ref)}}`;
}

/** The stored text of a settlement row ({@link settlementRow}): its canonical JSON. */
export function settlementRowText(r: SettlementRow): string {
  return `{"date":${q(r.date)},"days_counted":${num(r.days_counted)},"id":${q(r.id)},"params":${paramsText(r.params)},"season_id":${q(r.season_id)},"settled_units":${num(r.settled_units)},"stage":${q(r.stage)},"status":${q(r.status)},"subject_ref":${q(r.subject_ref)}}`;
}

/** A row as the store takes it: its id and its stored text. */
export type RowIdText = { id: string; text: string };

/*
 * The same texts made straight from a stage's results, without a row object per subject: what
 * does not depend on the subject (the date, the params, their texts and the id's hash prefix) is
 * written once per (stage, date, params), and each subject is JSON-quoted once for its id and its
 * text. Byte for byte the text of the row the functions above build (tests compare them).
 */

/** The maker of (stage, date, params): `text` writes a row from the item, its id and its quoted subject. */
function subjectRowMaker<T extends { subject_ref: string }>(stage: Stage, date: string, params: StageParams, text: (x: T, id: string, subject: string) => string): (x: T) => RowIdText {
  const idOf = quotedIdMaker(stage, date, params);
  return (x) => {
    const subject = q(x.subject_ref);
    const id = idOf(subject);
    return { id, text: text(x, id, subject) };
  };
}

/**
 * The fixed pieces of a row whose keys after `date` are `id`, `params`, `key`, …, `stage`,
 * `subject_ref` (attention and projection rows): the text up to the id's first digit, from the
 * id's end to `key`'s value, and from the last value before `stage` to the quoted subject.
 */
function idFirstPieces(stage: Stage, date: string, params: Params, key: string): { head: string; mid: string; tail: string } {
  return {
    head: `{"date":${q(date)},"id":"`,
    mid: `","params":${paramsText(paramsOf(stage, params))},"${key}":`,
    tail: `,"stage":${q(stage)},"subject_ref":`,
  };
}

/** {@link attentionRowText} of {@link attentionRow} for each subject scored on `date` under `params`. */
export function attentionRowMaker(date: string, params: Params): (s: SubjectScore) => RowIdText {
  const stage = 'update_attention_scores';
  const { head, mid, tail } = idFirstPieces(stage, date, params, 'score');
  return subjectRowMaker(stage, date, params, (s: SubjectScore, id, subject) => `${head}${id}${mid}${num(s.score)},"signal_count":${num(s.signal_count)}${tail}${subject}}`);
}

/** {@link projectionRowText} of {@link projectionRow} for each projection of `date` under `params`. */
export function projectionRowMaker(date: string, params: Params): (x: Projection) => RowIdText {
  const stage = 'project_rewards';
  const { head, mid, tail } = idFirstPieces(stage, date, params, 'projected_units');
  return subjectRowMaker(stage, date, params, (x: Projection, id, subject) => `${head}${id}${mid}${num(x.projected_units)},"score":${num(x.score)}${tail}${subject}}`);
}

/** {@link settlementRowText} of {@link settlementRow} for each subject settled on `date` under `params`. */
export function settlementRowMaker(date: string, season: S1Config['season'], params: CountedParams): (s: SettledSubject) => RowIdText {
  const stage = 'settle_season';
  const head = `{"date":${q(date)},"days_counted":`;
  const mid = `","params":${paramsText(paramsOf(stage, params))},"season_id":${q(season.id)},"settled_units":`;
  const tail = `,"stage":${q(stage)},"status":${q(settlementStatus(date, season.end))},"subject_ref":`;
  return subjectRowMaker(stage, date, params, (s: SettledSubject, id, subject) => `${head}${num(s.days_counted)},"id":"${id}${mid}${num(s.settled_units)}${tail}${subject}}`);
}
