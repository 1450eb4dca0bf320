import { nearest } from '../config/nearest.js';
import { UsageError } from '../guard/errors.js';
import { readStats } from '../queue/file/stats-file.js';
import type { QueueStats } from '../queue/types.js';
import { bundledQueues } from '../runtime/load-worker.js';
import { queueDir, queueFolders, type WorkspacePaths } from '../storage/paths.js';

/** The queues a workspace has: the bundled workers' and any with a folder. */
export function queueNamesOf(ws: WorkspacePaths): string[] {
  return [...new Set([...bundledQueues(), ...queueFolders(ws, { deadLetters: true })])].sort();
}

/**
 * A queue name the workspace does not have: one line naming the nearest existing queue when one is
 * close ("did you mean settle_season?"), else the queues there are. Never a hint to create the typo.
 */
export function unknownQueueError(ws: WorkspacePaths, name: string): UsageError {
  return unknownQueueIn(ws.root, name, queueNamesOf(ws), `metaspn queue list --workspace ${ws.root}`);
}

/** {@link unknownQueueError} over the queues `names` of a backend at `where` (a workspace folder, or a database schema). */
export function unknownQueueIn(where: string, name: string, names: readonly string[], listCommand: string): UsageError {
  const near = nearest(name, names);
  const list = names.length > 12 ? `${names.slice(0, 12).join(', ')} and ${names.length - 12} more` : names.join(', ');
  return new UsageError(`unknown queue "${name}" in ${where}${near ? `: did you mean ${near}?` : ''}`, {
    hint: `queues here: ${list || '(none)'}; \`${listCommand}\` shows their counts`,
  });
}

/**
 * For a queue about to be created (an enqueue, a worker draining it): the existing queue its name is
 * one typo away from, or null (the queue exists, or nothing is close). Enqueueing to a new queue is
 * allowed; the caller warns.
 */
export function nearQueueOfNew(ws: WorkspacePaths, name: string): string | null {
  const names = queueNamesOf(ws);
  return names.includes(name) ? null : nearest(name, names);
}

/** A queue's stats with the age of its oldest ready task (what /ops, /metrics and the alert rules read). */
export interface QueueView extends QueueStats {
  oldest_ready_age_s: number | null;
}

/** A queue's view from its stats file (the file backend). */
export function queueView(ws: WorkspacePaths, name: string, now = Date.now()): QueueView {
  const { source: _source, ...s } = readStats(queueDir(ws, name), name, now);
  return { ...s, oldest_ready_age_s: s.oldest_ready_at === null ? null : Math.max(0, (now - s.oldest_ready_at) / 1000) };
}
