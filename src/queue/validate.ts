import { checkLimit, LIMITS } from '../config/limits.js';
import { parseJsonWithin } from '../config/json-limits.js';
import { nearest } from '../config/nearest.js';
import { DataInvalidError } from '../guard/errors.js';
import { checkTaskId, derivedTaskId } from './record.js';
import { GROUP_MAX_CHARS, type NewTask } from './types.js';

/**
 * The one validation of tasks that come from outside (`queue enqueue --file` and `--payload`, the
 * HTTP API's POST /api/queues/:worker/tasks): every enqueue path calls these, so a task refused
 * by one is refused by all. Pure: callers turn a rule into their own error (exit 20 naming the
 * file and line, HTTP 400).
 *
 * A task is `{"id"?, "payload", "max_attempts"?, "group"?}`:
 * - `payload`: any JSON, at most LIMITS.payload_bytes as JSON text; required (null is a payload).
 * - `id`: matches the task-id alphabet (record.ts); default: derived from the payload, so
 *   submitting the same payload twice adds it once.
 * - `max_attempts`: a whole number in LIMITS.max_attempts; default: the queue's policy.
 * - `group`: a partition tag ({@link checkGroup}); default: none.
 * - any other key is refused, naming the nearest known one (a typo must not be ignored).
 * The text itself is held to the JSON limits of every reader (src/config/json-limits.ts):
 * length, nesting depth, and numbers JSON cannot carry exactly (1e400, 12345678901234567890).
 */
export type TaskCheck = { ok: true; task: NewTask } | { ok: false; rule: string };

/** The keys a task may have. */
export const TASK_KEYS = ['id', 'payload', 'max_attempts', 'group'] as const;

/** A task group: 1 to GROUP_MAX_CHARS characters of letters, digits and `._:/-`. */
const GROUP = /^[A-Za-z0-9._:/-]+$/;

/**
 * Checks a task group ({@link NewTask.group}): a string of 1 to 200 characters of
 * `[A-Za-z0-9._:/-]`. Returns the rule it breaks, or null when it is valid.
 */
export function checkGroup(group: unknown): string | null {
  if (typeof group !== 'string') return `group must be a string, got ${group === null ? 'null' : typeof group}`;
  if (group.length === 0 || group.length > GROUP_MAX_CHARS) return `group must be 1 to ${GROUP_MAX_CHARS} characters, got ${group.length}`;
  if (!GROUP.test(group)) return `group "${group.slice(0, 60)}" must match ${GROUP.source} (letters, digits and . _ : / -)`;
  return null;
}

function payloadBytes(payload: unknown): number {
  const text = JSON.stringify(payload) ?? 'null';
  // Characters bound bytes from below and 3× from above: count exactly only near the limit.
  return text.length * 3 <= LIMITS.payload_bytes.max ? text.length : Buffer.byteLength(text, 'utf8');
}

/** Checks the payload alone (its size as JSON text). */
export function checkPayload(payload: unknown): string | null {
  const bytes = payloadBytes(payload);
  if (bytes > LIMITS.payload_bytes.max) return `payload is ${bytes} bytes as JSON, more than ${LIMITS.payload_bytes.max} (limit payload_bytes)`;
  return null;
}

/**
 * One task from an already parsed value. Use {@link parseTask} on text when you have it: only the
 * text shows numbers that JSON.parse rounded or turned into Infinity.
 */
export function checkNewTask(raw: unknown): TaskCheck {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || !('payload' in raw)) {
    return { ok: false, rule: 'each task must be an object with a "payload" (and optionally "id", "max_attempts", "group")' };
  }
  const o = raw as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!(TASK_KEYS as readonly string[]).includes(key)) {
      const near = nearest(key, TASK_KEYS);
      return { ok: false, rule: `unknown key "${key.slice(0, 60)}"${near ? ` (did you mean "${near}"?)` : ''}; a task has ${TASK_KEYS.map((k) => `"${k}"`).join(', ')}` };
    }
  }
  const payload = o.payload;
  const big = checkPayload(payload);
  if (big) return { ok: false, rule: big };
  const id = o.id === undefined ? derivedTaskId(payload) : o.id;
  const bad = checkTaskId(id);
  if (bad) return { ok: false, rule: bad };
  if (o.max_attempts !== undefined) {
    const range = checkLimit('max_attempts', o.max_attempts);
    if (range) return { ok: false, rule: `max_attempts ${range}, got ${JSON.stringify(o.max_attempts)}` };
  }
  if (o.group !== undefined) {
    const badGroup = checkGroup(o.group);
    if (badGroup) return { ok: false, rule: badGroup };
  }
  return {
    ok: true,
    task: { id: id as string, payload, ...(o.max_attempts !== undefined ? { max_attempts: o.max_attempts as number } : {}), ...(o.group !== undefined ? { group: o.group as string } : {}) },
  };
}

/** One task from its JSON text (a task-file line, an API body's task): the JSON limits, then {@link checkNewTask}. */
export function parseTask(text: string): TaskCheck {
  const parsed = parseJsonWithin(text);
  if (!parsed.ok) return parsed;
  return checkNewTask(parsed.value);
}

/**
 * `--payload JSON [--id ID]`: the payload's text within the JSON limits, then the task it makes.
 * `syntax` is set when the text is not JSON at all (the CLI reports that as a usage error).
 */
export function taskFromPayloadText(text: string, id?: string): TaskCheck & { syntax?: boolean } {
  const parsed = parseJsonWithin(text, { maxChars: LIMITS.payload_bytes.max, what: 'payload', limit: 'payload_bytes' });
  if (!parsed.ok) return { ok: false, rule: parsed.rule, ...(parsed.syntax !== undefined ? { syntax: true } : {}) };
  return checkNewTask({ payload: parsed.value, ...(id !== undefined ? { id } : {}) });
}

/**
 * Every task of a JSONL text (a task file), one a line, all checked before any is returned: one
 * bad line and nothing is enqueued. Blank lines may only end the file. A UTF-8 BOM and CRLF line
 * ends are accepted.
 * @throws DataInvalidError `(file, line, rule)` on the first bad line.
 */
export function parseTaskLines(text: string, file: string): NewTask[] {
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  const tasks: NewTask[] = [];
  let blank: number | null = null;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.endsWith('\r') ? lines[i]!.slice(0, -1) : lines[i]!;
    if (line.trim() === '') {
      blank ??= i + 1;
      continue;
    }
    if (blank !== null) throw new DataInvalidError(file, blank, 'blank line between tasks');
    const r = parseTask(line);
    if (!r.ok) throw new DataInvalidError(file, i + 1, r.rule, { hint: `fix line ${i + 1} of ${file} and re-run; nothing was enqueued` });
    tasks.push(r.task);
  }
  return tasks;
}

/** What an enqueue body holds once checked: its tasks and its optional event id. */
export type EnqueueBody = { ok: true; tasks: NewTask[]; event_id?: string } | { ok: false; rule: string };

/**
 * The one check of an enqueue body, however it arrived (the API's parsed JSON, a text): an object
 * `{"tasks": [task, …]}` or one task `{"payload", "id"?, "max_attempts"?, "group"?}`, either with
 * an optional `"event_id"` (a string of 1 to 200 characters). Each task through {@link checkNewTask}.
 */
export function checkEnqueueBody(body: unknown): EnqueueBody {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { ok: false, rule: 'the body must be a JSON object: {"tasks":[{"id"?, "payload"}]} or {"payload": …}' };
  const { event_id, ...rest } = body as Record<string, unknown>;
  if (event_id !== undefined && (typeof event_id !== 'string' || event_id === '' || event_id.length > 200)) return { ok: false, rule: '"event_id" must be a non-empty string of at most 200 characters' };
  let list: unknown[];
  if ('tasks' in rest) {
    if ('payload' in rest) return { ok: false, rule: 'give either "tasks" or one "payload", not both' };
    const extra = Object.keys(rest).filter((k) => k !== 'tasks');
    if (extra.length) return { ok: false, rule: `unknown key "${extra[0]!.slice(0, 60)}" beside "tasks"` };
    if (!Array.isArray(rest.tasks) || rest.tasks.length === 0) return { ok: false, rule: 'tasks must be a non-empty array' };
    list = rest.tasks;
  } else list = [rest];
  const tasks: NewTask[] = [];
  for (let i = 0; i < list.length; i++) {
    const r = checkNewTask(list[i]);
    if (!r.ok) return { ok: false, rule: 'tasks' in rest ? `tasks[${i}]: ${r.rule}` : r.rule };
    tasks.push(r.task);
  }
  return { ok: true, tasks, ...(event_id !== undefined ? { event_id: event_id as string } : {}) };
}

/**
 * An enqueue body from its raw text: the JSON limits (`maxChars` bounds the whole body; default
 * the JSONL line limit), then {@link checkEnqueueBody}.
 */
export function parseEnqueueBody(text: string, maxChars: number = LIMITS.json_line_chars.max): EnqueueBody {
  const parsed = parseJsonWithin(text, { maxChars, what: 'body' });
  if (!parsed.ok) return parsed;
  return checkEnqueueBody(parsed.value);
}
