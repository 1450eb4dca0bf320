/**
 * Task effects: what a handler asks to be written when its task completes, recorded as data
 * (`ctx.effects`) and committed by the queue's completion (PostgreSQL: in the same transaction,
 * fenced by the lease) or, on backends that cannot, written just before it (at-least-once).
 * No transaction is held open across a handler: the handler only records.
 */
import { canonicalText, rowTextOf } from '../pipeline/canonical.js';
import type { RowText, StoredRow } from '../pipeline/types.js';
import type { EffectConflict, EffectsCommit, EffectsOutcome, Lease, Queue, TaskEffect } from '../queue/types.js';

/**
 * What a handler gets as `ctx.effects`. Nothing is written while the handler runs: the effects
 * recorded are written when the task completes, and dropped when the attempt fails (a retry
 * records its own).
 */
export interface TaskEffects {
  /** Rows for step `step` of pipeline `pipeline` (its artifact store `<pipeline>.<step>`). */
  rows(pipeline: string, step: string, rows: readonly StoredRow[]): void;
  /**
   * Rows for step `step` of pipeline `pipeline` already in their stored form (id, partition,
   * identity and exact text): for rows whose fields follow a spec of their own (Season 1).
   */
  texts(pipeline: string, step: string, rows: readonly RowText[]): void;
  /** One entry of the append-only log `log` (1 to 200 characters of `[A-Za-z0-9._:/-]`), any JSON value. */
  append(log: string, body: unknown): void;
  /** Effects already described as data (how an isolate hands its handler's effects back). */
  add(...effects: readonly TaskEffect[]): void;
  /** What was recorded, in order. */
  readonly list: readonly TaskEffect[];
}

const LOG_NAME = /^[A-Za-z0-9._:/-]{1,200}$/;

/**
 * The effects of one attempt, recorded in memory. Each is checked when recorded (a log name, a
 * body JSON can carry), so a bad effect fails the handler, not the completion.
 * @throws TypeError from `append` for a bad log name or a body that is not serialisable.
 */
export class EffectBuffer implements TaskEffects {
  readonly #list: TaskEffect[] = [];

  get list(): readonly TaskEffect[] {
    return this.#list;
  }

  rows(pipeline: string, step: string, rows: readonly StoredRow[]): void {
    if (rows.length) this.#list.push({ kind: 'rows', pipeline, step, rows: [...rows] });
  }

  texts(pipeline: string, step: string, rows: readonly RowText[]): void {
    if (rows.length) this.#list.push({ kind: 'texts', pipeline, step, rows: [...rows] });
  }

  append(log: string, body: unknown): void {
    if (!LOG_NAME.test(log)) throw new TypeError(`effect log name ${JSON.stringify(log).slice(0, 80)} must match ${LOG_NAME.source}`);
    canonicalText({ body });
    this.#list.push({ kind: 'append', log, body });
  }

  add(...effects: readonly TaskEffect[]): void {
    for (const e of effects) {
      if (e.kind === 'rows') this.rows(e.pipeline, e.step, e.rows);
      else if (e.kind === 'texts') this.texts(e.pipeline, e.step, e.rows);
      else this.append(e.log, e.body);
    }
  }
}

/** Where a backend without transactions writes effects ({@link effectsThenComplete}). */
export interface EffectSink {
  /** Puts rows (present ones with the same text are left alone); conflicts write nothing of the put. */
  putRows(pipeline: string, step: string, rows: readonly RowText[]): Promise<{ conflicts: readonly { id: string; existing: string; incoming: string }[] }>;
  /** Appends one entry to log `log`, naming the task that wrote it. */
  append(log: string, body: unknown, by: { queue: string; id: string; fence: number }): Promise<void>;
}

/**
 * The at-least-once {@link EffectsCommit} of a queue that has no transactions (files, memory):
 * each effect is written to `sink`, then the task is completed. A crash between them (or a lease
 * lost meanwhile) runs the task again, and its effects are written again: rows are keyed and
 * idempotent, appends are duplicated. A conflict writes nothing more and leaves the task leased.
 */
export function effectsThenComplete(queue: Pick<Queue, 'name' | 'complete'>, sink: EffectSink): EffectsCommit {
  return {
    atomic: false,
    async completeWithEffects(id: string, lease: Lease, effects: readonly TaskEffect[]): Promise<EffectsOutcome> {
      for (const e of effects) {
        if (e.kind === 'append') continue;
        const r = await sink.putRows(e.pipeline, e.step, effectTexts(e));
        if (r.conflicts.length) return { status: 'conflict', conflicts: r.conflicts.map((c) => ({ store: `${e.pipeline}.${e.step}`, ...c })) };
      }
      for (const e of effects) if (e.kind === 'append') await sink.append(e.log, e.body, { queue: queue.name, id, fence: lease.fence });
      return (await queue.complete(id, lease)) ? { status: 'completed' } : { status: 'lease_lost' };
    },
  };
}

/** The rows of a `rows` or `texts` effect in their stored form. */
export function effectTexts(e: Extract<TaskEffect, { kind: 'rows' | 'texts' }>): readonly RowText[] {
  return e.kind === 'texts' ? e.rows : e.rows.map(rowTextOf);
}

/** One entry of an effect log as {@link memoryEffectSink} keeps it. */
export interface LoggedEffect {
  log: string;
  queue: string;
  task_id: string;
  fence: number;
  body: unknown;
}

/** An {@link EffectSink} in memory (tests, the memory backend): rows by store and id, and the logs' entries in order. */
export function memoryEffectSink(): EffectSink & { rows: Map<string, Map<string, string>>; logged: LoggedEffect[] } {
  const rows = new Map<string, Map<string, string>>();
  const logged: LoggedEffect[] = [];
  return {
    rows,
    logged,
    putRows(pipeline, step, list) {
      const store = `${pipeline}.${step}`;
      const have = rows.get(store) ?? new Map<string, string>();
      const conflicts: EffectConflict[] = [];
      const fresh = new Map<string, string>();
      for (const { id, text } of list) {
        const had = have.get(id) ?? fresh.get(id);
        if (had === undefined) fresh.set(id, text);
        else if (had !== text) conflicts.push({ store, id, existing: had, incoming: text });
      }
      if (!conflicts.length) {
        for (const [id, text] of fresh) have.set(id, text);
        rows.set(store, have);
      }
      return Promise.resolve({ conflicts });
    },
    append(log, body, by) {
      logged.push({ log, queue: by.queue, task_id: by.id, fence: by.fence, body });
      return Promise.resolve();
    },
  };
}
