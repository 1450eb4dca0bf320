import { hash } from 'node:crypto';
import stringify from 'fast-json-stable-stringify';

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

/** The `params` of every stage: the canonical as-of instant and the config hash. */
export type Params = { as_of: string; config_hash: string };

/** Builds {@link Params} with exactly its two keys. */
export function makeParams(asOf: string, configHash: string): Params {
  return { as_of: asOf, config_hash: configHash };
}

/**
 * The deterministic id of a task or an artifact row: `<prefix>_` + the first 24 hex digits of
 * sha256(stable-stringify({stage, date, subject_ref, params})).
 * @param subjectRef the subject, or {@link DATE_LEVEL_SUBJECT} (`"*"`) for date-level ones.
 */
export function deterministicId(stage: Stage, date: string, subjectRef: string, params: Params): string {
  // Rebuild params so a caller's extra keys can never leak into the hash.
  const payload = { stage, date, subject_ref: subjectRef, params: makeParams(params.as_of, params.config_hash) };
  const hex = hash('sha256', stringify(payload), 'hex');
  return `${STAGE_PREFIX[stage]}_${hex.slice(0, 24)}`;
}
