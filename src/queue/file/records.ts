import { recordAfterFailure } from '../record.js';
import type { NewTask, TaskError, TaskRecord, TaskState } from '../types.js';

/** [slot, fence] pairs: one batched claim/renew/done/release record covers many tasks. */
export type Pair = [number, number];

/**
 * The records of a queue log. Every mutation names the state it expects, so replay can refuse a stale one.
 *
 * The short keys, for a reader of `queue/<worker>/log.*.jsonl` (docs/QUEUE-FORMAT.md has the record kinds):
 *
 * | key | meaning |
 * |---|---|
 * | `t` | the record's kind (`enq`, `enqs`, `claim`, `start`, `renew`, `done`, `rel`, `fail`, `dead`, `reclaim`, `retry`, `rerun`, `cancel`, `discard`, `pause`, `resume`, `clk`, `snap`, `kept`, `head`) |
 * | `n` | the task's slot: its position in the order tasks were enqueued in this generation (0, 1, …); (`enqs`) the first entry's |
 * | `at` | the writer's wall clock, epoch ms |
 * | `m` | the writer's monotonic clock, ms, on the boot of the latest `clk` record |
 * | `b` | (`clk`) the boot id those `m` count from |
 * | `o` | the lease owner's id (with `pid` and `host` on `claim`) |
 * | `l` | the leases a batched record covers: `[[slot, fence], …]`; (`enqs`) its tasks, `[[id, payload(, max_attempts(, group))], …]` in slot order |
 * | `f` | a lease's fence: one more at every claim of the task, so a stale holder is refused |
 * | `ms` | (`claim`, `renew`) the lease length; (`fail`) the retry delay; ms |
 * | `st` | (`claim`) 1: the leases begin started (no `start` record follows) |
 * | `s` | (`snap`) the task's state |
 * | `tm`, `mt` | (`snap`, `kept`) the state's time: wall clock and monotonic, ms |
 * | `ob` | (`snap` of a leased task) the boot its owner claimed on |
 * | `ro` | (`snap` of a ready task, written by compaction) its place in the ready order: ready tasks are handed out by `ro`, not by slot |
 * | `id` | (`kept`) a completed or cancelled task's id, kept for dedup; (short `enq`) the task's id |
 * | `q`, `p`, `x`, `g` | (short `enq`, see ShortEnq) the task's queue, payload, max_attempts and group; (`enqs`) `q` and `x` for all its entries |
 * | `task` | a task's whole record (`TaskRecord`, long keys) |
 * | `a`, `e` | (short `fail`, see ShortFail) the attempt count after the failure, and its error |
 * | `by` | (`pause`, `resume`) who |
 *
 * Times: `at` is the writer's wall clock (epoch ms); `m`, when present, its monotonic clock (ms) on
 * the boot named by the latest `clk` record before it. A reader on that boot measures leases and
 * waits from `m`; any other reader from `at` (src/queue/clock.ts). Records of older versions have no `m`.
 */
export type LogRecord =
  /** `cancelled_dropped`: cancelled tasks dropped past retention (absent in logs of older versions: 0). */
  | { t: 'head'; gen: number; at: number; m?: number; completed_dropped: number; cancelled_dropped?: number; paused: boolean; totals?: { failed: number; dead_lettered: number; retried: number } }
  /** `i`: read back from an `enqs` line, the entry it was; `ro`: its place in the ready order, from a compaction's line (neither is written; see `entryRecord`). */
  | { t: 'enq'; n: number; at: number; m?: number; task: TaskRecord; i?: number; ro?: number }
  | EnqsRecord
  /** `st: 1`: the leases begin started (the claimer runs them at once); absent, each starts with a `start` record. */
  | { t: 'claim'; at: number; m?: number; o: string; pid: number; host: string; ms: number; st?: 1; l: Pair[] }
  | { t: 'renew'; at: number; m?: number; o: string; ms: number; l: Pair[] }
  /** The owner's handlers of these leases begin: from now on losing the lease costs an attempt. */
  | { t: 'start'; at: number; m?: number; o: string; l: Pair[] }
  | { t: 'done'; at: number; m?: number; o: string; l: Pair[] }
  | { t: 'rel'; at: number; m?: number; o: string; l: Pair[] }
  | { t: 'fail'; at: number; m?: number; o: string; n: number; f: number; ms: number; task: TaskRecord }
  | ShortFail
  | { t: 'dead'; at: number; m?: number; o: string; n: number; f: number; task: TaskRecord }
  | { t: 'reclaim'; at: number; m?: number; n: number; f: number; task: TaskRecord }
  | { t: 'retry'; at: number; m?: number; n: number; task: TaskRecord }
  | { t: 'rerun'; at: number; m?: number; n: number; task: TaskRecord }
  /** A ready or scheduled task cancelled: its full record with `cancelled` (who, when, why). */
  | { t: 'cancel'; at: number; m?: number; n: number; task: TaskRecord }
  /** A dead task discarded: its full record with `cancelled` (who, when, why, `discarded: true`). */
  | { t: 'discard'; at: number; m?: number; n: number; task: TaskRecord }
  | { t: 'pause' | 'resume'; at: number; m?: number; by: string }
  | {
      t: 'snap';
      n: number;
      s: TaskState;
      f: number;
      /** The state's time (see Status.time) as wall-clock epoch ms; `mt`: the same on the monotonic clock of the `clk` boot. */
      tm: number;
      mt?: number;
      o?: string;
      pid?: number;
      host?: string;
      /** The boot the lease owner claimed on, when known: a holder of another boot of this host is gone. */
      ob?: string;
      /** 1 when a leased task's handler had started. */
      st?: 1;
      /** (a compaction's ready snap) its place in the order the ready tasks became ready, from 0; absent (older logs): slot order. */
      ro?: number;
      task: TaskRecord;
    }
  | { t: 'kept'; n: number; id: string; f: number; tm: number; mt?: number }
  /** The boot the `m` of the records after it count from: written when a writer on another boot (or the first) appends. */
  | { t: 'clk'; at: number; m: number; b: string };

/**
 * An `enq` as written since the short form: the fields of a fresh task record that the record
 * itself says are written once, not twice. `id`, `q` (queue), `p` (payload), `x` (max_attempts),
 * `g` (group, when it has one); attempt_count 0, no errors, no retries, created_at and updated_at
 * both the record's `at` (as ISO-8601). Read back, it is the long form again (`expandRecord`).
 */
export interface ShortEnq {
  t: 'enq';
  n: number;
  at: number;
  m?: number;
  id: string;
  q: string;
  p: unknown;
  x: number;
  g?: string;
}

/**
 * A failed attempt as written since the short `fail` (docs/QUEUE-FORMAT.md): what the failure
 * changes, not the whole task again. `id` (the task's, for a salvage routing by id), `a` (its
 * attempt count after this failure), `e` (the error, as describeError bounds it) and `ms` (the
 * retry delay); the payload, max_attempts, times and earlier errors come from the task's record
 * before it (its `enq`, `enqs` entry, `snap` or a long record). A reader rebuilds the long form
 * from the two (`failedTask`): the task record a long `fail` would have carried, byte for byte.
 * A writer writes one only onto a task whose record is a long one (at most one short `fail` per
 * record), so a task reads back from at most two lines.
 */
export interface ShortFail {
  t: 'fail';
  at: number;
  m?: number;
  o: string;
  n: number;
  f: number;
  ms: number;
  id: string;
  a: number;
  e: Omit<TaskError, 'attempt'>;
}

/** Is this `fail` the short form (no task record: the one before it holds the rest)? */
export function isShortFail(r: LogRecord): r is ShortFail {
  return r.t === 'fail' && !('task' in r);
}

/**
 * The task after a short `fail`: the record before it with the attempt counted and the error kept,
 * by `recordAfterFailure` itself (`updated_at` the record's `at`; the attempt the record's `a`).
 */
export function failedTask(before: TaskRecord, r: ShortFail): TaskRecord {
  return recordAfterFailure({ ...before, attempt_count: r.a - 1 }, r.e, r.at);
}

/**
 * A slot's record read back when a short `fail` follows it: the `fail` in its long form, its task
 * rebuilt from the record before it. Null when either does not read back, or they name other tasks.
 */
export function withShortFail(before: unknown, r: unknown): unknown {
  const task = (before as { task?: TaskRecord } | null)?.task;
  const f = r as ShortFail | null;
  if (!task || !f || f.t !== 'fail' || typeof f.id !== 'string' || f.id !== task.id || !Array.isArray(task.errors)) return null;
  const out: Record<string, unknown> = { t: 'fail', at: f.at, o: f.o, n: f.n, f: f.f, ms: f.ms, task: failedTask(task, f) };
  if (f.m !== undefined) out.m = f.m;
  return out;
}

/**
 * One task of an `enqs`: its id and payload; its max_attempts when it is not the record's `x`; its
 * group (then max_attempts is always there).
 */
export type EnqEntry = [id: string, payload: unknown] | [id: string, payload: unknown, max_attempts: number] | [id: string, payload: unknown, max_attempts: number, group: string];

/**
 * Fresh tasks enqueued together, one line for up to ENQS_MAX of them: entry `i` is slot `n + i`,
 * a short `enq` in every other respect (attempt_count 0, no errors, no retries, created_at and
 * updated_at both `at`). One checksum and one JSON text for the lot is what makes a bulk enqueue
 * cheap; a reader picks an entry out with `entryRecord`. Written since the version after 0.1.0's
 * short `enq`; an older metaspn refuses such a log as holding an unknown record type (exit 30).
 */
export interface EnqsRecord {
  t: 'enqs';
  n: number;
  at: number;
  m?: number;
  q: string;
  x: number;
  /**
   * (a compaction's line) the first entry's place in the ready order, entry `i` at `ro + i`: its
   * tasks are queued by it with the ready snaps around them. Absent (an enqueue's line): they
   * become ready in slot order, behind every task ready before them.
   */
  ro?: number;
  l: EnqEntry[];
}

/**
 * Tasks per `enqs` line, at most. A claim reads back the whole line of the tasks it takes (cached
 * per line), so lines stay small: 128 tasks of the usual payload are 4–8 KiB.
 */
export const ENQS_MAX = 128;

/**
 * The `enqs` line of these tasks, enqueued fresh at `at` into slots `n`, `n + 1`, …: each entry what
 * `newRecord` would make of the task (payload null when absent, max_attempts `x` when absent).
 */
export function enqsOf(n: number, at: number, tasks: readonly NewTask[], queue: string, x: number): EnqsRecord {
  const l: EnqEntry[] = new Array<EnqEntry>(tasks.length);
  for (let i = 0; i < tasks.length; i++) {
    const k = tasks[i]!;
    const p = k.payload ?? null;
    const max = k.max_attempts ?? x;
    l[i] = k.group !== undefined ? [k.id, p, max, k.group] : max !== x ? [k.id, p, max] : [k.id, p];
  }
  return { t: 'enqs', n, at, q: queue, x, l };
}

/**
 * Entry `i` of an `enqs` as the long `enq` it stands for (slot `n + i`, the whole task record),
 * with `i` kept so the index knows which entry of the line the slot's record is (and, from a
 * compaction's line, its place in the ready order `ro + i`, so a salvage placing entries one by one keeps it).
 */
export function entryRecord(r: EnqsRecord, i: number): Extract<LogRecord, { t: 'enq' }> {
  const e = r.l[i]!;
  const at = isoOf(r.at);
  const task: TaskRecord = {
    id: e[0],
    queue: r.q,
    payload: e[1],
    attempt_count: 0,
    max_attempts: e[2] ?? r.x,
    created_at: at,
    updated_at: at,
    errors: [],
    retries: [],
  };
  if (e[3] !== undefined) task.group = e[3];
  const out: Extract<LogRecord, { t: 'enq' }> = { t: 'enq', n: r.n + i, at: r.at, task, i };
  if (r.m !== undefined) out.m = r.m;
  if (typeof r.ro === 'number') out.ro = r.ro + i;
  return out;
}

/** The last `at` formatted and its text: the entries of a line share one, and are read back one after the other. */
let lastAt = Number.NaN;
let lastIso = '';

/** `at` as ISO-8601 (a RangeError for a time out of range, as `Date.toISOString` throws). */
function isoOf(at: number): string {
  if (at !== lastAt) {
    lastIso = new Date(at).toISOString();
    lastAt = at;
  }
  return lastIso;
}

/** The keys of a fresh task's record, in the order `newRecord` writes them (`group` last, when it has one). */
const FRESH_KEYS = ['id', 'queue', 'payload', 'attempt_count', 'max_attempts', 'created_at', 'updated_at', 'errors', 'retries', 'group'];

/**
 * The entry of an `enqs` line that reads back as exactly this task record, with the wall time its
 * `at` must be: for a record as enqueue writes a fresh task (no attempt, error, retry or
 * cancellation, created when last updated, the keys of `newRecord` in its order), else null.
 * `x`: the line's max_attempts.
 */
export function freshEntry(task: TaskRecord, x: number): { entry: EnqEntry; at: number } | null {
  if (task.attempt_count !== 0 || task.errors.length !== 0 || task.retries.length !== 0 || task.created_at !== task.updated_at || task.payload === undefined) return null;
  const keys = Object.keys(task);
  const grouped = typeof task.group === 'string';
  if (keys.length !== (grouped ? 10 : 9)) return null;
  for (let i = 0; i < keys.length; i++) if (keys[i] !== FRESH_KEYS[i]) return null;
  const at = task.created_at === lastIso ? lastAt : Date.parse(task.created_at);
  if (!Number.isFinite(at) || isoOf(at) !== task.created_at) return null;
  const p = task.payload;
  const entry: EnqEntry = grouped ? [task.id, p, task.max_attempts, task.group!] : task.max_attempts !== x ? [task.id, p, task.max_attempts] : [task.id, p];
  return { entry, at };
}

/**
 * The line to write for a record: an `enq` of a fresh task in the short form (about 150 bytes
 * fewer per task); anything else, or an `enq` whose task is not exactly what the short form
 * rebuilds, as it is. `atIso`: `r.at` as ISO-8601, when the caller has it (a round formats its time once).
 */
export function shortForm(r: LogRecord, atIso?: string): object {
  if (r.t !== 'enq') return r;
  const k = r.task;
  if (k.attempt_count !== 0 || k.errors.length !== 0 || k.retries.length !== 0 || k.cancelled !== undefined) return r;
  if (k.created_at !== k.updated_at || k.created_at !== (atIso ?? new Date(r.at).toISOString())) return r;
  const out: ShortEnq = { t: 'enq', n: r.n, at: r.at, id: k.id, q: k.queue, p: k.payload, x: k.max_attempts };
  if (r.m !== undefined) out.m = r.m;
  if (k.group !== undefined) out.g = k.group;
  return out;
}

/**
 * A record as read: a short `enq` (an `enq` without `task`) becomes the long form, its task record
 * rebuilt field by field in the order enqueue writes them; anything else is returned as it is.
 */
export function expandRecord(r: unknown): unknown {
  const e = r as Partial<ShortEnq> & { task?: unknown };
  if (e === null || typeof e !== 'object' || e.t !== 'enq' || e.task !== undefined || typeof e.id !== 'string') return r;
  const at = typeof e.at === 'number' && Number.isFinite(e.at) ? new Date(e.at).toISOString() : String(e.at);
  const task: Record<string, unknown> = {
    id: e.id,
    queue: e.q,
    payload: e.p,
    attempt_count: 0,
    max_attempts: e.x,
    created_at: at,
    updated_at: at,
    errors: [],
    retries: [],
  };
  if (e.g !== undefined) task.group = e.g;
  const out: Record<string, unknown> = { t: 'enq', n: e.n, at: e.at, task };
  if (e.m !== undefined) out.m = e.m;
  return out;
}

/** Records that must be on disk before the caller hears back. Claims and renewals may be lost: the task stays safe. */
export function needsSync(r: LogRecord): boolean {
  // A `start` need not be fsynced: it is written (to the page cache) before the handler runs, so a
  // crashed process still has it counted; only a power loss can drop it, and then the attempt is free.
  // A `clk` is synced with whatever record after it needs syncing (fdatasync covers the file).
  return r.t !== 'claim' && r.t !== 'renew' && r.t !== 'rel' && r.t !== 'start' && r.t !== 'clk';
}

/** The task id a full record carries (for confirming an id-index match). */
export function idOfRecord(r: unknown): string | null {
  const rec = r as { id?: unknown; task?: { id?: unknown } } | null;
  if (!rec || typeof rec !== 'object') return null;
  if (typeof rec.id === 'string') return rec.id;
  return typeof rec.task?.id === 'string' ? rec.task.id : null;
}
