import { join } from 'node:path';
import { writeAtomicSync } from './atomic.js';
import type { WorkspacePaths } from './paths.js';
import { safeMkdir, safeReaddir } from './safe-path.js';
import { readStateJson, shape, StateFileError } from './state-file.js';

/**
 * manifests/current/<pipeline>/date=<D>.json: which run is published as current for a date.
 * Replaced atomically, and only after every check of the run passed.
 */
export interface CurrentPointer {
  pipeline: string;
  date: string;
  run_id: string;
  summary_id: string;
  published_at: string;
  params: { as_of: string; config_hash: string };
}

export function pointerDir(ws: WorkspacePaths, pipeline: string): string {
  return join(ws.manifests, 'current', pipeline);
}

export function pointerPath(ws: WorkspacePaths, pipeline: string, date: string): string {
  return join(pointerDir(ws, pipeline), `date=${date}.json`);
}

/** What to do about a damaged pointer: doctor rewrites it from the ledger, which records every move. */
export const POINTER_REPAIR_HINT = 'pointers are replaced atomically, so this one was changed outside metaspn: `metaspn doctor --repair` rewrites it from the ledger';

const pointerShape = shape({ pipeline: 'string', date: 'string', run_id: 'string', summary_id: 'string', published_at: 'string', params: 'object' });
const paramsShape = shape({ as_of: 'string', config_hash: 'string' });

/**
 * The date's current pointer, or null when the date has none. A pointer file that is not JSON,
 * lacks a field, or names another pipeline or date throws StateFileError (30) naming the file.
 */
export function readPointer(ws: WorkspacePaths, pipeline: string, date: string): CurrentPointer | null {
  const p = pointerPath(ws, pipeline, date);
  return readStateJson<CurrentPointer>(
    p,
    (v) => {
      const bad = pointerShape(v);
      if (bad) return bad;
      const o = v as CurrentPointer;
      const badParams = paramsShape(o.params);
      if (badParams) return `params: ${badParams}`;
      if (o.pipeline !== pipeline || o.date !== date) return `names ${o.pipeline} ${o.date}, not ${pipeline} ${date}`;
      return null;
    },
    POINTER_REPAIR_HINT,
  );
}

/** The pointers of a pipeline that do not read back, each as its StateFileError. */
export function damagedPointers(ws: WorkspacePaths, pipeline: string): StateFileError[] {
  const out: StateFileError[] = [];
  for (const date of pointerDates(ws, pipeline)) {
    try {
      readPointer(ws, pipeline, date);
    } catch (err) {
      if (err instanceof StateFileError) out.push(err);
      else throw err;
    }
  }
  return out;
}

/**
 * Refuses to start work on a workspace whose published state does not read back: a run reads the
 * earlier dates' pointers (settlement, guardrails), so one damaged pointer would otherwise fail a
 * task deep inside the run. Throws the first damaged pointer's StateFileError (30), naming the file.
 */
export function assertPointersReadable(ws: WorkspacePaths, pipeline: string): void {
  const bad = damagedPointers(ws, pipeline);
  if (bad.length === 0) return;
  const first = bad[0]!;
  if (bad.length === 1) throw first;
  throw new StateFileError(first.path, `${first.message.slice(first.path.length + 2)} (and ${bad.length - 1} more damaged pointer(s))`, POINTER_REPAIR_HINT);
}

export function writePointer(ws: WorkspacePaths, ptr: CurrentPointer): void {
  safeMkdir(pointerDir(ws, ptr.pipeline));
  writeAtomicSync(pointerPath(ws, ptr.pipeline, ptr.date), `${JSON.stringify(ptr, null, 2)}\n`);
}

/** Dates with a current pointer, ascending. */
export function pointerDates(ws: WorkspacePaths, pipeline: string): string[] {
  const dir = pointerDir(ws, pipeline);
  return safeReaddir(dir)
    .map((f) => /^date=(\d{4}-\d{2}-\d{2})\.json$/.exec(f)?.[1])
    .filter((d): d is string => d !== undefined)
    .sort();
}
