/**
 * Writing a task's effects inside a transaction the caller holds (PgQueue.completeWithEffects,
 * after its fenced completion): rows into `artifact`, entries into `effect_log` (migration 4).
 * Rows are written as a put of PgStores writes them (`putRowsOn`, shared with it).
 */
import type pg from 'pg';
import { canonicalText } from '../../pipeline/canonical.js';
import type { StoredRow } from '../../pipeline/types.js';
import type { EffectConflict, TaskEffect } from '../../queue/types.js';
import { hashText } from '../../storage/store/artifact-store.js';

/** Anything statements can run on inside a transaction. */
interface Tx {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
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
export async function putRowsOn(c: Tx, S: string, store: string, rows: readonly StoredRow[]): Promise<RowsWritten> {
  const fresh = new Map<string, { date: string; p: string; text: string }>();
  const conflicts: RowsWritten['conflicts'] = [];
  let present = 0;
  for (const r of rows) {
    const text = canonicalText(r);
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
      `INSERT INTO ${S}.artifact (store, id, date, p, h, body)
       SELECT $1, x.id, x.date, x.p, x.h, x.body
         FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS x(id, date, p, h, body, n)
        ORDER BY x.n
       ON CONFLICT (store, id) DO NOTHING RETURNING id`,
      [store, slice.map(([id]) => id), slice.map(([, v]) => v.date), slice.map(([, v]) => v.p), slice.map(([, v]) => hashText(v.text)), slice.map(([, v]) => v.text)],
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
    if (e.kind === 'rows') {
      const store = `${e.pipeline}.${e.step}`;
      const r = await putRowsOn(c, S, store, e.rows);
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
