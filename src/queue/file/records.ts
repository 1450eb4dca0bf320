import type { TaskRecord, TaskState } from '../types.js';

/** [slot, fence] pairs: one batched claim/renew/done/release record covers many tasks. */
export type Pair = [number, number];

/** The records of a queue log. Every mutation names the state it expects, so replay can refuse a stale one. */
export type LogRecord =
  /** `cancelled_dropped`: cancelled tasks dropped past retention (absent in logs of older versions: 0). */
  | { t: 'head'; gen: number; at: number; completed_dropped: number; cancelled_dropped?: number; paused: boolean; totals?: { failed: number; dead_lettered: number; retried: number } }
  | { t: 'enq'; n: number; at: number; task: TaskRecord }
  /** `st: 1`: the leases begin started (the claimer runs them at once); absent, each starts with a `start` record. */
  | { t: 'claim'; at: number; o: string; pid: number; host: string; ms: number; st?: 1; l: Pair[] }
  | { t: 'renew'; at: number; o: string; ms: number; l: Pair[] }
  /** The owner's handlers of these leases begin: from now on losing the lease costs an attempt. */
  | { t: 'start'; at: number; o: string; l: Pair[] }
  | { t: 'done'; at: number; o: string; l: Pair[] }
  | { t: 'rel'; at: number; o: string; l: Pair[] }
  | { t: 'fail'; at: number; o: string; n: number; f: number; ms: number; task: TaskRecord }
  | { t: 'dead'; at: number; o: string; n: number; f: number; task: TaskRecord }
  | { t: 'reclaim'; at: number; n: number; f: number; task: TaskRecord }
  | { t: 'retry'; at: number; n: number; task: TaskRecord }
  | { t: 'rerun'; at: number; n: number; task: TaskRecord }
  /** A ready or scheduled task cancelled: its full record with `cancelled` (who, when, why). */
  | { t: 'cancel'; at: number; n: number; task: TaskRecord }
  | { t: 'pause' | 'resume'; at: number; by: string }
  | {
      t: 'snap';
      n: number;
      s: TaskState;
      f: number;
      tm: number;
      o?: string;
      pid?: number;
      host?: string;
      /** 1 when a leased task's handler had started. */
      st?: 1;
      task: TaskRecord;
    }
  | { t: 'kept'; n: number; id: string; f: number; tm: number };

/** Records that must be on disk before the caller hears back. Claims and renewals may be lost: the task stays safe. */
export function needsSync(r: LogRecord): boolean {
  // A `start` need not be fsynced: it is written (to the page cache) before the handler runs, so a
  // crashed process still has it counted; only a power loss can drop it, and then the attempt is free.
  return r.t !== 'claim' && r.t !== 'renew' && r.t !== 'rel' && r.t !== 'start';
}

/** The task id a full record carries (for confirming an id-index match). */
export function idOfRecord(r: unknown): string | null {
  const rec = r as { id?: unknown; task?: { id?: unknown } } | null;
  if (!rec || typeof rec !== 'object') return null;
  if (typeof rec.id === 'string') return rec.id;
  return typeof rec.task?.id === 'string' ? rec.task.id : null;
}
