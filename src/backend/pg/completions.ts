/**
 * Completions whose outcome needs more than one statement (PgQueue.completeWithEffects and
 * PgQueue.complete): a window's completions with their effects in one transaction, the tasks whose
 * rows conflict taken apart and completed one by one, and completions whose connection dropped
 * before the commit was known, decided by the fence once the database answers again.
 */
import type { EffectsOutcome, Lease, TaskEffect } from '../../queue/types.js';
import { inTransaction, isUnavailable, pgError, type PgPool } from './connection.js';
import { touches, writeBatchEffectsOn, writeEffectsOn, type EffectsOp } from './effects.js';
import { quoteSchema } from './migrations.js';
import type { PgSetting } from './setting.js';
import { plainArray, textArray } from './params.js';
import { prepared, type Statements } from './statements.js';

/** Tries to read back an ambiguous completion (50 ms, doubling: about 1.5 s in all). */
const AMBIGUOUS_TRIES = 5;

/** What the completions need of their queue (PgQueue). */
export interface CompletionContext {
  readonly pool: PgPool;
  readonly sql: Statements;
  /** The queue's name. */
  readonly name: string;
  readonly schema: string;
  readonly setting: Pick<PgSetting, 'url' | 'source'>;
  /** `$2` of every statement (PgQueue.nowParam). */
  nowParam(): string | null;
  /** The schema is migrated (PgQueue.ready). */
  ready(what: string): Promise<void>;
  /** Counts a lost connection (PgQueue.outages). */
  lostConnection(): void;
}

/** One batch of completions with effects in one transaction (PgQueue.completeWithEffects); settles every op, never throws. */
export async function commitEffectsBatch(cx: CompletionContext, ops: EffectsOp[]): Promise<void> {
  if (ops.length === 1) {
    const op = ops[0]!;
    return completeOne(cx, op.id, op.lease, op.effects).then(op.resolve, op.reject);
  }
  const what = 'completing tasks with their effects';
  try {
    await cx.ready(what);
  } catch (err) {
    // Unreachable: reported as a lost lease, as a plain completion is (the worker stops at its next claim).
    const gone = isUnavailable((err as { cause?: unknown }).cause ?? err);
    for (const o of ops) {
      if (gone) o.resolve({ status: 'lease_lost' });
      else o.reject(err);
    }
    return;
  }
  const S = quoteSchema(cx.schema);
  let todo = ops;
  const alone: EffectsOp[] = [];
  while (todo.length) {
    const batch = todo;
    try {
      const held = await inTransaction(cx.pool, async (c) => {
        const r = await c.query<{ id: string }>(
          prepared(cx.sql.complete, [cx.name, cx.nowParam(), textArray(batch, (o) => o.id), plainArray(batch, (o) => o.lease.fence), textArray(batch, (o) => o.lease.owner)]),
        );
        const ok = new Set(r.rows.map((x) => x.id));
        const conflicting = await writeBatchEffectsOn(
          c,
          S,
          cx.name,
          batch.filter((o) => ok.has(o.id)),
        );
        if (conflicting.size) throw new Redo(conflicting);
        return ok;
      });
      for (const o of batch) o.resolve(held.has(o.id) ? { status: 'completed' } : { status: 'lease_lost' });
      todo = [];
    } catch (err) {
      if (err instanceof Redo) {
        // Rolled back: the tasks whose rows conflict go one by one, the others in a batch again.
        todo = batch.filter((o) => !touches(o, err.conflicting));
        alone.push(...batch.filter((o) => touches(o, err.conflicting)));
        continue;
      }
      if (!isUnavailable(err)) {
        const e = pgError(err, cx.setting, `${what} (queue ${cx.name})`);
        for (const o of batch) o.reject(e);
        return;
      }
      cx.lostConnection();
      // Committed or not, nobody can tell: the fence decides, task by task.
      await Promise.all(
        batch.map(async (o) => {
          const settled = await readBack(cx, o.id, o.lease).catch(() => 'lost' as const);
          if (settled === 'held') alone.push(o);
          else o.resolve({ status: settled === 'completed' ? 'completed' : 'lease_lost' });
        }),
      );
      todo = [];
    }
  }
  for (const o of alone) await completeOne(cx, o.id, o.lease, o.effects).then(o.resolve, o.reject);
}

/** One completion with its effects in a transaction of its own. */
async function completeOne(cx: CompletionContext, id: string, lease: Lease, effects: readonly TaskEffect[]): Promise<EffectsOutcome> {
  const what = 'completing a task with its effects';
  try {
    await cx.ready(what);
  } catch (err) {
    if (isUnavailable((err as { cause?: unknown }).cause ?? err)) return { status: 'lease_lost' };
    throw err;
  }
  const S = quoteSchema(cx.schema);
  for (let i = 0; ; i++) {
    try {
      return await inTransaction(cx.pool, async (c) => {
        const done = await c.query(cx.sql.complete, [cx.name, cx.nowParam(), [id], [lease.fence], [lease.owner]]);
        if (done.rowCount !== 1) throw new EndTx({ status: 'lease_lost' });
        const conflicts = await writeEffectsOn(c, S, cx.name, id, lease.fence, effects);
        if (conflicts.length) throw new EndTx({ status: 'conflict', conflicts });
        return { status: 'completed' } as const;
      });
    } catch (err) {
      if (err instanceof EndTx) return err.outcome;
      if (!isUnavailable(err)) throw pgError(err, cx.setting, `${what} (queue ${cx.name})`);
      cx.lostConnection();
      // Committed or not, nobody can tell: the fence decides once the database answers.
      const settled = await readBack(cx, id, lease);
      if (settled !== 'held' || i >= AMBIGUOUS_TRIES) return { status: settled === 'completed' ? 'completed' : 'lease_lost' };
    }
  }
}

/**
 * An ambiguous completion, decided by the fence once the database answers again (a few tries,
 * backing off). Still unreachable: false, the outcome unknown to this holder (the task is
 * someone else's once its lease expires, and a second completion is fenced off).
 */
export async function settleCompletion(cx: CompletionContext, id: string, lease: Lease): Promise<boolean> {
  for (let i = 0; i < AMBIGUOUS_TRIES; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** i));
    try {
      const r = await cx.pool.query<{ state: number; fence: number; owner: string | null }>(cx.sql.taskState, [cx.name, id]);
      const row = r.rows[0];
      if (!row) return false;
      if (row.state === 3 && Number(row.fence) === lease.fence) return true;
      if (row.state === 2 && Number(row.fence) === lease.fence && row.owner === lease.owner) {
        return (await cx.pool.query(cx.sql.complete, [cx.name, cx.nowParam(), [id], [lease.fence], [lease.owner]])).rowCount === 1;
      }
      return false;
    } catch (err) {
      if (!isUnavailable(err)) throw pgError(err, cx.setting, `completing a task (queue ${cx.name})`);
    }
  }
  return false;
}

/**
 * Where a task stands for this lease after an ambiguous commit, read on a new connection (a few
 * tries, backing off): `completed` with this fence, still `held` by it, or `lost` (someone
 * else's, or the database still unreachable: the outcome unknown to this holder).
 */
async function readBack(cx: CompletionContext, id: string, lease: Lease): Promise<'completed' | 'held' | 'lost'> {
  for (let i = 0; i < AMBIGUOUS_TRIES; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** i));
    try {
      const row = (await cx.pool.query<{ state: number; fence: number; owner: string | null }>(cx.sql.taskState, [cx.name, id])).rows[0];
      if (row && Number(row.fence) === lease.fence && row.state === 3) return 'completed';
      if (row && Number(row.fence) === lease.fence && row.state === 2 && row.owner === lease.owner) return 'held';
      return 'lost';
    } catch (err) {
      if (!isUnavailable(err)) throw pgError(err, cx.setting, `completing a task (queue ${cx.name})`);
    }
  }
  return 'lost';
}

/** Ends a transaction of a completion with effects (rolled back) with an outcome; never leaves this module. */
class EndTx extends Error {
  constructor(readonly outcome: EffectsOutcome) {
    super(outcome.status);
  }
}

/** Rolls a batch of completions with effects back: rows of these (store, id) keys conflict. */
class Redo extends Error {
  constructor(readonly conflicting: ReadonlySet<string>) {
    super('conflict');
  }
}
