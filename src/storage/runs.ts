import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { mostSevere } from '../guard/exit-codes.js';
import { readManifest, type Manifest } from './manifest.js';
import type { WorkspacePaths } from './paths.js';
import { readPointer } from './pointers.js';

/** A run, as its manifests tell it. */
export interface RunInfo {
  run_id: string;
  pipeline: string;
  date: string;
  as_of: string;
  retry_of_run_id: string | null;
  started_at: string;
  finished_at: string;
  duration_ms: number;
  /** incomplete: every step it ran succeeded, but it stopped before the last (a blocked backfill date). */
  status: 'success' | 'failed' | 'incomplete';
  /** The date's current pointer names this run. */
  current: boolean;
  exit_code: number;
  failure: string | null;
  steps: { step: string; status: string; duration_ms: number; exit_code: number; manifest: string }[];
}

const NOT_STEPS = new Set(['current', 'backfills']);

/** Every manifest of the workspace, by run. */
/** Steps a complete run of each pipeline has. */
const STEPS_OF: Record<string, number> = { s1: 4 };

export function listRuns(ws: WorkspacePaths, filter: { date?: string } = {}): RunInfo[] {
  if (!existsSync(ws.manifests)) return [];
  const byRun = new Map<string, { m: Manifest; path: string }[]>();
  for (const step of readdirSync(ws.manifests)) {
    if (NOT_STEPS.has(step)) continue;
    const stepDir = join(ws.manifests, step);
    for (const dd of safeList(stepDir)) {
      if (filter.date && dd !== `date=${filter.date}`) continue;
      for (const rr of safeList(join(stepDir, dd))) {
        const path = join(stepDir, dd, rr, 'manifest.json');
        const m = readManifest(path);
        if (!m) continue;
        const list = byRun.get(m.run_id) ?? [];
        list.push({ m, path });
        byRun.set(m.run_id, list);
      }
    }
  }
  const runs = [...byRun.entries()].map(([run_id, list]) => toRun(ws, run_id, list));
  return runs.sort((a, b) => (a.started_at < b.started_at ? 1 : a.started_at > b.started_at ? -1 : 0));
}

export function findRun(ws: WorkspacePaths, runId: string): RunInfo | null {
  return listRuns(ws).find((r) => r.run_id === runId) ?? null;
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function toRun(ws: WorkspacePaths, run_id: string, list: { m: Manifest; path: string }[]): RunInfo {
  list.sort((a, b) => (a.m.started_at < b.m.started_at ? -1 : a.m.started_at > b.m.started_at ? 1 : 0));
  const first = list[0]!.m;
  const last = list[list.length - 1]!.m;
  const failed = list.find((x) => x.m.status === 'failed')?.m;
  const ptr = readPointer(ws, first.pipeline, first.date);
  return {
    run_id,
    pipeline: first.pipeline,
    date: first.date,
    as_of: first.as_of,
    retry_of_run_id: first.retry_of_run_id ?? null,
    started_at: first.started_at,
    finished_at: last.finished_at,
    duration_ms: Date.parse(last.finished_at) - Date.parse(first.started_at),
    status: failed ? 'failed' : list.length < (STEPS_OF[first.pipeline] ?? list.length) ? 'incomplete' : 'success',
    current: ptr?.run_id === run_id,
    exit_code: mostSevere(list.map((x) => x.m.exit_code)),
    failure: failed?.error ? `${failed.step}: ${failed.error.message}` : null,
    steps: list.map((x) => ({ step: x.m.step, status: x.m.status, duration_ms: x.m.duration_ms, exit_code: x.m.exit_code, manifest: x.path })),
  };
}
