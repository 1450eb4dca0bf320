import { basename, dirname, join } from 'node:path';
import { writeAtomicSync } from './atomic.js';
import { safeReaddir } from './safe-path.js';
import type { WorkspacePaths } from './paths.js';
import { readStateJson, shape, StateFileError } from './state-file.js';

export interface ManifestCheck {
  name: string;
  status: 'pass' | 'fail' | 'skipped';
  observed: unknown;
  expected: unknown;
  /** Why a check was skipped (e.g. `--skip-check NAME --reason TEXT`). */
  note?: string;
}

/** One step of one run: what it read, what it wrote, what it checked, how it ended. */
export interface Manifest {
  schema_version: 1;
  pipeline: string;
  run_id: string;
  retry_of_run_id?: string;
  step: string;
  date: string;
  as_of: string;
  params: Record<string, unknown>;
  status: 'success' | 'failed';
  started_at: string;
  finished_at: string;
  duration_ms: number;
  tasks: { total: number; enqueued: number; rerun: number; already_queued: number; completed: number; retried: number; dead: number };
  inputs: { path: string; sha256: string; rows: number }[];
  /** sha256 is over this step's rows for the date and params, in id order: stable as the file grows. */
  outputs: { path: string; rows_written: number; rows_present: number; sha256: string }[];
  checks: ManifestCheck[];
  error?: { class: string; message: string };
  exit_code: number;
}

export function manifestPath(ws: WorkspacePaths, step: string, date: string, runId: string): string {
  return join(ws.manifests, step, `date=${date}`, `run=${runId}`, 'manifest.json');
}

/** Written atomically (temp, fsync, rename, fsync of the folder): a manifest is whole or absent. */
export function writeManifest(ws: WorkspacePaths, m: Manifest): string {
  const path = manifestPath(ws, m.step, m.date, m.run_id);
  writeAtomicSync(path, `${JSON.stringify(m, null, 2)}\n`);
  return path;
}

/** What to do about a damaged manifest: doctor sets it aside; the run it belonged to can be run again. */
export const MANIFEST_REPAIR_HINT =
  'manifests are written atomically, so this one was changed outside metaspn: restore it from a backup, or `metaspn doctor --repair` moves it to quarantine/ (its run then lacks that step; re-run the date if it was published)';

const manifestShape = shape({
  schema_version: 'number',
  pipeline: 'string',
  run_id: 'string',
  step: 'string',
  date: 'string',
  as_of: 'string',
  params: 'object',
  status: 'string',
  started_at: 'string',
  finished_at: 'string',
  duration_ms: 'number',
  tasks: 'object',
  inputs: 'array',
  outputs: 'array',
  checks: 'array',
  exit_code: 'number',
});

/** The rule a manifest at `path` breaks, or null: its shape, and the step, date and run its folders name. */
function checkManifest(path: string, v: unknown): string | null {
  const bad = manifestShape(v);
  if (bad) return bad;
  const m = v as Manifest;
  if (m.status !== 'success' && m.status !== 'failed') return `status "${String(m.status)}" is neither success nor failed`;
  if (Number.isNaN(Date.parse(m.started_at)) || Number.isNaN(Date.parse(m.finished_at))) return 'started_at or finished_at is not a time';
  const runDir = dirname(path);
  const dateDir = dirname(runDir);
  if (basename(path) === 'manifest.json' && /^run=/.test(basename(runDir)) && /^date=/.test(basename(dateDir))) {
    const where = `${basename(dirname(dateDir))}/${basename(dateDir)}/${basename(runDir)}`;
    if (`${m.step}/date=${m.date}/run=${m.run_id}` !== where) return `says step ${m.step}, date ${m.date}, run ${m.run_id}, but lies in ${where}`;
  }
  return null;
}

/**
 * One manifest; null when there is none. A manifest that is not JSON, lacks a field, or does not
 * match the folder it lies in throws StateFileError (30) naming the file.
 */
export function readManifest(path: string): Manifest | null {
  return readStateJson<Manifest>(path, (v) => checkManifest(path, v), MANIFEST_REPAIR_HINT);
}

/**
 * Every manifest of a step and date, oldest run first by start time. A damaged one throws
 * StateFileError (30), unless `onDamaged` is given: then it is handed to it and skipped.
 */
export function manifestsOf(ws: WorkspacePaths, step: string, date: string, onDamaged?: (err: StateFileError) => void): Manifest[] {
  const dir = join(ws.manifests, step, `date=${date}`);
  const out: Manifest[] = [];
  for (const d of safeReaddir(dir).filter((x) => x.startsWith('run='))) {
    try {
      const m = readManifest(join(dir, d, 'manifest.json'));
      if (m) out.push(m);
    } catch (err) {
      if (!(err instanceof StateFileError) || !onDamaged) throw err;
      onDamaged(err);
    }
  }
  return out.sort((a, b) => (a.started_at < b.started_at ? -1 : 1));
}
