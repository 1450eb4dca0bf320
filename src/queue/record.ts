import { hash } from 'node:crypto';
import { inspect, types } from 'node:util';
import stringify from 'fast-json-stable-stringify';
import { UsageError } from '../guard/errors.js';
import type { DeadLetter, NewTask, TaskError, TaskRecord } from './types.js';

/** Task ids become file names in deadletter/<worker>/, so they stay within a safe alphabet. */
const TASK_ID = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,199}$/;
/** Queue names become folder names: letters, digits, `_` and `-`, 1 to 100 characters, not starting with `_` or `-`. */
export const QUEUE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/;

export function checkTaskId(id: unknown): string | null {
  if (typeof id !== 'string') return 'task id must be a string';
  if (!TASK_ID.test(id)) return `task id "${id.slice(0, 60)}" must match ${TASK_ID.source}`;
  return null;
}

export function assertQueueName(name: string): string {
  if (!QUEUE_NAME.test(name)) {
    throw new UsageError(`worker name "${name.slice(0, 60)}" is not valid: use letters, digits, _ and -`, {
      hint: 'name a queue such as project_rewards',
    });
  }
  return name;
}

/** A task id from its payload: enqueueing the same payload twice adds it once. */
export function derivedTaskId(payload: unknown): string {
  return `t_${hash('sha256', stringify(payload) ?? 'null', 'hex').slice(0, 24)}`;
}

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** `at` is `now` as ISO text, when the caller already has it (enqueue formats it once per batch). */
export function newRecord(queue: string, t: NewTask, defaultMaxAttempts: number, now: number, at: string = iso(now)): TaskRecord {
  return {
    id: t.id,
    queue,
    payload: t.payload ?? null,
    attempt_count: 0,
    max_attempts: t.max_attempts ?? defaultMaxAttempts,
    created_at: at,
    updated_at: at,
    errors: [],
    retries: [],
    ...(t.group !== undefined ? { group: t.group } : {}),
  };
}

/** The record after a failed attempt: the attempt counted, the error kept. */
export function recordAfterFailure(r: TaskRecord, error: Omit<TaskError, 'attempt'>, now: number): TaskRecord {
  const attempt = r.attempt_count + 1;
  return { ...r, attempt_count: attempt, updated_at: iso(now), errors: [...r.errors, { ...error, attempt }] };
}

/** The record after `queue retry`: attempt count reset, the history and the retry itself kept. */
export function recordAfterRetry(r: TaskRecord, by: string, now: number): TaskRecord {
  const at = iso(now);
  return { ...r, attempt_count: 0, updated_at: at, retries: [...r.retries, { at, by, attempt_count: r.attempt_count }] };
}

/** The record after `cancel`: who, when and why kept on it (the latest cancellation). */
export function recordAfterCancel(r: TaskRecord, by: string, reason: string, now: number): TaskRecord {
  const at = iso(now);
  return { ...r, updated_at: at, cancelled: { at, by, reason } };
}

/** The record after `discard`: who, when and why kept on it, marked as a discarded dead letter. */
export function recordAfterDiscard(r: TaskRecord, by: string, reason: string, now: number): TaskRecord {
  const at = iso(now);
  return { ...r, updated_at: at, cancelled: { at, by, reason, discarded: true } };
}

export function deadLetterOf(r: TaskRecord, deadAt: number): DeadLetter {
  const first = r.errors[0];
  const last = r.errors[r.errors.length - 1];
  return {
    task: r,
    worker: r.queue,
    attempt_count: r.attempt_count,
    errors: r.errors,
    first_failure_at: first ? first.at : null,
    last_failure_at: last ? last.at : null,
    dead_at: iso(deadAt),
    reason: last ?? null,
  };
}

/**
 * Anything thrown as a task error: class, message and the first stack lines. Never throws, whatever
 * it is given: `null`, a string, an object without prototype, an Error whose getters throw, a
 * Proxy whose every trap throws, a circular object. A value that is not an Error gets class
 * `NonError` and a message that says what was thrown (`threw a string: "boom"`).
 */
export function describeError(err: unknown, kind: TaskError['kind'], now: number): Omit<TaskError, 'attempt'> {
  const at = iso(now);
  // util.types checks read internal slots: no getter or Proxy trap runs.
  const isError = !types.isProxy(err) && (types.isNativeError(err) || attempt(() => err instanceof Error) === true);
  if (!isError) return { kind, class: 'NonError', message: `threw ${thrownText(err)}`, at };
  const e = err as Error & { code?: unknown };
  const name = attempt(() => e.name);
  const message = attempt(() => e.message);
  const stack = attempt(() => e.stack);
  const code = attempt(() => e.code);
  const lines = typeof stack === 'string' ? stack.split('\n').slice(1, 6).map((l) => clip(l.trim(), 500)) : [];
  return {
    kind,
    class: typeof name === 'string' && name !== '' ? clip(name, 200) : 'Error',
    message: typeof message === 'string' ? clip(message, MESSAGE_CHARS) : message === undefined ? '(no readable message)' : valueText(message),
    ...(lines.length ? { stack: lines } : {}),
    at,
    ...(typeof code === 'string' ? { code: clip(code, 200) } : {}),
  };
}

/**
 * A task error from parts already read safely (a HandlerError's), bounded as describeError bounds
 * them: class 200 characters, message MESSAGE_CHARS, at most 5 stack lines, code 200 characters.
 */
export function taskError(kind: TaskError['kind'], name: string, message: string, stack: readonly string[], code: string | undefined, now: number): Omit<TaskError, 'attempt'> {
  return {
    kind,
    class: name !== '' ? clip(name, 200) : 'Error',
    message: clip(message, MESSAGE_CHARS),
    ...(stack.length ? { stack: stack.slice(0, 5) } : {}),
    at: iso(now),
    ...(code !== undefined ? { code: clip(code, 200) } : {}),
  };
}

/** Longest message kept in a task's error history: the record is read by every replay. */
const MESSAGE_CHARS = 2000;

/** The value of `f()`, or undefined when it throws (a getter, a Proxy trap). */
function attempt<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}

function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max)}… (${s.length - max} more characters)`;
}

/** What a non-Error value is, for `threw …`: `null`, `a string: "boom"`, `an object: { a: 1 }`. */
function thrownText(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  const t = typeof v;
  if (types.isProxy(v)) return `a Proxy: ${valueText(v)}`;
  if (typeof v === 'string') return `a string: ${JSON.stringify(clip(v, MESSAGE_CHARS))}`;
  const article = t === 'object' || t === 'undefined' ? 'an' : 'a';
  return `${article} ${t}: ${valueText(v)}`;
}

/** util.inspect, which neither runs getters nor Proxy traps; a value even it cannot print gets a placeholder. */
function valueText(v: unknown): string {
  const text = attempt(() => inspect(v, { depth: 2, breakLength: Infinity, maxArrayLength: 20, maxStringLength: MESSAGE_CHARS, getters: false, customInspect: false }));
  return typeof text === 'string' ? clip(text, MESSAGE_CHARS) : '(a value that cannot be printed)';
}
