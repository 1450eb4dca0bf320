/**
 * Season 1's store file names, in a module of their own: the entry point registers the bundle
 * (which names them) at every start, and need not load the stages' code (context.ts) for that.
 */
export const PIPELINE = 's1';

/** The four artifact files of Season 1, by stage. */
export const STORE_FILES = {
  update_attention_scores: 's1_attention_scores.jsonl',
  project_rewards: 's1_reward_projections.jsonl',
  settle_season: 's1_settlements.jsonl',
  publish_season_summary: 's1_summaries.jsonl',
} as const;
