/** Season 1's pointer history: the core's (src/pipeline/pointer-history.ts) for pipeline s1. */
export { findEntry, pointerChanges, pointersAt, stepsBack } from '../../src/pipeline/pointer-history.js';
export type { PointerChange, PointerHistory, PublishNode } from '../../src/pipeline/pointer-history.js';
import { pointerHistory as forPipeline, type PointerHistory } from '../../src/pipeline/pointer-history.js';
import type { LedgerEntry } from '../../src/storage/ledger.js';

export function pointerHistory(entries: readonly LedgerEntry[]): PointerHistory {
  return forPipeline(entries, 's1');
}
