import type { Logger } from 'pino';
import { UsageError } from '../guard/errors.js';
import type { Queue } from '../queue/types.js';
import { Ledger } from '../storage/ledger.js';
import type { WorkspacePaths } from '../storage/paths.js';

/** What to discard from a worker's dead letters, and who asks why. */
export interface DiscardRequest {
  worker: string;
  /** These dead letters, or every one. */
  ids: readonly string[] | 'all';
  /** Why: recorded on each task and in the ledger. Required, not blank (but for a dry run). */
  reason: string;
  /** Who: the `by` of the ledger entry and the tasks (`user@host: metaspn …`, `ops <ip> <actor>`). */
  by: string;
  /** List what would be discarded, change nothing. */
  dryRun: boolean;
}

/** What a discard did (or, with `dry_run`, would do). */
export interface DiscardReport {
  worker: string;
  dry_run: boolean;
  /** The ids discarded (dry run: that would be), in the order asked, or enqueue order for all. */
  discarded: string[];
  /** Ids asked for that were no longer dead letters when the discard ran (a retry got there first). */
  skipped: string[];
  reason: string;
  by: string;
  /** The `deadletter_discard` ledger entry's seq; null when nothing was discarded (or a dry run). */
  ledger_seq: number | null;
}

/**
 * Ids given that are not among the worker's dead letters: nothing is discarded (exit 64; HTTP 404).
 */
export class NotDeadLettersError extends UsageError {
  readonly statusCode = 404;
  constructor(
    readonly worker: string,
    readonly ids: readonly string[],
  ) {
    super(`not in the dead letters of ${worker}: ${ids.slice(0, 10).map((id) => (id.length > 80 ? `${id.slice(0, 80)}…` : id)).join(', ')}${ids.length > 10 ? ` and ${ids.length - 10} more` : ''}; nothing was discarded`, {
      hint: `list them: metaspn queue deadletter list ${worker}`,
    });
    this.name = 'NotDeadLettersError';
  }
}

/**
 * Discards dead letters of one worker: checks every id first (one that is not a dead letter and
 * nothing is discarded), then `Queue.discard` (the tasks become cancelled, their dead-letter files
 * go), then a `deadletter_discard` ledger entry with the ids, who and why. The CLI and the ops API
 * both come here.
 * @throws UsageError for a blank reason (but in a dry run); NotDeadLettersError for ids that are not dead letters.
 */
export async function discardDeadLetters(ws: WorkspacePaths, q: Queue, r: DiscardRequest, log: Logger): Promise<DiscardReport> {
  const reason = r.reason.trim();
  if (!reason && !r.dryRun) throw new UsageError('a reason is required: say why these dead letters are given up (it is recorded in the ledger)');
  const asked = r.ids === 'all' ? null : [...new Set(r.ids)];
  if (asked && asked.length === 0) throw new UsageError('name at least one task id, or discard them all');
  // The queue's state decides (a round: a file queue's log is loaded and its dead-letter files made to agree with it).
  const states = await q.states(asked ?? []);
  if (asked) {
    const unknown = asked.filter((_, i) => states[i] !== 'dead');
    if (unknown.length) throw new NotDeadLettersError(r.worker, unknown);
  }
  const targets = asked ?? (await q.listDead()).map((d) => d.task.id).sort();
  const base = { worker: r.worker, reason, by: r.by };
  if (r.dryRun) return { ...base, dry_run: true, discarded: targets, skipped: [], ledger_seq: null };
  const discarded = await q.discard({ ...(asked ? { ids: asked } : {}), by: r.by, reason });
  const skipped = asked ? asked.filter((id) => !discarded.includes(id)) : [];
  let seq: number | null = null;
  if (discarded.length) seq = (await new Ledger(ws).append('deadletter_discard', { worker: r.worker, ids: discarded, reason, by: r.by })).seq;
  log.info({ event: 'queue_discard', worker: r.worker, discarded, skipped, reason, ledger_seq: seq }, `discarded ${discarded.length} dead letter(s)`);
  return { ...base, dry_run: false, discarded, skipped, ledger_seq: seq };
}
