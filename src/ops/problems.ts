import { join } from 'node:path';
import type { WorkspacePaths } from '../storage/paths.js';
import { safeExists, safeReaddir } from '../storage/safe-path.js';
import { damagedPointers } from '../storage/pointers.js';
import { readRuns } from '../storage/runs.js';
import { problemOf, StateFileError, type StateFileProblem } from '../storage/state-file.js';
import { alertStateProblem } from './alerts/state.js';
import { eventFiles, readEventRecord } from './signature.js';
import { readRunStartFile, runStartFiles } from './run-start.js';

/** Reads each file; the damaged ones as problems. */
function scan(ws: WorkspacePaths, kind: StateFileProblem['kind'], files: string[], read: (path: string) => unknown): StateFileProblem[] {
  const out: StateFileProblem[] = [];
  for (const f of files) {
    try {
      read(f);
    } catch (err) {
      if (!(err instanceof StateFileError)) throw err;
      out.push(problemOf(ws, kind, err));
    }
  }
  return out;
}

/** The pipelines with a pointer folder (manifests/current/<pipeline>), whatever the config says. */
function pointerFolders(ws: WorkspacePaths): string[] {
  const dir = join(ws.manifests, 'current');
  return safeExists(dir) ? safeReaddir(dir).filter((n) => /^[a-z][a-z0-9_-]{0,63}$/.test(n)) : [];
}

/**
 * Every workspace state file the server reads that does not read back: manifests and current
 * pointers (run history), event records, records of runs started from the server, the alert
 * state. Each named with why; `metaspn doctor --repair` fixes them.
 */
export function stateFileProblems(ws: WorkspacePaths, runProblems: StateFileProblem[] = readRuns(ws).problems): StateFileProblem[] {
  const all = [
    ...runProblems,
    ...pointerFolders(ws).flatMap((name) => damagedPointers(ws, name).map((e) => problemOf(ws, 'pointer', e))),
    ...scan(ws, 'event', eventFiles(ws), readEventRecord),
    ...scan(ws, 'run_start', runStartFiles(ws), readRunStartFile),
  ];
  const alerts = alertStateProblem(ws);
  if (alerts) all.push(alerts);
  const seen = new Set<string>();
  return all.filter((p) => !seen.has(p.path) && seen.add(p.path));
}
