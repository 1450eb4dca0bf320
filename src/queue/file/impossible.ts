import type { NewTask } from '../types.js';
import type { EnqsRecord, LogRecord, ShortFail } from './records.js';
import { STATES } from './slots.js';

/**
 * Values no writer of a queue log writes, in a record that passed its checksum: the record was
 * edited (or written by something that is not metaspn), and trusting it would let one bad number
 * decide a task's fate (an attempt count past its maximum dead-letters nothing, a time of -1 or a
 * missing one makes a lease never expire). Such a record is corrupt like a replay conflict
 * (QueueLogConflictError, exit 30; `doctor --repair` salvages the log). Pure and stateless: the
 * rules that need the queue's state (a fence that goes backwards, a start of a lease never
 * granted) are in IndexState.
 */

/** Every record type a writer of this version or an older one writes. */
const TYPES: ReadonlySet<string> = new Set(['head', 'enq', 'enqs', 'claim', 'renew', 'start', 'done', 'rel', 'fail', 'dead', 'reclaim', 'retry', 'rerun', 'cancel', 'discard', 'pause', 'resume', 'snap', 'kept', 'clk']);
/** The error kinds a task's history may hold (ErrorKind). */
const KINDS: ReadonlySet<string> = new Set(['transient', 'contract', 'timeout', 'lease_expired', 'owner_gone']);
/** attempt_count and max_attempts live in 16 bits of memory per task. */
const MAX_COUNT = 65_535;

const isTime = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v) && v >= 0;
/**
 * A state time on the compactor's monotonic timeline (`mt`): finite, and negative when it came
 * from a wall time older than the boot (an old record, another boot), so any sign.
 */
const isLocal = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v);
const isCount = (v: unknown, min: number): boolean => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= MAX_COUNT;
const isFence = (v: unknown, min: number): boolean => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= 0xffff_ffff;

/** Why the task record a log record carries cannot be one metaspn wrote; null when it can. */
export function impossibleTask(task: unknown): string | null {
  if (typeof task !== 'object' || task === null) return 'it carries no task record';
  const t = task as { id?: unknown; attempt_count?: unknown; max_attempts?: unknown; errors?: unknown };
  if (typeof t.id !== 'string') return 'its task has no id';
  if (!isCount(t.max_attempts, 0)) return `task ${t.id}: max_attempts ${JSON.stringify(t.max_attempts)} is not a whole number from 0 to ${MAX_COUNT}`;
  if (!isCount(t.attempt_count, 0)) return `task ${t.id}: attempt_count ${JSON.stringify(t.attempt_count)} is not a whole number from 0 to ${MAX_COUNT}`;
  // A task goes to the dead letters on its last attempt: its count never passes its maximum (at least 1 try).
  if ((t.attempt_count as number) > Math.max(1, t.max_attempts as number)) return `task ${t.id}: attempt_count ${t.attempt_count as number} is more than max_attempts ${t.max_attempts as number}`;
  if (t.errors !== undefined) {
    if (!Array.isArray(t.errors)) return `task ${t.id}: errors is not a list`;
    for (const e of t.errors as unknown[]) {
      const kind = (e as { kind?: unknown } | null)?.kind;
      if (typeof kind !== 'string' || !KINDS.has(kind)) return `task ${t.id}: unknown error kind ${JSON.stringify(kind)}`;
    }
  }
  return null;
}

/** Why a checksummed record holds values no writer writes; null when it may be trusted (as far as it alone can tell). */
export function impossibleValue(r: LogRecord): string | null {
  const rec = r as unknown as Record<string, unknown>;
  const t = rec.t as string;
  if (!TYPES.has(t)) return `unknown record type ${JSON.stringify(t).slice(0, 40)}`;
  if (t !== 'snap' && t !== 'kept' && !isTime(rec.at)) return `${t}: time at ${JSON.stringify(rec.at)} is not a time (a finite number of ms, not negative)`;
  if (rec.m !== undefined && !isTime(rec.m)) return `${t}: monotonic time m ${JSON.stringify(rec.m)} is not a time`;
  switch (r.t) {
    case 'clk':
      if (typeof r.b !== 'string' || r.b === '') return 'clk: no boot id';
      if (!isTime(r.m)) return `clk: monotonic time m ${JSON.stringify(r.m)} is not a time`;
      return null;
    case 'claim':
    case 'renew':
      if (!isTime(r.ms)) return `${t}: lease ms ${JSON.stringify(r.ms)} is not a duration`;
      return pairs(t, r.l);
    case 'start':
    case 'done':
    case 'rel':
      return pairs(t, r.l);
    case 'fail':
      if (!isTime(r.ms)) return `fail: delay ms ${JSON.stringify(r.ms)} is not a duration`;
      if (!isFence(r.f, 1)) return `fail: fence ${JSON.stringify(r.f)} names no lease (leases have fences from 1)`;
      return 'task' in r ? impossibleTask(r.task) : impossibleShortFail(r);
    case 'dead':
    case 'reclaim':
      if (!isFence(r.f, 1)) return `${t}: fence ${JSON.stringify(r.f)} names no lease (leases have fences from 1)`;
      return impossibleTask(r.task);
    case 'enqs':
      return impossibleEntries(r);
    case 'enq':
      if (r.ro !== undefined && !isFence(r.ro, 0)) return `enq: ready order ro ${JSON.stringify(r.ro)} is not a whole number from 0`;
      return impossibleTask(r.task);
    case 'retry':
    case 'rerun':
    case 'cancel':
    case 'discard':
      return impossibleTask(r.task);
    case 'snap':
      if (!STATES.includes(r.s)) return `snap: unknown state ${JSON.stringify(r.s)}`;
      if (!isTime(r.tm)) return `snap: time tm ${JSON.stringify(r.tm)} is not a time`;
      if (r.mt !== undefined && !isLocal(r.mt)) return `snap: monotonic time mt ${JSON.stringify(r.mt)} is not a finite number`;
      if (!isFence(r.f, 0)) return `snap: fence ${JSON.stringify(r.f)} is not a whole number from 0`;
      if (r.ro !== undefined && (!isFence(r.ro, 0) || r.s !== 'ready')) return `snap: ready order ro ${JSON.stringify(r.ro)} is not a whole number from 0 on a ready task`;
      if (r.s === 'leased' && (r.f < 1 || typeof r.o !== 'string')) return 'snap: a leased task with no lease (owner and a fence from 1)';
      return impossibleTask(r.task);
    case 'kept':
      if (!isTime(r.tm)) return `kept: time tm ${JSON.stringify(r.tm)} is not a time`;
      if (r.mt !== undefined && !isLocal(r.mt)) return `kept: monotonic time mt ${JSON.stringify(r.mt)} is not a finite number`;
      if (!isFence(r.f, 0)) return `kept: fence ${JSON.stringify(r.f)} is not a whole number from 0`;
      return typeof r.id === 'string' ? null : 'kept: no task id';
    case 'head':
      for (const k of ['completed_dropped', 'cancelled_dropped'] as const) {
        const v = r[k];
        if (v !== undefined && !(typeof v === 'number' && Number.isSafeInteger(v) && v >= 0)) return `head: ${k} ${JSON.stringify(v)} is not a count`;
      }
      return null;
    case 'pause':
    case 'resume':
      return null;
  }
}

/** A short `fail` (records.ts ShortFail): the task's id, an attempt count from 1, an error of a known kind. */
function impossibleShortFail(r: ShortFail): string | null {
  if (typeof r.id !== 'string') return 'fail: no task id';
  if (!isCount(r.a, 1)) return `fail: task ${r.id}: attempt count a ${JSON.stringify(r.a)} is not a whole number from 1 to ${MAX_COUNT}`;
  const e = r.e as Partial<ShortFail['e']> | null;
  if (typeof e !== 'object' || e === null || Array.isArray(e)) return `fail: task ${r.id}: no error`;
  if (typeof e.kind !== 'string' || !KINDS.has(e.kind)) return `fail: task ${r.id}: unknown error kind ${JSON.stringify(e.kind)}`;
  if (typeof e.message !== 'string' || typeof e.class !== 'string' || typeof e.at !== 'string') return `fail: task ${r.id}: its error has no class, message or time`;
  return null;
}

/**
 * Does an `enqs` record of fresh tasks with these fields (entry k the task `tasks[picks[k]]`, as
 * `enqsOf` makes it) pass impossibleValue? The checks of impossibleEntries on the values a bulk
 * enqueue encodes straight from its tasks (LineBuffer.addEnqs); the queue name is a string.
 */
export function freshPossible(at: number, m: number | undefined, n: number, x: number, tasks: readonly NewTask[], picks: Int32Array, count: number): boolean {
  if (!isTime(at) || (m !== undefined && !isTime(m)) || !isFence(n, 0) || !isCount(x, 0) || count === 0) return false;
  for (let k = 0; k < count; k++) {
    const t = tasks[picks[k]!]!;
    if (typeof t.id !== 'string') return false;
    const max = t.max_attempts ?? x;
    if (max !== x && !isCount(max, 0)) return false;
    if (t.group !== undefined && typeof t.group !== 'string') return false;
  }
  return true;
}

/** An `enqs`'s entries: each a task id, and counts and groups in range (the rules of impossibleTask for a fresh task). */
function impossibleEntries(r: EnqsRecord): string | null {
  if (!isFence(r.n, 0)) return `enqs: slot ${JSON.stringify(r.n)} is not a whole number from 0`;
  if (typeof r.q !== 'string') return 'enqs: no queue name';
  if (!isCount(r.x, 0)) return `enqs: max_attempts x ${JSON.stringify(r.x)} is not a whole number from 0 to ${MAX_COUNT}`;
  if (!Array.isArray(r.l) || r.l.length === 0) return 'enqs: no list of tasks';
  if (r.ro !== undefined && !isFence(r.ro, 0)) return `enqs: ready order ro ${JSON.stringify(r.ro)} is not a whole number from 0`;
  for (const e of r.l as unknown[]) {
    if (!Array.isArray(e) || e.length < 2 || e.length > 4 || typeof e[0] !== 'string') return `enqs: ${JSON.stringify(e).slice(0, 40)} is not a task entry [id, payload(, max_attempts(, group))]`;
    if (e.length > 2 && !isCount(e[2], 0)) return `enqs: task ${e[0]}: max_attempts ${JSON.stringify(e[2])} is not a whole number from 0 to ${MAX_COUNT}`;
    if (e.length > 3 && typeof e[3] !== 'string') return `enqs: task ${e[0]}: group ${JSON.stringify(e[3]).slice(0, 40)} is not a string`;
  }
  return null;
}

/** A batched record's [slot, fence] pairs: every lease has a fence from 1. */
function pairs(t: string, l: unknown): string | null {
  if (!Array.isArray(l)) return `${t}: no list of [slot, fence] pairs`;
  for (const p of l as unknown[]) {
    if (!Array.isArray(p) || p.length !== 2) return `${t}: ${JSON.stringify(p).slice(0, 40)} is not a [slot, fence] pair`;
    if (!isFence(p[1], 1)) return `${t}: fence ${JSON.stringify(p[1])} of slot ${JSON.stringify(p[0])} names no lease (leases have fences from 1)`;
  }
  return null;
}

/**
 * For a salvage: a record that places a task (`enq`, `snap`, `kept`) but holds impossible values,
 * made into one that can be trusted, so the task is kept: the task placed as ready (a tombstone
 * stays a tombstone) at wall time `now`, its counts brought within range, unknown error kinds read
 * as transient. Null when there is no task to keep (no id).
 */
export function salvageable(r: LogRecord, now: number): LogRecord | null {
  const rec = r as unknown as { t: string; n: unknown; id?: unknown; f?: unknown; task?: unknown };
  if (typeof rec.n !== 'number') return null;
  const f = isFence(rec.f, 0) ? (rec.f as number) : 0;
  if (rec.t === 'kept') return typeof rec.id === 'string' ? { t: 'kept', n: rec.n, id: rec.id, f, tm: now } : null;
  if (rec.t === 'enqs') return salvageableEntries(r as EnqsRecord, now);
  if (rec.t !== 'enq' && rec.t !== 'snap') return null;
  const task = rec.task as Record<string, unknown> | null;
  if (typeof task !== 'object' || task === null || typeof task.id !== 'string') return null;
  const max = isCount(task.max_attempts, 1) ? (task.max_attempts as number) : 5;
  const attempts = isCount(task.attempt_count, 0) ? Math.min(task.attempt_count as number, max) : 0;
  const errors = Array.isArray(task.errors)
    ? (task.errors as unknown[]).map((e) => {
        const o = (typeof e === 'object' && e !== null ? e : {}) as Record<string, unknown>;
        return typeof o.kind === 'string' && KINDS.has(o.kind) ? o : { ...o, kind: 'transient' };
      })
    : [];
  const fixed = { ...task, max_attempts: max, attempt_count: attempts, errors, retries: Array.isArray(task.retries) ? task.retries : [] };
  return { t: 'snap', n: rec.n, s: 'ready', f, tm: now, task: fixed as never };
}

/**
 * For a salvage: an `enqs` made trustworthy entry by entry (counts within range, a group that is not
 * a string dropped, the time `now` when its own is impossible). An entry with no id keeps its place
 * as a hole (null: no task, the slots after it keep their numbers); null when no entry has an id.
 */
function salvageableEntries(r: EnqsRecord, now: number): LogRecord | null {
  if (!Array.isArray(r.l)) return null;
  const x = isCount(r.x, 1) ? r.x : 5;
  const l = (r.l as unknown[]).map((e) => {
    if (!Array.isArray(e) || typeof e[0] !== 'string') return null;
    const max = e.length > 2 ? (isCount(e[2], 1) ? (e[2] as number) : 5) : x;
    return typeof e[3] === 'string' ? [e[0], e[1], max, e[3]] : max !== x ? [e[0], e[1], max] : [e[0], e[1]];
  });
  if (l.every((e) => e === null)) return null;
  const fixed = { t: 'enqs', n: r.n, at: isTime(r.at) ? r.at : now, q: typeof r.q === 'string' ? r.q : '', x, l };
  return fixed as unknown as LogRecord;
}
