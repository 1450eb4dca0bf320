import { join } from 'node:path';
import { UsageError } from '../../src/guard/errors.js';
import type { WorkspacePaths } from '../../src/storage/paths.js';
import { safeExists, safeReaddir } from '../../src/storage/safe-path.js';

/** Folders of manifests/ that are not steps. */
const NOT_STEPS = new Set(['current', 'backfills']);

/**
 * Whether a run id is taken in the workspace: some step has a manifest folder
 * `manifests/<step>/date=<D>/run=<id>/`, or a backfill has that id (`manifests/backfills/<id>/`).
 * Reads folder names only, never a manifest, so a damaged one does not hide its run.
 */
export function runIdTaken(ws: WorkspacePaths, runId: string): boolean {
  if (safeExists(join(ws.manifests, 'backfills', runId))) return true;
  for (const step of safeReaddir(ws.manifests)) {
    if (NOT_STEPS.has(step)) continue;
    for (const dd of safeReaddir(join(ws.manifests, step))) {
      if (dd.startsWith('date=') && safeExists(join(ws.manifests, step, dd, `run=${runId}`))) return true;
    }
  }
  return false;
}

/**
 * Refuses a `--run-id` that names a run the workspace already has: its manifests would be
 * overwritten and its history lost.
 * @throws UsageError (exit 64) naming the id.
 */
export function assertRunIdFree(ws: WorkspacePaths, runId: string): void {
  if (!runIdTaken(ws, runId)) return;
  throw new UsageError(`--run-id ${runId} names a run that already exists in ${ws.manifests}; nothing was run`, {
    hint: 'leave --run-id out for a new time-based id, or pick an unused one (metaspn runs list shows them)',
  });
}
