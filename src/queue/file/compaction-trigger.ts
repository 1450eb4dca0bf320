import type { Retention } from './compact.js';
import type { LoadedLog } from './loader.js';
import { S_COMPLETED } from './slots.js';

/** About what a completed task's tombstone takes in a compacted log. */
const KEPT_BYTES = 80;

/**
 * When a round ends with a compaction: once the log exceeds `minBytes` and three times the bytes
 * its live records would take, or when one was asked for (`Queue.compact`, a repair setting corrupt
 * records aside). Waiting until the live part is a third of the file keeps the copying under one
 * write per byte.
 */
export class CompactionTrigger {
  private forced = false;

  constructor(
    readonly retention: Retention,
    private readonly minBytes: number,
  ) {}

  /** The next round ends with a compaction, whatever the log's size. */
  force(): void {
    this.forced = true;
  }

  /** Whether the round that leaves the log ending at `end` compacts it; clears a forced one. */
  take(log: LoadedLog, end: number): boolean {
    const due = this.forced || this.due(log, end);
    this.forced = false;
    return due;
  }

  private due(log: LoadedLog, end: number): boolean {
    if (end < this.minBytes) return false;
    const kept = Math.min(log.idx.counts[S_COMPLETED]!, this.retention.count) * KEPT_BYTES;
    return end > 3 * (log.idx.liveBytes + kept);
  }
}
