import { join } from 'node:path';
import { MetaspnError } from '../guard/errors.js';
import { EXIT, mostSevere } from '../guard/exit-codes.js';
import { readManifest, type Manifest } from './manifest.js';
import type { WorkspacePaths } from './paths.js';
import { readPointer, type CurrentPointer } from './pointers.js';
import { problemOf, StateFileError, type StateFileProblem } from './state-file.js';
import { safeReaddir } from './safe-path.js';

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
  /** The most severe exit code of its steps; at least 11 (BUSINESS_SKIP) when `incomplete`. */
  exit_code: number;
  failure: string | null;
  steps: { step: string; status: string; duration_ms: number; exit_code: number; manifest: string }[];
}

const NOT_STEPS = new Set(['current', 'backfills']);

/** Steps a complete run of each bundled pipeline has (a workspace pipeline's come from its definition: `RunsFilter.stepsOf`). */
const STEPS_OF: Record<string, number> = { s1: 4 };

/** Which runs to read, and what a complete run of each pipeline has. */
export interface RunsFilter {
  date?: string;
  pipeline?: string;
  /** Steps of a complete run, by pipeline, beside the bundled ones: fewer successful steps is `incomplete`. */
  stepsOf?: Readonly<Record<string, number>>;
}

/** The runs that read back, and the run files that do not (skipped, each named). */
export interface RunsRead {
  runs: RunInfo[];
  problems: StateFileProblem[];
}

/** A manifest that read back, and where it is (relative to the workspace on disk; a backend's own name elsewhere). */
export interface ManifestEntry {
  m: Manifest;
  path: string;
}

/**
 * Every manifest under manifests/ that reads back (of one date or pipeline, when the filter says),
 * with its path; a damaged one is skipped and named in `problems`.
 */
export function scanManifests(ws: WorkspacePaths, filter: Pick<RunsFilter, 'date' | 'pipeline'> = {}): { manifests: ManifestEntry[]; problems: StateFileProblem[] } {
  const problems: StateFileProblem[] = [];
  const manifests: ManifestEntry[] = [];
  for (const step of safeList(ws.manifests)) {
    if (NOT_STEPS.has(step)) continue;
    const stepDir = join(ws.manifests, step);
    for (const dd of safeList(stepDir)) {
      if (filter.date && dd !== `date=${filter.date}`) continue;
      for (const rr of safeList(join(stepDir, dd))) {
        const path = join(stepDir, dd, rr, 'manifest.json');
        let m: Manifest | null;
        try {
          m = readManifest(path);
        } catch (err) {
          if (!(err instanceof StateFileError)) throw err;
          problems.push(problemOf(ws, 'manifest', err));
          continue;
        }
        if (!m) continue;
        if (filter.pipeline && m.pipeline !== filter.pipeline) continue;
        manifests.push({ m, path });
      }
    }
  }
  return { manifests, problems };
}

/**
 * The runs the manifests make, newest first: grouped by run id, each with its status, exit code
 * and whether its date's current pointer names it. Pure: `pointerOf` gives a date's pointer (null
 * when it has none or it does not read back).
 */
export function runsFrom(manifests: readonly ManifestEntry[], pointerOf: (pipeline: string, date: string) => CurrentPointer | null, filter: Pick<RunsFilter, 'stepsOf'> = {}): RunInfo[] {
  const byRun = new Map<string, ManifestEntry[]>();
  for (const e of manifests) {
    const list = byRun.get(e.m.run_id) ?? [];
    list.push(e);
    byRun.set(e.m.run_id, list);
  }
  const stepsOf = { ...filter.stepsOf, ...STEPS_OF };
  const runs = [...byRun.entries()].map(([run_id, list]) => toRun(run_id, list, pointerOf, stepsOf));
  runs.sort((a, b) => (a.started_at < b.started_at ? 1 : a.started_at > b.started_at ? -1 : 0));
  return runs;
}

/**
 * Every run of the workspace, from its manifests, newest first. A damaged manifest or pointer
 * (not JSON, a field missing, in the wrong folder) never hides the others: it is skipped and
 * named in `problems`; a run whose pointer is damaged is shown with `current: false`.
 */
export function readRuns(ws: WorkspacePaths, filter: RunsFilter = {}): RunsRead {
  const { manifests, problems } = scanManifests(ws, filter);
  const pointers = new Map<string, CurrentPointer | null>();
  const pointerOf = (pipeline: string, date: string): CurrentPointer | null => {
    const key = `${pipeline}|${date}`;
    if (!pointers.has(key)) {
      try {
        pointers.set(key, readPointer(ws, pipeline, date));
      } catch (err) {
        if (!(err instanceof StateFileError)) throw err;
        problems.push(problemOf(ws, 'pointer', err));
        pointers.set(key, null);
      }
    }
    return pointers.get(key)!;
  };
  return { runs: runsFrom(manifests, pointerOf, filter), problems };
}

/** Every run that reads back, newest first; damaged run files are skipped (readRuns names them). */
export function listRuns(ws: WorkspacePaths, filter: RunsFilter = {}): RunInfo[] {
  return readRuns(ws, filter).runs;
}

export function findRun(ws: WorkspacePaths, runId: string, filter: RunsFilter = {}): RunInfo | null {
  return listRuns(ws, filter).find((r) => r.run_id === runId) ?? null;
}

/** A folder's names; [] when it is missing or not a folder. A link is refused (30), never listed through. */
function safeList(dir: string): string[] {
  try {
    return safeReaddir(dir);
  } catch (err) {
    if (err instanceof MetaspnError) throw err;
    return [];
  }
}

function toRun(run_id: string, list: ManifestEntry[], pointerOf: (pipeline: string, date: string) => CurrentPointer | null, stepsOf: Readonly<Record<string, number>>): RunInfo {
  list.sort((a, b) => (a.m.started_at < b.m.started_at ? -1 : a.m.started_at > b.m.started_at ? 1 : 0));
  const first = list[0]!.m;
  const last = list[list.length - 1]!.m;
  const failed = list.find((x) => x.m.status === 'failed')?.m;
  const ptr = pointerOf(first.pipeline, first.date);
  const incomplete = !failed && list.length < (stepsOf[first.pipeline] ?? list.length);
  return {
    run_id,
    pipeline: first.pipeline,
    date: first.date,
    as_of: first.as_of,
    retry_of_run_id: first.retry_of_run_id ?? null,
    started_at: first.started_at,
    finished_at: last.finished_at,
    duration_ms: Date.parse(last.finished_at) - Date.parse(first.started_at),
    status: failed ? 'failed' : incomplete ? 'incomplete' : 'success',
    current: ptr?.run_id === run_id,
    // A run that stopped before its last step (blocked, stopped or killed) did not succeed: 11, as
    // its own command exited when it could say so, never 0.
    exit_code: mostSevere([...list.map((x) => x.m.exit_code), ...(incomplete ? [EXIT.BUSINESS_SKIP] : [])]),
    failure: failed?.error ? `${failed.step}: ${failed.error.message}` : null,
    steps: list.map((x) => ({ step: x.m.step, status: x.m.status, duration_ms: x.m.duration_ms, exit_code: x.m.exit_code, manifest: x.path })),
  };
}
