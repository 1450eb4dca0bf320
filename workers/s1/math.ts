/**
 * The pure Season 1 computations, no I/O: attention scores, reward projection, settlement,
 * summary and the four store rows. Each lives in a small file under `math/`.
 */
export { compareText, round6 } from './math/order.js';
export { attentionForColumns, attentionForSubject, compareSignals, groupBySubject, scoreSubjects, type AttentionConfig, type SubjectScore } from './math/attention.js';
export { projectRewards, type Projection, type ScoredSubject } from './math/rewards.js';
export { settle, settlementStatus, type Conservation, type ProjectedUnits, type SettledSubject, type Settlement, type SettlementStatus } from './math/settle.js';
export { buildSummaryTop, TOP_SIZE, type TopEntry } from './math/summary.js';
export {
  attentionRow,
  attentionRowMaker,
  attentionRowText,
  projectionRow,
  projectionRowMaker,
  projectionRowText,
  settlementRow,
  settlementRowMaker,
  settlementRowText,
  summaryRow,
  type AttentionRow,
  type ProjectionRow,
  type RowIdText,
  type SettlementRow,
  type SummaryInput,
  type SummaryRow,
} from './math/rows.js';
