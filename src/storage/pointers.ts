import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeAtomicSync } from './atomic.js';
import type { WorkspacePaths } from './paths.js';

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

export function readPointer(ws: WorkspacePaths, pipeline: string, date: string): CurrentPointer | null {
  const p = pointerPath(ws, pipeline, date);
  if (!existsSync(p)) return null;
  return JSON.parse(readFileSync(p, 'utf8')) as CurrentPointer;
}

export function writePointer(ws: WorkspacePaths, ptr: CurrentPointer): void {
  mkdirSync(pointerDir(ws, ptr.pipeline), { recursive: true });
  writeAtomicSync(pointerPath(ws, ptr.pipeline, ptr.date), `${JSON.stringify(ptr, null, 2)}\n`);
}

/** Dates with a current pointer, ascending. */
export function pointerDates(ws: WorkspacePaths, pipeline: string): string[] {
  const dir = pointerDir(ws, pipeline);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((f) => /^date=(\d{4}-\d{2}-\d{2})\.json$/.exec(f)?.[1])
    .filter((d): d is string => d !== undefined)
    .sort();
}
