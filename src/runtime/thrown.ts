import { types } from 'node:util';
import { MetaspnError } from '../guard/errors.js';
import { describeError, taskError } from '../queue/record.js';
import type { TaskError } from '../queue/types.js';

/**
 * Everything the runner reads of a value a handler threw, as plain data: it crosses from an
 * isolate to the runner by structured clone, and reading it can no longer throw.
 */
export interface ThrownInfo {
  /** The error's class (`TypeError`, `ContractError`), or `NonError` for a value that is not an Error. */
  name: string;
  message: string;
  /** First lines of the stack, trimmed, down to where metaspn called the handler (handlerFrames). */
  stack?: string[];
  /** `code` when it is a string (`ENOSPC`, `EACCES`, `STATE_CORRUPT`). */
  code?: string;
  /** `path` and `syscall` of a file-system error. */
  path?: string;
  syscall?: string;
  /** Marked `unrecoverable: true` (a ContractError): dead letters at once. */
  unrecoverable: boolean;
}

/** Where metaspn's own code is (its `src/`, built or not): thrown.ts is in src/runtime/. */
const OWN_CODE = new URL('../', import.meta.url).href;

/**
 * A thrown value's stack lines down to where metaspn called the handler: the frames after the
 * handler's own that are metaspn's (the runner, the isolate host, a pipeline step's wrapper) say
 * nothing about the failure, and every failed attempt's record carries its stack (a handler that
 * throws at once: one line of about 70 bytes instead of three of 210). The stack of an error
 * metaspn threw itself (no frame outside metaspn's code) is kept as it is.
 */
export function handlerFrames(lines: readonly string[]): string[] {
  const first = lines.findIndex((l) => l.startsWith('at ') && !l.includes(OWN_CODE));
  const cut = first < 0 ? -1 : lines.findIndex((l, i) => i > first && l.includes(OWN_CODE));
  return cut < 0 ? [...lines] : lines.slice(0, cut);
}

/** Reads a thrown value without ever throwing: getters and Proxy traps that throw are skipped. */
export function readThrown(x: unknown): ThrownInfo {
  const d = describeError(x, 'transient', 0);
  const code = field(x, 'code');
  const path = field(x, 'path');
  const syscall = field(x, 'syscall');
  return {
    name: d.class,
    message: d.message,
    ...(d.stack ? { stack: handlerFrames(d.stack) } : {}),
    ...(typeof code === 'string' ? { code: code.slice(0, 200) } : {}),
    ...(typeof path === 'string' ? { path: path.slice(0, 4096) } : {}),
    ...(typeof syscall === 'string' ? { syscall: syscall.slice(0, 100) } : {}),
    unrecoverable: field(x, 'unrecoverable') === true || d.class === 'ContractError',
  };
}

/** A property of an object, or undefined when reading it throws (or it is a Proxy: its traps may). */
function field(x: unknown, key: string): unknown {
  if (typeof x !== 'object' || x === null || types.isProxy(x)) return undefined;
  try {
    return (x as Record<string, unknown>)[key];
  } catch {
    return undefined;
  }
}

/**
 * A thrown value as a plain Error with own data properties: the runner's checks (unrecoverable,
 * disk full, permission) and the task's error record read it safely.
 */
export class HandlerError extends Error {
  readonly code: string | undefined;
  readonly path: string | undefined;
  readonly syscall: string | undefined;
  readonly unrecoverable: boolean;
  /** The first lines of the thrown value's stack, as read (ThrownInfo.stack). */
  readonly frames: readonly string[];

  constructor(info: ThrownInfo) {
    // The stack is the thrown value's, set below: capturing this constructor's own (10 frames) only
    // to replace it cost about 9 µs a failed attempt.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(info.message);
    Error.stackTraceLimit = limit;
    this.name = info.name;
    this.frames = info.stack ?? [];
    this.stack = [`${info.name}: ${info.message}`, ...(info.stack ?? []).map((l) => `    ${l}`)].join('\n');
    this.code = info.code;
    this.path = info.path;
    this.syscall = info.syscall;
    this.unrecoverable = info.unrecoverable;
  }
}

/** `x instanceof C`, false where asking would run a Proxy trap (which may throw). */
export function isInstance<T>(x: unknown, C: abstract new (...args: never[]) => T): x is T {
  if (typeof x !== 'object' || x === null || types.isProxy(x)) return false;
  try {
    return x instanceof C;
  } catch {
    return false;
  }
}

/**
 * A failed attempt's error for the task's history: describeError, but a HandlerError (what the
 * runner makes of anything thrown) is not read and split again, its parts were read once, safely.
 */
export function describeFailure(err: unknown, kind: TaskError['kind'], now: number): Omit<TaskError, 'attempt'> {
  if (!isInstance(err, HandlerError)) return describeError(err, kind, now);
  return taskError(kind, err.name, err.message, err.frames, err.code, now);
}

/** Anything thrown, as a HandlerError (one already is stays as it is). */
export function safeError(x: unknown): HandlerError {
  return isInstance(x, HandlerError) ? x : new HandlerError(readThrown(x));
}

/**
 * A permission error (EACCES, EPERM, EROFS): retrying cannot fix a file's mode or a read-only
 * mount, so the worker stops with one message naming the path instead of spending attempts.
 */
export function isPermissionDenied(err: unknown): boolean {
  const code = field(err, 'code');
  return code === 'EACCES' || code === 'EPERM' || code === 'EROFS';
}

/** A permission error as the one message the worker stops with: the path, the code, where it happened. */
export function permissionFailure(err: unknown, where: string): MetaspnError {
  const code = String(field(err, 'code'));
  const path = field(err, 'path');
  const syscall = field(err, 'syscall');
  const what = typeof path === 'string' ? path : readThrown(err).message;
  return new MetaspnError('INTERNAL_ERROR', `permission denied: ${what} (${code}${typeof syscall === 'string' ? `, ${syscall}` : ''}) in ${where}`, {
    cause: err,
    hint: `fix the owner or mode of ${typeof path === 'string' ? path : 'that path'} (or the read-only mount), then re-run; the task was given back with no attempt spent`,
  });
}
