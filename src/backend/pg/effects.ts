/**
 * Writing tasks' effects inside a transaction the caller holds (PgQueue.completeWithEffects,
 * after its fenced completion): rows into `artifact`, entries into `effect_log` (migration 4).
 * Rows are written as a put of PgStores writes them (`putRowsOn`, shared with it). Completions
 * are group-committed ({@link EffectsBatcher}): one transaction per window.
 */
import { GroupWindow } from './acks.js';
import type pg from 'pg';
import { canonicalText } from '../../pipeline/canonical.js';
import type { RowText } from '../../pipeline/types.js';
import type { EffectConflict, EffectsOutcome, Lease, TaskEffect } from '../../queue/types.js';
import { effectTexts } from '../../runtime/effects.js';
import { hashText } from '../../storage/store/artifact-store.js';
import { prepared } from './statements.js';

/** Anything statements can run on inside a transaction. */
interface Tx {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
  /** A named statement ({@link prepared}). */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(config: { name: string; text: string; values: unknown[] }): Promise<pg.QueryResult<R>>;
}

/** Rows per statement. */
const CHUNK = 5000;

/** The result of {@link putRowsOn}. */
export interface RowsWritten {
  written: number;
  present: number;
  conflicts: { id: string; existing: string; incoming: string }[];
}

/**
 * Puts `rows` into store `store` on `c` (inside the caller's transaction; `S` the quoted schema):
 * new ids are inserted in the order given, an id present with the same text counts as present,
 * with other text as a conflict. On conflicts the caller must roll back (some rows may have been
 * inserted). A repeated id within `rows` is present (same text) or a conflict.
 */
export async function putRowsOn(c: Tx, S: string, store: string, rows: readonly RowText[]): Promise<RowsWritten> {
  const fresh = new Map<string, { date: string; p: string; text: string }>();
  const conflicts: RowsWritten['conflicts'] = [];
  let present = 0;
  for (const r of rows) {
    const text = r.text;
    const had = fresh.get(r.id);
    if (had === undefined) fresh.set(r.id, { date: r.date, p: r.identity, text });
    else if (had.text === text) present++;
    else conflicts.push({ id: r.id, existing: had.text, incoming: text });
  }
  const list = [...fresh.entries()];
  let written = 0;
  const others: string[] = [];
  for (let i = 0; i < list.length; i += CHUNK) {
    const slice = list.slice(i, i + CHUNK);
    const ins = await c.query<{ id: string }>(
      prepared(
        `INSERT INTO ${S}.artifact (store, id, date, p, h, body)
       SELECT $1, x.id, x.date, x.p, x.h, x.body
         FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS x(id, date, p, h, body, n)
        ORDER BY x.n
       ON CONFLICT (store, id) DO NOTHING RETURNING id`,
        [store, slice.map(([id]) => id), slice.map(([, v]) => v.date), slice.map(([, v]) => v.p), slice.map(([, v]) => hashText(v.text)), slice.map(([, v]) => v.text)],
      ),
    );
    written += ins.rows.length;
    const added = new Set(ins.rows.map((x) => x.id));
    for (const [id] of slice) if (!added.has(id)) others.push(id);
  }
  // Under READ COMMITTED an insert that met another's uncommitted row waited for it: this reads the winner.
  for (let i = 0; i < others.length; i += CHUNK) {
    const ids = others.slice(i, i + CHUNK);
    const had = await c.query<{ id: string; body: string }>(`SELECT id, body FROM ${S}.artifact WHERE store = $1 AND id = ANY($2::text[])`, [store, ids]);
    for (const x of had.rows) {
      const incoming = fresh.get(x.id)!.text;
      if (x.body === incoming) present++;
      else conflicts.push({ id: x.id, existing: x.body, incoming });
    }
  }
  return { written, present, conflicts };
}

/**
 * Writes `effects` on `c` for the completion of task `id` of `queue` under lease fence `fence`.
 * @returns the conflicts of its rows (the caller rolls back when there are any).
 */
export async function writeEffectsOn(c: Tx, S: string, queue: string, id: string, fence: number, effects: readonly TaskEffect[]): Promise<EffectConflict[]> {
  const conflicts: EffectConflict[] = [];
  const logs: string[] = [];
  const bodies: string[] = [];
  for (const e of effects) {
    if (e.kind !== 'append') {
      const store = `${e.pipeline}.${e.step}`;
      const r = await putRowsOn(c, S, store, effectTexts(e));
      for (const x of r.conflicts) conflicts.push({ store, ...x });
    } else {
      logs.push(e.log);
      // The body's stable text (canonicalText takes an object: `{"body":<text>}` less its wrapper).
      bodies.push(canonicalText({ body: e.body }).slice('{"body":'.length, -1));
    }
  }
  if (conflicts.length) return conflicts;
  if (logs.length) {
    await c.query(
      `INSERT INTO ${S}.effect_log (log, queue, task_id, fence, body)
       SELECT x.log, $1, $2, $3, x.body FROM unnest($4::text[], $5::text[]) WITH ORDINALITY AS x(log, body, n) ORDER BY x.n`,
      [queue, id, fence, logs, bodies],
    );
  }
  return conflicts;
}

/** One completion with effects waiting for its batch ({@link EffectsBatcher}). */
export interface EffectsOp {
  id: string;
  lease: Lease;
  effects: readonly TaskEffect[];
  resolve(o: EffectsOutcome): void;
  reject(err: unknown): void;
}

/**
 * Group commit of completions with effects: the calls made within one window become one batch,
 * written by `write` (one transaction). An id already in the window waits for the next one. Pure
 * scheduling, no SQL.
 */
export class EffectsBatcher {
  private readonly window: GroupWindow<EffectsOp>;

  /**
   * @param windowMs the window in ms (0: the next turn of the event loop).
   * @param write writes one batch and settles each of its ops; it must not throw.
   */
  constructor(windowMs: number, write: (ops: EffectsOp[]) => Promise<void>) {
    this.window = new GroupWindow<EffectsOp>(windowMs, write);
  }

  push(id: string, lease: Lease, effects: readonly TaskEffect[]): Promise<EffectsOutcome> {
    return new Promise<EffectsOutcome>((resolve, reject) => this.window.add({ id, lease, effects, resolve, reject }));
  }

  /** Writes everything queued now (before a close). */
  drain(): Promise<void> {
    return this.window.drain();
  }
}

/**
 * Writes the effects of the completions `ops` whose ids are in `held` (their fenced completion
 * just succeeded in the caller's transaction on `c`), all at once: one put per store, one insert
 * of every log entry.
 * @returns the (store, id) keys of rows that conflict (the caller rolls back and sets their ops apart).
 */
export async function writeBatchEffectsOn(c: Tx, S: string, queue: string, ops: readonly Pick<EffectsOp, 'id' | 'lease' | 'effects'>[]): Promise<Set<string>> {
  const byStore = new Map<string, RowText[]>();
  const log = { logs: [] as string[], ids: [] as string[], fences: [] as number[], bodies: [] as string[] };
  for (const op of ops) {
    for (const e of op.effects) {
      if (e.kind !== 'append') {
        const store = `${e.pipeline}.${e.step}`;
        const list = byStore.get(store) ?? [];
        list.push(...effectTexts(e));
        byStore.set(store, list);
      } else {
        log.logs.push(e.log);
        log.ids.push(op.id);
        log.fences.push(op.lease.fence);
        log.bodies.push(canonicalText({ body: e.body }).slice('{"body":'.length, -1));
      }
    }
  }
  const conflicting = new Set<string>();
  for (const [store, rows] of byStore) {
    const r = await putRowsOn(c, S, store, rows);
    for (const x of r.conflicts) conflicting.add(`${store}\u0000${x.id}`);
  }
  if (conflicting.size) return conflicting;
  if (log.logs.length) {
    await c.query(
      `INSERT INTO ${S}.effect_log (log, queue, task_id, fence, body)
       SELECT x.log, $1, x.id, x.fence, x.body FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[]) WITH ORDINALITY AS x(log, id, fence, body, n) ORDER BY x.n`,
      [queue, log.logs, log.ids, log.fences, log.bodies],
    );
  }
  return conflicting;
}

/** Whether `op` writes a row among the `conflicting` (store, id) keys of {@link writeBatchEffectsOn}. */
export function touches(op: Pick<EffectsOp, 'effects'>, conflicting: ReadonlySet<string>): boolean {
  return op.effects.some((e) => e.kind !== 'append' && e.rows.some((r) => conflicting.has(`${e.pipeline}.${e.step}\u0000${r.id}`)));
}
