import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeAtomicSync } from './atomic.js';
import type { WorkspacePaths } from './paths.js';

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

export function readManifest(path: string): Manifest | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Manifest;
  } catch {
    return null;
  }
}

/** Every manifest of a step and date, oldest run first by start time. */
export function manifestsOf(ws: WorkspacePaths, step: string, date: string): Manifest[] {
  const dir = join(ws.manifests, step, `date=${date}`);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((d) => d.startsWith('run='))
    .map((d) => readManifest(join(dir, d, 'manifest.json')))
    .filter((m): m is Manifest => m !== null)
    .sort((a, b) => (a.started_at < b.started_at ? -1 : 1));
}
