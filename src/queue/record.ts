import { hash } from 'node:crypto';
import stringify from 'fast-json-stable-stringify';
import { UsageError } from '../guard/errors.js';
import type { DeadLetter, NewTask, TaskError, TaskRecord } from './types.js';

/** Task ids become file names in deadletter/<worker>/, so they stay within a safe alphabet. */
const TASK_ID = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,199}$/;
/** Queue names become folder names. */
const QUEUE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/;

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

/** An Error (or anything thrown) as a task error: class, message and the first stack lines. */
export function describeError(err: unknown, kind: TaskError['kind'], now: number): Omit<TaskError, 'attempt'> {
  const e = err instanceof Error ? err : new Error(String(err));
  const stack = e.stack
    ?.split('\n')
    .slice(1, 6)
    .map((l) => l.trim());
  const code = (e as { code?: unknown }).code;
  return {
    kind,
    class: e.name || 'Error',
    message: e.message,
    ...(stack && stack.length ? { stack } : {}),
    at: iso(now),
    ...(typeof code === 'string' ? { code } : {}),
  };
}
