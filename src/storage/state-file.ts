import { safeMkdir, safeReadFile, safeRename } from './safe-path.js';
import { dirname, join, relative } from 'node:path';
import { StateCorruptError } from '../guard/errors.js';
import { fsyncDir } from './atomic.js';
import type { WorkspacePaths } from './paths.js';

/**
 * A workspace state file (a manifest, a current pointer, an event record, the alert state) that
 * does not read back as what metaspn wrote: not JSON, or JSON of the wrong shape. metaspn writes
 * these files atomically, so a damaged one was changed outside metaspn (a hand edit, a restore, a
 * disk error): retrying cannot fix it. Exit 30 (STATE_CORRUPT), naming the file; a task that meets
 * one goes to the dead letters at once instead of being retried.
 */
export class StateFileError extends StateCorruptError {
  readonly unrecoverable = true;
  readonly path: string;

  constructor(path: string, why: string, hint: string) {
    super(`${path}: ${why}`, { hint, details: { path } });
    this.name = 'StateFileError';
    this.path = path;
  }
}

/** A field check: the rule broken, or null. */
export type ShapeCheck = (v: unknown) => string | null;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `fields` each must hold a value of the given type ('string', 'number', 'object', 'array', 'boolean'). */
export function shape(fields: Record<string, 'string' | 'number' | 'object' | 'array' | 'boolean'>): ShapeCheck {
  return (v) => {
    if (!isObject(v)) return `not a JSON object (${Array.isArray(v) ? 'an array' : v === null ? 'null' : typeof v})`;
    for (const [k, type] of Object.entries(fields)) {
      const x = v[k];
      const ok = type === 'array' ? Array.isArray(x) : type === 'object' ? isObject(x) : type === 'number' ? typeof x === 'number' && Number.isFinite(x) : typeof x === type;
      if (!ok) return x === undefined ? `field "${k}" is missing` : `field "${k}" is not ${type === 'array' || type === 'object' ? `an ${type}` : `a ${type}`}`;
    }
    return null;
  };
}

/**
 * Reads a JSON state file and checks its shape. Null when the file does not exist; StateFileError
 * (30, unrecoverable) when it is not JSON, not of the expected shape, or not a file. Other read
 * errors (permissions) are thrown as they are.
 */
export function readStateJson<T>(path: string, check: ShapeCheck, hint: string): T | null {
  let text: string;
  try {
    text = safeReadFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'EISDIR') throw new StateFileError(path, 'is a folder, not a file', hint);
    throw err;
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new StateFileError(path, `not valid JSON (${(err as Error).message})`, hint);
  }
  const bad = check(v);
  if (bad) throw new StateFileError(path, bad, hint);
  return v as T;
}

/** What a damaged state file is, for reports that go on without it. */
export interface StateFileProblem {
  /** Relative to the workspace. */
  path: string;
  kind: 'manifest' | 'pointer' | 'event' | 'alert_state' | 'run_start';
  error: string;
}

export function problemOf(ws: WorkspacePaths, kind: StateFileProblem['kind'], err: StateFileError): StateFileProblem {
  return { path: relative(ws.root, err.path), kind, error: err.message.slice(err.path.length + 2) };
}

/**
 * Moves a damaged state file into quarantine/, under its path in the workspace plus a time stamp:
 * nothing is deleted, and the file no longer stops anything. Returns the new path.
 */
export function quarantineFile(ws: WorkspacePaths, path: string, now = new Date()): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
  const to = join(ws.quarantine, `${relative(ws.root, path)}.${stamp}.damaged`);
  safeMkdir(dirname(to));
  safeRename(path, to);
  fsyncDir(dirname(path));
  fsyncDir(dirname(to));
  return to;
}
