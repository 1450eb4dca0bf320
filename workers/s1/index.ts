/**
 * The Season 1 workers, bundled as `metaspn_ops.workers.s1:<Export>`:
 * `metaspn worker run metaspn_ops.workers.s1:ProjectRewardsWorker --workspace . --once --max-tasks 1`.
 */
export { UpdateAttentionScoresWorker, ProjectRewardsWorker, SettleSeasonWorker, PublishSeasonSummaryWorker } from './workers.js';
