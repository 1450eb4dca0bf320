/**
 * The PostgreSQL cases of docs SCALE-OUT §6 for the queue: several instances (hosts) on one
 * database, a claim racing an uncommitted claim, an ambiguous completion after a dropped
 * connection, counters against count(*) after random operation sequences (and the same answers
 * as the in-memory reference), back-pressure under concurrent enqueuers, and callers whose clocks
 * are off by ten minutes.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { createPool, type PgPool } from '../../src/backend/pg/connection.js';
import { MIGRATIONS, migrationSql } from '../../src/backend/pg/migrations.js';
import { PgQueue } from '../../src/backend/pg/pg-queue.js';
import { prepared, statements } from '../../src/backend/pg/statements.js';
import { MemoryQueue } from '../../src/queue/memory.js';
import type { Owner, Queue, TaskError } from '../../src/queue/types.js';
import { until } from '../wait.js';
import { FakeClock } from './conformance.js';
import { createTestDatabase, pgAvailable, type TestDatabase } from './pg-db.js';
import { startProxy } from './pg-proxy.js';

const up = await pgAvailable();
let db: TestDatabase;
const pools: PgPool[] = [];
let n = 0;

/** A pool of its own: a queue on it behaves as another host. */
function pool(url = db.url, max = 4): PgPool {
  const p = createPool(url, max);
  pools.push(p);
  return p;
}

function queue(
  name: string,
  o: { pool?: PgPool; schema?: string; now?: () => number; dbNow?: () => number; max_queue_size?: number; max_attempts?: number; presence_check_ms?: number } = {},
): PgQueue {
  return new PgQueue({
    name,
    setting: { url: db.url, source: 'test', schema: o.schema ?? 'cases' },
    pool: o.pool ?? pool(),
    ...(o.now ? { now: o.now } : {}),
    ...(o.dbNow ? { dbNow: o.dbNow } : {}),
    ...(o.max_queue_size !== undefined ? { max_queue_size: o.max_queue_size } : {}),
    ...(o.max_attempts !== undefined ? { max_attempts: o.max_attempts } : {}),
    ...(o.presence_check_ms !== undefined ? { presence_check_ms: o.presence_check_ms } : {}),
  });
}

const owner = (id: string): Owner => ({ id, pid: 1, host: 'h' });
const err = (message: string): Omit<TaskError, 'attempt'> => ({ kind: 'transient', class: 'Error', message, at: '2026-01-15T12:00:00.000Z' });


/** A queue `name` of schema cases holding one task, and a client of its own (ended with the test). */
async function seeded(name: string): Promise<{ q: PgQueue; admin: pg.Client }> {
  const q = queue(name);
  await q.enqueue([{ id: 'seed', payload: 0 }]);
  const admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
  onTestFinished(() => admin.end());
  return { q, admin };
}

/** Tasks t1…t`count` of queue `name` in `schema`, inserted directly (no counters kept): the even ones leased by owner o with fence 1, the odd ones ready. */
async function insertHalfLeased(c: pg.Client, schema: string, name: string, count: number): Promise<void> {
  await c.query(
    `INSERT INTO ${schema}.task (queue, id, state, seq, ready_seq, t, max_attempts, owner, fence, payload, created_at, updated_at)
     SELECT $1, 't' || i, CASE WHEN i % 2 = 0 THEN 2 ELSE 0 END, nextval('${schema}.task_seq'), nextval('${schema}.ready_seq'),
            now() + interval '1 hour', 5, CASE WHEN i % 2 = 0 THEN 'o' END, 1, '{}', 'x', 'x'
       FROM generate_series(1, $2::int) i`,
    [name, count],
  );
}

/** EXPLAIN (FORMAT JSON) of `text` with `params` on `c`. */
let prepares = 0;

/**
 * The plan of `text` with `params`: the custom plan for these values, or (`generic`) the generic
 * plan the server caches for a named statement (statements.ts `prepared`) once it costs no more
 * than the custom ones, which knows none of the values.
 */
async function explainOn(c: pg.Client, text: string, params: unknown[], generic = false): Promise<unknown> {
  if (!generic) return (await c.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) ${text}`, params)).rows[0]!['QUERY PLAN'];
  const name = `generic_${++prepares}`;
  await c.query(`PREPARE ${name} AS ${text}`);
  try {
    await c.query('SET plan_cache_mode = force_generic_plan');
    // EXPLAIN EXECUTE takes no bound parameters: the values as literals of unknown type.
    const literal = (v: unknown): string =>
      v === null ? 'NULL' : c.escapeLiteral(Array.isArray(v) ? `{${v.map((e) => (e === null ? 'NULL' : `"${String(e).replace(/["\\]/g, '\\$&')}"`)).join(',')}}` : String(v));
    return (await c.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) EXECUTE ${name}(${params.map(literal).join(', ')})`)).rows[0]!['QUERY PLAN'];
  } finally {
    await c.query('RESET plan_cache_mode');
    await c.query(`DEALLOCATE ${name}`);
  }
}

/** Sequential scans of the task table, and task indexes read otherwise than the primary key entered by ids, in `plan`. */
function wayIn(plan: unknown): string[] {
  const out: string[] = [];
  const walk = (node: Record<string, unknown>): void => {
    if (node['Node Type'] === 'Seq Scan' && node['Relation Name'] === 'task') out.push('Seq Scan on task');
    const index = node['Index Name'] as string | undefined;
    if (index?.startsWith('task') && !(index === 'task_pkey' && /^\(+id = /.test(String(node['Index Cond'])))) out.push(`${index}: ${String(node['Index Cond'])}`);
    for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? []) walk(child);
  };
  walk((plan as { Plan: Record<string, unknown> }[])[0]!.Plan);
  return out;
}

/**
 * The plans `run` executed on `c`, nested ones included (the statements of the claim's function,
 * schema-v11.ts): auto_explain on the session, each plan sent back as a notice, with actual rows.
 */
async function executedPlans(c: pg.Client, run: () => Promise<unknown>): Promise<unknown[]> {
  const plans: unknown[] = [];
  const onNotice = (m: { message?: string }): void => {
    const at = m.message?.indexOf('plan:\n') ?? -1;
    if (at >= 0) plans.push(JSON.parse(m.message!.slice(at + 6)) as unknown);
  };
  await c.query(`LOAD 'auto_explain'`);
  for (const [k, v] of Object.entries({ log_min_duration: '0', log_nested_statements: 'on', log_analyze: 'on', log_timing: 'off', log_format: 'json', log_level: 'notice' }))
    await c.query(`SET auto_explain.${k} = '${v}'`);
  c.on('notice', onNotice);
  try {
    await run();
  } finally {
    c.off('notice', onNotice);
    await c.query('SET auto_explain.log_min_duration = -1');
  }
  return plans;
}

/** The task indexes `plans` read (not the primary key entered by ids): `node type index: rows read`, and sequential scans of the task table. */
function indexReads(plans: unknown[]): string[] {
  const out: string[] = [];
  const walk = (node: Record<string, unknown>): void => {
    if (node['Node Type'] === 'Seq Scan' && node['Relation Name'] === 'task') out.push(`Seq Scan on task: ${String(node['Actual Rows'])}`);
    const index = node['Index Name'] as string | undefined;
    if (index?.startsWith('task') && !(index === 'task_pkey' && /^\(+id = /.test(String(node['Index Cond'])))) out.push(`${String(node['Node Type'])} ${index}: ${String(node['Actual Rows'])}`);
    for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? []) walk(child);
  };
  for (const p of plans) walk((p as { Plan: Record<string, unknown> }).Plan);
  return out;
}

/** {@link wayIn} of each acknowledgement of 100 leases (t2, t4, … of queue `name`, fence 1, owner o), named by statement. */
async function ackWaysIn(c: pg.Client, sql: ReturnType<typeof statements>, name: string, generic = false): Promise<string[]> {
  const ids = Array.from({ length: 100 }, (_, i) => `t${2 * i + 2}`);
  const fences = ids.map(() => 1);
  const owners = ids.map(() => 'o');
  const err = ids.map(() => '{"message":"x"}');
  const plans: [string, string, unknown[]][] = [
    ['complete', sql.complete, [name, null, ids, fences, owners]],
    ['start', sql.start, [name, ids, fences, owners]],
    ['release', sql.release, [name, null, ids, fences, owners]],
    ['renew', sql.renew, [name, null, ids, fences, owners, ids.map(() => 60_000)]],
    ['failMany', sql.failMany, [name, null, ids, fences, owners, err, ids.map(() => 1), ids.map(() => false), ids.map(() => 'x')]],
  ];
  const out: string[] = [];
  for (const [what, text, params] of plans) for (const w of wayIn(await explainOn(c, text, params, generic))) out.push(`${what}: ${w}`);
  return out;
}

describe.skipIf(!up)('PostgreSQL queue: many hosts, one database', () => {
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.end().catch(() => undefined)));
    await db?.drop();
  });

  it('two instances on two pools never hand out the same task under concurrent claims', async () => {
    const name = `two_${++n}`;
    const a = queue(name);
    const b = queue(name);
    const ids = Array.from({ length: 3000 }, (_, i) => `t${i}`);
    for (let i = 0; i < ids.length; i += 1000) await a.enqueue(ids.slice(i, i + 1000).map((id) => ({ id, payload: { id } })));
    const got: string[][] = [[], []];
    // Four claim loops per instance, batches of 1 to 50: all at once against the same rows.
    const loop = async (q: PgQueue, who: number, k: number): Promise<void> => {
      const me = owner(`${who}-${k}`);
      for (;;) {
        const batch = await q.claim({ owner: me, max: 1 + ((k * 13 + got[who]!.length) % 50), lease_ms: 60_000 });
        if (batch.length === 0) return;
        for (const c of batch) {
          got[who]!.push(c.task.id);
          expect(await q.complete(c.task.id, c.lease)).toBe(true);
        }
      }
    };
    await Promise.all([0, 1, 2, 3].flatMap((k) => [loop(a, 0, k), loop(b, 1, k)]));
    const all = [...got[0]!, ...got[1]!];
    expect(all.length).toBe(ids.length);
    expect(new Set(all).size).toBe(ids.length);
    expect(got[0]!.length).toBeGreaterThan(0);
    expect(got[1]!.length).toBeGreaterThan(0);
    expect(await a.stats()).toMatchObject({ ready: 0, leased: 0, completed: ids.length });
    await Promise.all([a.close(), b.close()]);
  });

  it('start_first: the claim marks its first tasks started in its own commit; a lost lease charges those, not the rest', async () => {
    const name = `first_${++n}`;
    const clock = new FakeClock();
    const q = queue(name, { now: clock.now, dbNow: clock.now });
    await q.enqueue(['a', 'b', 'c', 'd', 'e'].map((id) => ({ id, payload: id })));
    const got = await q.claim({ owner: owner('w'), max: 5, lease_ms: 1000, defer_start: true, start_first: 2 });
    expect(got.map((c) => [c.task.id, c.started === true])).toEqual([
      ['a', true],
      ['b', true],
      ['c', false],
      ['d', false],
      ['e', false],
    ]);
    // Their owner dies: the leases expire; the two marked by the claim cost an attempt, the others nothing.
    clock.advance(2000);
    expect((await q.reclaimExpired()).sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
    const views = await Promise.all(['a', 'b', 'c', 'd', 'e'].map((id) => q.getTask(id)));
    expect(views.map((v) => [v!.state, v!.task.attempt_count, v!.task.errors.map((e) => e.kind)])).toEqual([
      ['ready', 1, ['lease_expired']],
      ['ready', 1, ['lease_expired']],
      ['ready', 0, []],
      ['ready', 0, []],
      ['ready', 0, []],
    ]);
    // Without defer_start every claimed task is started, whatever start_first says.
    const all = await q.claim({ owner: owner('w'), max: 5, lease_ms: 1000, start_first: 1 });
    expect(all.length).toBe(5);
    expect(all.every((c) => c.started === undefined)).toBe(true);
    await q.close();
  });

  it('between presence checks a full claim leaves an expired lease be; a short one gives it back and claims it after the ready tasks, as giving it back first would have', async () => {
    const ids = ['a', 'b', 'c', 'd'];
    // presence_check_ms 0: every claim gives expired leases back first (the reference); 60 s: only the first does.
    const runs = await Promise.all(
      [0, 60_000].map(async (every) => {
        const name = `cadence_${every}_${++n}`;
        const clock = new FakeClock();
        const q = queue(name, { now: clock.now, dbNow: clock.now, presence_check_ms: every });
        await q.enqueue(ids.map((id) => ({ id, payload: id })));
        const taken = async (max: number): Promise<string[]> => (await q.claim({ owner: owner('w'), max, lease_ms: 1000 })).map((c) => c.task.id);
        const first = await taken(1);
        clock.advance(2000);
        const full = await taken(2);
        const stats = await q.stats();
        const short = await taken(3);
        const a = await q.getTask('a');
        await q.close();
        return { first, full, leased: stats.leased, ready: stats.ready, short, a: [a!.state, a!.task.attempt_count, a!.task.errors.map((e) => e.kind)] };
      }),
    );
    // The same tasks in the same order either way: a expired, and comes back after b, c and d.
    for (const r of runs) expect([r.first, r.full, r.short, r.a]).toEqual([['a'], ['b', 'c'], ['d', 'a'], ['leased', 1, ['lease_expired']]]);
    // Given back before the full claim (every claim), or left leased until the short one (one statement a claim).
    expect(runs.map((r) => [r.leased, r.ready])).toEqual([
      [2, 2],
      [3, 1],
    ]);
  });

  it('a start mark commits without waiting for its WAL flush, and only its own transaction does', async () => {
    const name = `async_${++n}`;
    const one = pool(db.url, 1);
    const q = queue(name, { pool: one });
    await q.enqueue(['a', 'b', 'c'].map((id) => ({ id, payload: id })));
    const [a, b, c] = await q.claim({ owner: owner('w'), max: 3, lease_ms: 60_000, defer_start: true });
    const sql = statements('cases');
    /** `synchronous_commit` as `on` (a connection, or the pool's next one) sees it. */
    const setting = async (on: Pick<pg.ClientBase, 'query'>): Promise<string> => (await on.query<{ s: string }>(`SELECT current_setting('synchronous_commit') AS s`)).rows[0]!.s;
    const client = await one.connect();
    try {
      expect(await setting(client)).toBe('on');
      // Both kinds of mark (to the claim's claim_mark row, to the task row), inside a transaction to read the setting they leave.
      await client.query('BEGIN');
      const claim = (await client.query<{ c: string }>(`SELECT claim::text AS c FROM cases.task WHERE queue = $1 AND id = 'a'`, [name])).rows[0]!.c;
      const marked = await client.query<{ ids: string[] }>(sql.startMarks, [name, [claim], ['a'], ['w']]);
      expect(marked.rows.flatMap((r) => r.ids)).toEqual(['a']);
      expect(await setting(client)).toBe('off');
      await client.query('ROLLBACK');
      await client.query('BEGIN');
      expect((await client.query(sql.start, [name, ['b'], [b!.lease.fence], ['w']])).rowCount).toBe(1);
      expect(await setting(client)).toBe('off');
      await client.query('ROLLBACK');
      expect(await setting(client)).toBe('on');
    } finally {
      client.release();
    }
    // Through the queue, on the pool's one connection: the marks hold, and what runs after them commits synchronously.
    expect(await Promise.all([q.start('a', a!.lease), q.start('c', c!.lease)])).toEqual([true, true]);
    expect(await q.complete('a', a!.lease)).toBe(true);
    expect(await setting(one)).toBe('on');
    await q.close();
  });

  it('marks after the claim go to the claim_mark row, not the task rows: a reclaim charges exactly the marked leases, and a start of a lease it took is refused', async () => {
    const name = `marks_${++n}`;
    const clock = new FakeClock();
    const q = queue(name, { now: clock.now, dbNow: clock.now });
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    onTestFinished(() => admin.end());
    await q.enqueue(['a', 'b', 'c', 'd', 'e'].map((id) => ({ id, payload: id })));
    const got = await q.claim({ owner: owner('w'), max: 5, lease_ms: 1000, defer_start: true, start_first: 1 });
    const row = async () => (await admin.query<{ marks: string[]; revoked: string[] }>(`SELECT marks, revoked FROM cases.claim_mark WHERE queue = $1`, [name])).rows;
    const updates = async () => Number((await admin.query<{ n: string }>(`SELECT xmin::text AS n FROM cases.task WHERE queue = $1 AND id = 'b'`, [name])).rows[0]!.n);
    const before = await updates();
    expect(await Promise.all([q.start('b', got[1]!.lease), q.start('c', got[2]!.lease)])).toEqual([true, true]);
    // The task rows are untouched (same version); the marks are in the claim's row.
    expect(await updates()).toBe(before);
    expect(await row()).toEqual([{ marks: ['b', 'c'], revoked: [] }]);
    clock.advance(2000);
    expect((await q.reclaimExpired()).sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
    const views = await Promise.all(['a', 'b', 'c', 'd', 'e'].map((id) => q.getTask(id)));
    expect(views.map((v) => [v!.task.id, v!.task.attempt_count])).toEqual([
      ['a', 1],
      ['b', 1],
      ['c', 1],
      ['d', 0],
      ['e', 0],
    ]);
    expect((await row())[0]!.revoked.sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
    // The holder comes back to a lease the reclaim took: refused, nothing marked, nothing charged.
    expect(await q.start('d', got[3]!.lease)).toBe(false);
    expect((await row())[0]!.marks).toEqual(['b', 'c']);
    expect((await q.getTask('d'))!.task.attempt_count).toBe(0);
    expect(await q.stats()).toMatchObject({ ready: 5, leased: 0, totals: { failed: 3 } });
    // No lease of that claim is left: the queue's prune deletes its row.
    await q.prune();
    expect(await row()).toEqual([]);
    await q.close();
  });

  it('a start and a reclaim of the same claim meet at its claim_mark row: a start committed while the reclaim waited is charged, a start that waited for the reclaim is refused', async () => {
    const name = `meet_${++n}`;
    const clock = new FakeClock();
    const q = queue(name, { now: clock.now, dbNow: clock.now });
    await q.enqueue(['a', 'b', 'c', 'd'].map((id) => ({ id, payload: id })));
    const got = await q.claim({ owner: owner('w'), max: 4, lease_ms: 1000, defer_start: true, start_first: 0 });
    // One pool for the test's own reads (a pool per poll left a connection each, up to the server's limit).
    const look = pool(db.url, 1);
    const claimOf = async (id: string) => Number((await look.query<{ c: string }>(`SELECT claim::text AS c FROM cases.task WHERE queue = $1 AND id = $2`, [name, id])).rows[0]!.c);
    // A session of the queue waits for a lock `tx` holds (by pid: the text pg_stat_activity shows is cut at 1 kB, before a reclaim's update of its claim_mark rows).
    const waiting = async () => (await look.query(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND $1 = ANY (pg_blocking_pids(pid))`, [txPid])).rowCount! > 0 || undefined;
    const claim = await claimOf('a');
    const tx = new pg.Client({ connectionString: db.url });
    await tx.connect();
    onTestFinished(() => tx.end());
    const txPid = (await tx.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]!.p;
    // A start in flight (its row lock held, its mark of b not yet committed) while the lease expires and a reclaim runs.
    await tx.query('BEGIN');
    await tx.query(`UPDATE cases.claim_mark SET marks = marks || '{b}' WHERE claim = $1`, [claim]);
    clock.advance(2000);
    const reclaim = q.reclaimExpired();
    await until(waiting);
    await tx.query('COMMIT');
    expect((await reclaim).sort()).toEqual(['a', 'b', 'c', 'd']);
    expect((await q.getTask('b'))!.task.attempt_count).toBe(1);
    expect((await q.getTask('a'))!.task.attempt_count).toBe(0);
    // A reclaim in flight (the row's lock held, c revoked, not yet committed) while the holder starts c: the start waits, then is refused.
    const again = await q.claim({ owner: owner('w'), max: 4, lease_ms: 1000, defer_start: true, start_first: 0 });
    const claim2 = await claimOf('c');
    expect(claim2).not.toBe(claim);
    await tx.query('BEGIN');
    await tx.query(`UPDATE cases.claim_mark SET revoked = revoked || '{c}' WHERE claim = $1`, [claim2]);
    const c = again.find((x) => x.task.id === 'c')!;
    const start = q.start('c', c.lease);
    await until(waiting);
    await tx.query('COMMIT');
    expect(await start).toBe(false);
    const a = again.find((x) => x.task.id === 'a')!;
    expect(await q.start('a', a.lease)).toBe(true);
    expect(got.length).toBe(4);
    await q.close();
  });

  it('a reclaim takes the claim_mark rows of several claims in claim order: a start holding the first one is waited for while the later ones stay free (no deadlock)', async () => {
    const name = `order_${++n}`;
    const clock = new FakeClock();
    const q = queue(name, { now: clock.now, dbNow: clock.now });
    await q.enqueue(['a', 'b'].map((id) => ({ id, payload: id })));
    const first = await q.claim({ owner: owner('w'), max: 2, lease_ms: 1000, defer_start: true, start_first: 0 });
    await q.enqueue(['c', 'd'].map((id) => ({ id, payload: id })));
    await q.claim({ owner: owner('w'), max: 2, lease_ms: 1000, defer_start: true, start_first: 0 });
    // One pool for the test's own reads (a pool per poll left a connection each, up to the server's limit).
    const look = pool(db.url, 1);
    const claimOf = async (id: string) => Number((await look.query<{ c: string }>(`SELECT claim::text AS c FROM cases.task WHERE queue = $1 AND id = $2`, [name, id])).rows[0]!.c);
    const [c1, c2] = [await claimOf('a'), await claimOf('c')];
    expect(c1).toBeLessThan(c2);
    // A mark on the first claim rewrites its row: its newest version now lies after the second's in the table.
    expect(await q.start('a', first[0]!.lease)).toBe(true);
    const tx = new pg.Client({ connectionString: db.url });
    await tx.connect();
    onTestFinished(() => tx.end());
    const txPid = (await tx.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]!.p;
    await tx.query('BEGIN');
    await tx.query(`SET LOCAL lock_timeout = '5s'`);
    // A start in flight on the first claim's row while the leases of both claims expire and a reclaim runs.
    await tx.query(`UPDATE cases.claim_mark SET marks = marks WHERE claim = $1`, [c1]);
    clock.advance(2000);
    const reclaim = q.reclaimExpired();
    const waiting = async () => (await look.query(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND $1 = ANY (pg_blocking_pids(pid))`, [txPid])).rowCount! > 0 || undefined;
    await until(waiting);
    // The reclaim waits for the first row holding none: the second is free (a reclaim holding it would be a deadlock, one of the two failed).
    await tx.query(`UPDATE cases.claim_mark SET marks = marks WHERE claim = $1`, [c2]);
    await tx.query('COMMIT');
    expect((await reclaim).sort()).toEqual(['a', 'b', 'c', 'd']);
    const views = await Promise.all(['a', 'b', 'c', 'd'].map((id) => q.getTask(id)));
    expect(views.map((v) => v!.task.attempt_count)).toEqual([1, 0, 0, 0]);
    await q.close();
  });

  it('a client whose connection dropped before the pool handed it out ("not queryable") is a lost connection: the fence settles the completion, nothing is counted as the task failing', async () => {
    const name = `dead_client_${++n}`;
    const p = pool(db.url, 1);
    const q = queue(name, { pool: p });
    expect(q.outages()).toBe(0);
    await q.enqueue([{ id: 'a', payload: 'a' }, { id: 'b', payload: 'b' }]);
    const [a, b] = await q.claim({ owner: owner('w'), max: 2, lease_ms: 60_000 });
    // The next checkouts hand out a client whose connection has just failed (after a server
    // restart, its error can land between the pool's checkout and the caller's statement).
    // (pool.query checks out with a callback, inTransaction with a promise.)
    type Done = (err?: Error | boolean) => void;
    type Cb = (err: Error | undefined, c: pg.PoolClient, done: Done) => void;
    const connect = p.connect.bind(p) as (cb: Cb) => void;
    let dead = 1;
    const drop = (c: pg.PoolClient): void => {
      if (dead-- > 0) (c as unknown as { connection: { emit(e: string, err: Error): void } }).connection.emit('error', new Error('server closed the connection'));
    };
    p.connect = ((cb?: Cb) => {
      if (cb) return connect((e, c, done) => (e ? cb(e, c, done) : (drop(c), cb(e, c, done))));
      return new Promise((resolve, reject) => connect((e, c) => (e ? reject(e) : (drop(c), resolve(c)))));
    }) as typeof p.connect;
    // A completion with effects on that client: settled by the fence (still held: written again), not thrown.
    expect(await q.completeWithEffects(a!.task.id, a!.lease, [{ kind: 'append', log: 'x', body: 1 }])).toEqual({ status: 'completed' });
    // A failure's record on such a client: the lease reported lost (unknown to this holder), never an error.
    dead = 1;
    const recorded = await q.fail(b!.task.id, b!.lease, err('boom'), 0);
    expect(recorded).toBe('lease_lost');
    expect(q.outages()).toBeGreaterThanOrEqual(2);
    expect((await q.getTask('a'))!.state).toBe('completed');
    await q.close();
  });

  it('a claim racing an uncommitted claim skips its rows instead of waiting for them', async () => {
    const name = `race_${++n}`;
    const q = queue(name);
    await q.enqueue(['a', 'b', 'c'].map((id) => ({ id, payload: id })));
    // Another host's claim of 'a', inside a transaction that has not committed.
    const other = new pg.Client({ connectionString: db.url });
    await other.connect();
    try {
      await other.query('BEGIN');
      const held = await other.query<{ id: string }>(statements('cases').claim, [name, null, 'other', 1, 60_000, null, true, 0]);
      expect(held.rows.map((r) => r.id)).toEqual(['a']);
      // Not blocked on 'a': it answers at once with the next rows, while the other transaction is open.
      await other.query(`SET statement_timeout = 0`);
      const t0 = performance.now();
      const mine = await q.claim({ owner: owner('me'), max: 3, lease_ms: 60_000 });
      expect(performance.now() - t0).toBeLessThan(2000);
      expect(mine.map((c) => c.task.id)).toEqual(['b', 'c']);
      // The other claim rolls back: 'a' is ready again, untouched (fence 1 on its first claim).
      await other.query('ROLLBACK');
    } finally {
      await other.end();
    }
    const [a] = await q.claim({ owner: owner('me'), max: 3, lease_ms: 60_000 });
    expect([a!.task.id, a!.lease.fence, a!.task.attempt_count]).toEqual(['a', 1, 0]);
    await q.close();
  });

  describe('a completion whose connection drops is decided by the fence', () => {
    async function setup() {
      const proxy = await startProxy({ host: new URL(db.url).hostname, port: Number(new URL(db.url).port || 5432) });
      const u = new URL(db.url);
      u.port = String(proxy.port);
      const name = `cut_${++n}`;
      const direct = queue(name);
      const viaProxy = queue(name, { pool: pool(u.toString(), 2) });
      await direct.enqueue([{ id: 'a', payload: 1 }]);
      const [held] = await viaProxy.claim({ owner: owner('holder'), max: 1, lease_ms: 60_000 });
      return { proxy, direct, viaProxy, held: held!, name };
    }

    it('dropped after the server committed it: the retry reads the fence and says true', async () => {
      const { proxy, direct, viaProxy, held } = await setup();
      proxy.arm({ when: 'response', match: 'SET state = 3' });
      expect(await viaProxy.complete('a', held.lease)).toBe(true);
      await proxy.cutDone();
      expect(await direct.states(['a'])).toEqual(['completed']);
      // A plain second completion (no connection lost) is refused as ever.
      expect(await viaProxy.complete('a', held.lease)).toBe(false);
      await Promise.all([direct.close(), viaProxy.close(), proxy.close()]);
    });

    it('dropped before the server saw it: the lease is still held, so the completion is made now: true', async () => {
      const { proxy, direct, viaProxy, held } = await setup();
      proxy.arm({ when: 'request', match: 'SET state = 3' });
      expect(await viaProxy.complete('a', held.lease)).toBe(true);
      await proxy.cutDone();
      expect(await direct.stats()).toMatchObject({ completed: 1, leased: 0 });
      await Promise.all([direct.close(), viaProxy.close(), proxy.close()]);
    });

    it('a holder whose lease was handed out meanwhile: false, and the new holder completes', async () => {
      const { proxy, direct, viaProxy, held, name } = await setup();
      // The lease is taken over (its holder's host was cut off; an operator reclaimed it early).
      const admin = new pg.Client({ connectionString: db.url });
      await admin.connect();
      await admin.query(`UPDATE cases.task SET t = now() - interval '1 s' WHERE queue = $1 AND id = 'a'`, [name]);
      await admin.end();
      const [fresh] = await direct.claim({ owner: owner('new'), max: 1, lease_ms: 60_000 });
      expect(fresh!.lease.fence).toBe(held.lease.fence + 1);
      proxy.arm({ when: 'request', match: 'SET state = 3' });
      expect(await viaProxy.complete('a', held.lease)).toBe(false);
      await proxy.cutDone();
      expect(await direct.complete('a', fresh!.lease)).toBe(true);
      await Promise.all([direct.close(), viaProxy.close(), proxy.close()]);
    });
  });

  describe('presence: the leases of an owner whose database session ended are handed out at once, not after their expiry', () => {
    /** A client and queue `name` on a schema of their own (the worker table of 'cases' holds the owners other tests left gone), ended with the test. */
    async function ownSchema(schema: string, name: string): Promise<{ admin: pg.Client; q: PgQueue }> {
      const admin = new pg.Client({ connectionString: db.url });
      await admin.connect();
      onTestFinished(() => admin.end());
      await admin.query(`CREATE SCHEMA ${schema}`);
      const q = queue(name, { schema });
      onTestFinished(() => q.close());
      await q.stats();
      return { admin, q };
    }

    it('its session terminated (a host cut off, an operator): another host gets the task at once, owner_gone counted', async () => {
      const name = `gone_${++n}`;
      const holder = queue(name);
      const other = queue(name);
      await holder.enqueue([{ id: 'a', payload: 1 }]);
      const me: Owner = { id: `holder-${n}`, pid: 4242, host: 'host-a' };
      const [held] = await holder.claim({ owner: me, max: 1, lease_ms: 600_000 });
      expect(held!.task.id).toBe('a');
      // Alive: nothing to take, however often asked.
      expect(await other.reclaimExpired()).toEqual([]);
      expect(await other.claim({ owner: owner('other'), max: 1, lease_ms: 60_000 })).toEqual([]);
      const admin = new pg.Client({ connectionString: db.url });
      await admin.connect();
      const killed = await admin.query(`SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1`, [`metaspn presence ${me.id}`]);
      await admin.end();
      expect(killed.rows).toEqual([{ ok: true }]);
      const [got] = await until(async () => {
        const r = await other.claim({ owner: owner('other'), max: 1, lease_ms: 60_000 });
        return r.length ? r : undefined;
      });
      expect(got!.task.attempt_count).toBe(1);
      expect(got!.task.errors[0]).toMatchObject({ kind: 'owner_gone', class: 'OwnerGone', message: 'worker process 4242 on host-a is gone' });
      // The old holder, still running somewhere, is fenced off.
      expect(await holder.complete('a', held!.lease)).toBe(false);
      expect(await other.complete('a', got!.lease)).toBe(true);
      await Promise.all([holder.close(), other.close()]);
    });

    it('a live owner whose presence session was lost holds it again before its next claim: its new leases are not taken for gone', async () => {
      const name = `again_${++n}`;
      const holder = queue(name);
      const other = queue(name);
      await holder.enqueue([{ id: 'a', payload: 1 }, { id: 'b', payload: 2 }]);
      const me: Owner = { id: `again-${n}`, pid: 7, host: 'host-b' };
      const [a] = await holder.claim({ owner: me, max: 1, lease_ms: 600_000 });
      const admin = new pg.Client({ connectionString: db.url });
      await admin.connect();
      onTestFinished(() => admin.end());
      const app = `metaspn presence ${me.id}`;
      await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, [app]);
      await until(async () => ((await admin.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = $1`, [app])).rowCount === 0 ? true : undefined));
      // Its lease of a went with its session (another host cannot tell a lost session from a dead owner) ...
      expect(await other.reclaimExpired()).toEqual(['a']);
      expect(await holder.complete('a', a!.lease)).toBe(false);
      // ... but its next claim holds presence again first, so b stays its own.
      const [b] = await holder.claim({ owner: me, max: 1, lease_ms: 600_000 });
      expect(b!.task.id).toBe('b');
      expect((await admin.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = $1`, [app])).rowCount).toBe(1);
      expect(await other.reclaimExpired()).toEqual([]);
      expect(await holder.complete('b', b!.lease)).toBe(true);
      await Promise.all([holder.close(), other.close()]);
    });

    it('the presence check reads no task while every presence is held, and names the owner whose presence ended (10k leases)', async () => {
      const name = `presence_plan_${++n}`;
      const { admin } = await ownSchema('presence_plan', name);
      await insertHalfLeased(admin, 'presence_plan', name, 10_000);
      const key = 4242424242;
      await admin.query(`INSERT INTO presence_plan.worker (owner, pid, host, lock_key) VALUES ('o', 9, 'host-o', $1)`, [key]);
      await admin.query(`SELECT pg_advisory_lock($1::bigint)`, [key]);
      const sql = statements('presence_plan');
      const plan = (await admin.query<{ 'QUERY PLAN': { Plan: Record<string, unknown> }[] }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${sql.goneOwners}`, [name])).rows[0]!['QUERY PLAN'];
      const taskReads: unknown[] = [];
      const walk = (node: Record<string, unknown>): void => {
        if (node['Relation Name'] === 'task') taskReads.push(node['Actual Loops']);
        for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? []) walk(child);
      };
      walk(plan[0]!.Plan);
      // The plan has a way into the task table, never taken: no presence ended.
      expect(taskReads.length).toBeGreaterThan(0);
      expect(taskReads.every((loops) => loops === 0)).toBe(true);
      expect((await admin.query(sql.goneOwners, [name])).rows).toEqual([]);
      // Its session's lock released: the owner of the 5,000 leases is gone, named once.
      await admin.query(`SELECT pg_advisory_unlock($1::bigint)`, [key]);
      expect((await admin.query(sql.goneOwners, [name])).rows).toEqual([{ owner: 'o', pid: 9, host: 'host-o' }]);
      // A gone owner with no lease of this queue is not named for it.
      expect((await admin.query(sql.goneOwners, ['other'])).rows).toEqual([]);
    });

    it('a gone owner has its presence key cleared once none of its leases is left; a held key is kept', async () => {
      const name = `presence_clear_${++n}`;
      const { admin, q } = await ownSchema('presence_clear', name);
      // 'o' holds 2 leases of the 4 tasks; 'p' exited holding none; 'h' holds its lock and no lease.
      await insertHalfLeased(admin, 'presence_clear', name, 4);
      const keys = { o: 4242424243, p: 4242424244, h: 4242424245 };
      for (const [owner, key] of Object.entries(keys)) {
        await admin.query(`INSERT INTO presence_clear.worker (owner, pid, host, lock_key) VALUES ($1, 9, 'host', $2)`, [owner, key]);
      }
      await admin.query(`SELECT pg_advisory_lock($1::bigint)`, [keys.o]);
      await admin.query(`SELECT pg_advisory_lock($1::bigint)`, [keys.h]);
      const sql = statements('presence_clear');
      const keyed = async (): Promise<string[]> => (await admin.query<{ owner: string }>(`SELECT owner FROM presence_clear.worker WHERE lock_key IS NOT NULL ORDER BY owner`)).rows.map((r) => r.owner);
      // 'p' is gone with no lease: not named, its key cleared; the held keys stay.
      expect((await admin.query(sql.goneOwners, [name])).rows).toEqual([]);
      expect(await keyed()).toEqual(['h', 'o']);
      // 'o' gone with leases left: named, its key kept until they are handed out.
      await admin.query(`SELECT pg_advisory_unlock($1::bigint)`, [keys.o]);
      expect((await admin.query(sql.goneOwners, [name])).rows).toEqual([{ owner: 'o', pid: 9, host: 'host' }]);
      expect(await keyed()).toEqual(['h', 'o']);
      // The queue's reclaim hands them out (owner_gone); the next check clears the key and reads nothing more.
      expect((await q.reclaimExpired()).sort()).toEqual(['t2', 't4']);
      expect((await admin.query(sql.goneOwners, [name])).rows).toEqual([]);
      expect(await keyed()).toEqual(['h']);
      expect((await admin.query(`SELECT state, count(*)::int AS n FROM presence_clear.task GROUP BY state`)).rows).toEqual([{ state: 0, n: 4 }]);
    });

    it('its process SIGKILLed mid-task: another host gets the task at once', async () => {
      const name = `killed_${++n}`;
      const other = queue(name);
      await other.enqueue([{ id: 'a', payload: 1 }]);
      // A worker in another process (the built backend), holding the task with a 10-minute lease.
      const mod = join(import.meta.dirname, '..', '..', 'dist', 'src', 'backend', 'pg', 'pg-queue.js');
      const script = `
        const { PgQueue } = await import(${JSON.stringify(mod)});
        const q = new PgQueue({ name: ${JSON.stringify(name)}, setting: { url: ${JSON.stringify(db.url)}, source: 'test', schema: 'cases' } });
        const got = await q.claim({ owner: { id: 'child-' + process.pid, pid: process.pid, host: 'child-host' }, max: 1, lease_ms: 600000 });
        process.stdout.write('held ' + got.length + '\\n');
        setInterval(() => {}, 1000);`;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      const exited = new Promise((r) => child.on('exit', r));
      await until(async () => (out.includes('held 1') ? true : undefined));
      expect(await other.claim({ owner: owner('other'), max: 1, lease_ms: 60_000 })).toEqual([]);
      const t0 = Date.now();
      child.kill('SIGKILL');
      await exited;
      const [got] = await until(async () => {
        const r = await other.claim({ owner: owner('other'), max: 1, lease_ms: 60_000 });
        return r.length ? r : undefined;
      });
      expect(Date.now() - t0).toBeLessThan(10_000);
      expect(got!.task.errors[0]).toMatchObject({ kind: 'owner_gone', message: `worker process ${child.pid} on child-host is gone` });
      await other.close();
    });
  });

  it('back-pressure is exact under 4 concurrent enqueuers', async () => {
    const name = `bp_${++n}`;
    const max = 100;
    const qs = [0, 1, 2, 3].map(() => queue(name, { max_queue_size: max }));
    const added: string[] = [];
    let refused = 0;
    await Promise.all(
      qs.map(async (q, k) => {
        for (let i = 0; i < 40; i++) {
          try {
            added.push(...(await q.enqueue([{ id: `e${k}-${i}`, payload: i }])).added);
          } catch (e) {
            expect((e as { code?: string }).code).toBe('BUSINESS_SKIP');
            refused++;
          }
        }
      }),
    );
    expect(added.length).toBe(max);
    expect(refused).toBe(4 * 40 - max);
    expect((await qs[0]!.stats()).ready).toBe(max);
    // Room again once one completes: exactly one more fits.
    const [c] = await qs[1]!.claim({ owner: owner('w'), max: 1, lease_ms: 60_000 });
    await qs[1]!.complete(c!.task.id, c!.lease);
    expect((await qs[2]!.enqueue([{ id: 'late-1', payload: 0 }])).added).toEqual(['late-1']);
    await expect(qs[3]!.enqueue([{ id: 'late-2', payload: 0 }])).rejects.toMatchObject({ code: 'BUSINESS_SKIP' });
    await Promise.all(qs.map((q) => q.close()));
  });

  it('callers whose clocks are off by ±10 min change no lease decision; times they are shown are their now plus what remains', async () => {
    const name = `skew_${++n}`;
    const TEN = 10 * 60_000;
    const fast = queue(name, { now: () => Date.now() + TEN });
    const slow = queue(name, { now: () => Date.now() - TEN });
    await fast.enqueue([{ id: 'a', payload: 1 }]);
    const t0 = Date.now();
    const [held] = await slow.claim({ owner: owner('slow'), max: 1, lease_ms: 1500 });
    // Shown in the slow caller's own time: its now plus the lease.
    expect(Math.abs(held!.lease.expires_at - (Date.now() - TEN + 1500))).toBeLessThan(1000);
    // A caller ten minutes ahead neither sees it expired nor steals it.
    expect(await fast.reclaimExpired()).toEqual([]);
    expect(await fast.claim({ owner: owner('fast'), max: 1, lease_ms: 1500 })).toEqual([]);
    // A caller ten minutes behind does not keep it: it expires after its 1.5 s on the database clock.
    const back = await until(async () => {
      const r = await slow.reclaimExpired();
      return r.length ? r : undefined;
    });
    expect(back).toEqual(['a']);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1400);
    expect(Date.now() - t0).toBeLessThan(10_000);
    // A retry scheduled by the fast caller is due after its delay, not ten minutes later.
    const [again] = await fast.claim({ owner: owner('fast'), max: 1, lease_ms: 60_000 });
    expect(again!.task.errors.map((e) => e.kind)).toEqual(['lease_expired']);
    expect(await fast.fail('a', again!.lease, err('boom'), 500)).toBe('scheduled');
    const s = await slow.stats();
    expect(Math.abs(s.next_due_at! - (Date.now() - TEN + 500))).toBeLessThan(1000);
    const t1 = Date.now();
    const [retried] = await until(async () => {
      const r = await slow.claim({ owner: owner('slow'), max: 1, lease_ms: 60_000 });
      return r.length ? r : undefined;
    });
    expect(retried!.task.attempt_count).toBe(2);
    expect(Date.now() - t1).toBeLessThan(5000);
    await Promise.all([fast.close(), slow.close()]);
  });

  it('claims, reclaims and stats stay on the partial indexes on 200k tasks: no sequential scan of the task table (the LIMIT … SKIP LOCKED planner trap)', async () => {
    const name = `plan_${++n}`;
    const { q, admin } = await seeded(name);
    await admin.query(
      `INSERT INTO cases.task (queue, id, state, seq, ready_seq, t, max_attempts, payload, created_at, updated_at)
       SELECT $1, 't' || i, CASE WHEN i % 10 = 0 THEN 3 WHEN i % 10 = 1 THEN 2 ELSE 0 END, nextval('cases.task_seq'), nextval('cases.ready_seq'),
              now() + (CASE WHEN i % 10 = 1 THEN interval '1 hour' ELSE interval '0' END), 5, '{}', 'x', 'x'
         FROM generate_series(1, 200000) i`,
      [name],
    );
    await admin.query('ANALYZE cases.task');
    const sql = statements('cases');
    const seqScans = (plan: unknown): string[] => {
      const out: string[] = [];
      const walk = (node: Record<string, unknown>): void => {
        if (node['Node Type'] === 'Seq Scan' && node['Relation Name'] === 'task') out.push(JSON.stringify(node).slice(0, 200));
        for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? []) walk(child);
      };
      walk((plan as { Plan: Record<string, unknown> }[])[0]!.Plan);
      return out;
    };
    // Custom plans, and the generic ones the server may cache for the named statements (claim, reclaim).
    for (const generic of [false, true]) {
      const explain = (text: string, params: unknown[]) => explainOn(admin, text, params, generic);
      // The claim's statement runs in a function (schema-v11.ts): its plans as executed, rolled back.
      await admin.query(`SET plan_cache_mode = ${generic ? 'force_generic_plan' : 'force_custom_plan'}`);
      for (const only of [null, ['t5', 't7', 'nope']]) {
        await admin.query('BEGIN');
        const plans = await executedPlans(admin, () => admin.query(prepared(sql.claim, [name, null, 'o', 100, 60_000, only, true, 0])));
        await admin.query('ROLLBACK');
        // The function's own statement was explained (its picks lock with SKIP LOCKED).
        expect(plans.some((p) => (p as { 'Query Text'?: string })['Query Text']?.includes('FOR UPDATE SKIP LOCKED'))).toBe(true);
        expect(indexReads(plans).filter((r) => r.startsWith('Seq Scan'))).toEqual([]);
      }
      await admin.query('RESET plan_cache_mode');
      expect(seqScans(await explain(sql.reclaim, [name, null, 'x', 1000, '{}', [], []]))).toEqual([]);
      expect(seqScans(await explain(sql.stats, [name, null]))).toEqual([]);
      expect(seqScans(await explain(sql.nextDue, [name, null, null]))).toEqual([]);
    }
    // And the counters agree with the rows the insert trigger saw (the claims above were rolled back).
    expect(await q.stats()).toMatchObject({ ready: 160_001, leased: 20_000, completed: 20_000 });
    await q.close();
  });

  it('acknowledgements and reclaims reach their rows by primary key on 200k tasks whose statistics are those of one (no read of a whole index)', async () => {
    const name = `pk_${++n}`;
    const { q, admin } = await seeded(name);
    // Analyzed small, then grown without an analyze: a bulk enqueue before autovacuum comes round.
    await admin.query('ANALYZE cases.task');
    await insertHalfLeased(admin, 'cases', name, 200_000);
    const sql = statements('cases');
    // Every index the plans read is the primary key, entered by the ids; no sequential scan of the table.
    expect(await ackWaysIn(admin, sql, name)).toEqual([]);
    // So do the generic plans the server may cache for these named statements (statements.ts prepared).
    expect(await ackWaysIn(admin, sql, name, true)).toEqual([]);
    const explain = (text: string, params: unknown[]) => explainOn(admin, text, params);
    expect(JSON.stringify(await explainOn(admin, sql.reclaim, [name, null, 'x', 1000, '{}', [], []], true))).toMatch(
      /"Index Name":"task_leased","Relation Name":"task"[^}]*"Index Cond":"\(\(queue = \$1\) AND \(t <= /,
    );
    // The reclaim's update likewise; its selection reads task_leased from the oldest expiry only.
    const reclaim = JSON.stringify(await explain(sql.reclaim, [name, null, 'x', 1000, '{}', [], []]));
    expect(reclaim).not.toContain('Seq Scan');
    expect(reclaim).toMatch(/"Index Name":"task_leased","Relation Name":"task"[^}]*"Index Cond":"\(\(queue = '[^']+'::text\) AND \(t <= /);
    // Start marks after the claim (schema-v9.ts) reach their claims' rows by key.
    const marks = JSON.stringify(await explain(sql.startMarks, [name, [1, 2], ['t2', 't4'], ['o', 'o']]));
    expect(marks).not.toContain('Seq Scan');
    expect(marks).toContain('"Index Name":"claim_mark_pkey"');
    // Both lock the claim_mark rows they write in claim order, whatever scan reads them: the row
    // lock taken above a sort by claim (two statements sharing claims never wait in a cycle).
    const lockedInOrder = /"Node Type":"LockRows"[^\]]*"Plans":\[(?:\{[^{}]*"Subplan Name"[^{}]*\},)*\{"Node Type":"Sort"[^}]*"Sort Key":\["claim_mark\.claim"\]/;
    expect(marks).toMatch(lockedInOrder);
    expect(reclaim).toMatch(lockedInOrder);
    await q.close();
  });

  it('acknowledgements reach their rows by primary key on 10k tasks never analyzed (a table small enough that one read of it looked cheaper than 100 lookups)', async () => {
    const name = `pk_small_${++n}`;
    const { q, admin } = await seeded(name);
    await admin.query(`CREATE SCHEMA small`);
    const small = queue(name, { schema: 'small' });
    await small.stats();
    await insertHalfLeased(admin, 'small', name, 10_000);
    expect(await ackWaysIn(admin, statements('small'), name)).toEqual([]);
    expect(await ackWaysIn(admin, statements('small'), name, true)).toEqual([]);
    await Promise.all([q.close(), small.close()]);
    await admin.query('DROP SCHEMA small CASCADE');
  });

  it('claims, reclaims and failures read O(batch) index entries on 100k tasks vacuumed but never analyzed (the claim\'s generic plan read the whole ready set with a bitmap scan)', async () => {
    const name = `vacuumed_${++n}`;
    const q = queue(name, { schema: 'vacuumed' });
    await q.stats();
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    onTestFinished(() => c.end());
    // No autovacuum or autoanalyze of this table while the test runs: the state below stays as made.
    await c.query('ALTER TABLE vacuumed.task SET (autovacuum_enabled = off)');
    for (let i = 0; i < 100_000; i += 10_000) await q.enqueue(Array.from({ length: 10_000 }, (_, j) => ({ id: `t${i + j}`, payload: i + j })));
    // What autovacuum's insert-triggered vacuum leaves after a bulk enqueue, before its analyze:
    // the row count known, no statistics of how the rows spread over queues and states.
    await c.query('VACUUM vacuumed.task');
    expect((await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stats WHERE schemaname = 'vacuumed' AND tablename = 'task'`)).rows[0]!.n).toBe(0);
    const sql = statements('vacuumed');
    const later = new Date(Date.now() + 7_200_000).toISOString();
    type Row = { id: string; fence: number };
    let rows: Row[] = [];
    const claim = async (at: string | null): Promise<unknown[]> =>
      executedPlans(c, async () => {
        rows = (await c.query<Row>(prepared(sql.claim, [name, at, 'o', 100, 60_000, null, true, 0]))).rows;
        expect(rows).toHaveLength(100);
      });
    // Claims as a connection runs the named statement: five custom plans, then the generic one
    // (kept when it costs no more); then three with the generic plan forced. Each reads the ready
    // index in order and stops at the claim's 100 tasks (and finds no due retry).
    const claims: string[][] = [];
    for (let i = 0; i < 10; i++) {
      if (i === 7) await c.query('SET plan_cache_mode = force_generic_plan');
      claims.push(indexReads(await claim(null)));
    }
    expect(claims).toEqual(Array.from({ length: 10 }, () => ['Index Scan task_sched: 0', 'Index Scan task_ready: 100']));
    // Failures of the last claim's 100 tasks (the ack window's statement): half retried at once,
    // half due in a minute. Each reaches its rows by key.
    const ids = rows.map((r) => r.id);
    const failed = await executedPlans(c, () =>
      c.query(
        prepared(sql.failMany, [name, null, ids, rows.map((r) => r.fence), ids.map(() => 'o'), ids.map(() => '{"message":"x"}'), ids.map((_, i) => (i % 2) * 60_000), ids.map(() => false), ids.map(() => 'x')]),
      ),
    );
    expect(indexReads(failed)).toEqual([]);
    expect(await q.stats()).toMatchObject({ ready: 99_050, scheduled: 50, leased: 900 });
    // Two hours later: the due retries come first, by the scheduled index in due order, then the
    // ready ones; and a reclaim of 300 leases takes the 300 that expired first of the 900 expired,
    // by the leased index in expiry order.
    expect(indexReads(await claim(later))).toEqual(['Index Scan task_sched: 50', 'Index Scan task_ready: 50']);
    const reclaimed = await executedPlans(c, async () => {
      const r = await c.query(prepared(sql.reclaim, [name, later, 'x', 300, '{"message":"expired"}', [], []]));
      expect(r.rows).toHaveLength(300);
    });
    expect(indexReads(reclaimed)).toEqual(['Index Scan task_leased: 300', 'Bitmap Index Scan task_leased: 0']);
    await q.close();
    await c.query('DROP SCHEMA vacuumed CASCADE');
  });

  it('a claim rewrites the rows it locked by tuple id, not by a descent of the primary key each, and hands them out in order, with custom and generic plans (migrations 12 and 13; the latest applied again, the same)', async () => {
    const name = `tid_${++n}`;
    const { q, admin } = await seeded(name);
    await q.enqueue(Array.from({ length: 999 }, (_, i) => ({ id: `t${i}`, payload: i })));
    const sql = statements('cases');
    const claimed: string[] = [];
    const plans: string[] = [];
    for (const again of [false, true]) {
      if (again) await admin.query(migrationSql(MIGRATIONS.at(-1)!, 'cases'));
      for (const mode of ['force_custom_plan', 'force_generic_plan']) {
        await admin.query(`SET plan_cache_mode = ${mode}`);
        const executed = await executedPlans(admin, async () => {
          for (const r of (await admin.query<{ id: string }>(prepared(sql.claim, [name, null, 'o', 200, 60_000, null, true, 0]))).rows) claimed.push(r.id);
        });
        plans.push(JSON.stringify(executed));
      }
    }
    await admin.query('RESET plan_cache_mode');
    // Four claims of 200, in the order the tasks became ready.
    expect(claimed).toEqual(['seed', ...Array.from({ length: 799 }, (_, i) => `t${i}`)]);
    for (const p of plans) {
      // The update reaches its rows by a TID scan, even in a table of a few pages (a sequential
      // scan looked cheaper); the rewritten rows meet their picks in a hash join, never in a nested
      // loop (an estimate of one row per id made it one: 200 × 200 comparisons).
      expect(p).toContain('"Node Type":"Tid Scan"');
      expect(p).not.toContain('"Index Name":"task_pkey"');
      expect(p).not.toContain('"Node Type":"Seq Scan"');
      expect(p).not.toContain('"Node Type":"Nested Loop"');
      expect(p).toContain('"Node Type":"Hash Join"');
    }
    expect(await q.stats()).toMatchObject({ ready: 200, leased: 800 });
    await q.close();
  });

  it('a session\'s claims read the ready index from the first task its previous claim took, and tasks left below that (a claim rolled back) are still handed out, once each (migration 12)', async () => {
    const name = `floor_${++n}`;
    const { q, admin } = await seeded(name);
    await q.enqueue(Array.from({ length: 2_000 }, (_, i) => ({ id: `t${i}`, payload: i })));
    const other = new pg.Client({ connectionString: db.url });
    await other.connect();
    onTestFinished(() => other.end());
    const sql = statements('cases');
    const claim = async (c: pg.Client, max: number): Promise<string[]> => (await c.query<{ id: string }>(prepared(sql.claim, [name, null, 'o', max, 60_000, null, true, 0]))).rows.map((r) => r.id);
    // Claims of one session, one after the other, hand the tasks out in order; from the second on,
    // the ready pick starts at the previous claim's first task (an index condition on ready_seq),
    // not at the start of a ready index whose entries before it are all dead.
    expect(await claim(admin, 2)).toEqual(['seed', 't0']);
    const plans = await executedPlans(admin, async () => expect(await claim(admin, 2)).toEqual(['t1', 't2']));
    expect(JSON.stringify(plans)).toMatch(/"Index Name":"task_ready"[^}]*"Index Cond":"\(\(queue = '[^']+'::text\) AND \(ready_seq >= '[1-9]\d*'::bigint\)\)"/);
    // Another session holds t3…t5 in a claim that rolls back; this one takes t6…t8 meanwhile, and
    // its floor passes them by. They are handed out all the same (every 32nd claim of a session
    // reads from the start), each once, and so is every other task.
    await other.query('BEGIN');
    expect(await claim(other, 3)).toEqual(['t3', 't4', 't5']);
    expect(await claim(admin, 3)).toEqual(['t6', 't7', 't8']);
    await other.query('ROLLBACK');
    const rest: string[] = [];
    for (let i = 0; i < 2_000 && rest.length < 1_994; i++) rest.push(...(await claim(admin, 50)));
    expect(rest.filter((id) => ['t3', 't4', 't5'].includes(id)).sort()).toEqual(['t3', 't4', 't5']);
    expect(new Set(rest).size).toBe(rest.length);
    expect(rest).toHaveLength(1_994);
    expect(await q.stats()).toMatchObject({ ready: 0, leased: 2_001 });
    await q.close();
  });

  it('a prune of 100k terminal rows never analyzed reads the oldest by the index in order and deletes them by tuple id (it read and sorted every one, and compared each id with the batch\'s 10,000: past the statement timeout at 1M)', async () => {
    const name = `prune_plan_${++n}`;
    const { q, admin } = await seeded(name);
    await admin.query(`CREATE SCHEMA pruned`);
    const p = queue(name, { schema: 'pruned' });
    await p.stats();
    await admin.query('ALTER TABLE pruned.task SET (autovacuum_enabled = off)');
    await admin.query(
      `INSERT INTO pruned.task (queue, id, state, seq, ready_seq, t, max_attempts, payload, created_at, updated_at)
       SELECT $1, 'd' || i, 3, nextval('pruned.task_seq'), nextval('pruned.ready_seq'), now() - interval '1 hour' + i * interval '1 ms', 5, '{}', 'x', 'x'
         FROM generate_series(1, 100000) i`,
      [name],
    );
    let pruned = 0;
    const plans = await executedPlans(admin, async () => {
      pruned = (await admin.query<{ pruned: number }>(statements('pruned').prune, [name, null, 86_400_000, 50_000, 10_000])).rows[0]!.pruned;
    });
    expect(pruned).toBe(10_000);
    const text = JSON.stringify(plans);
    expect(text).not.toContain('"Node Type":"Seq Scan"');
    expect(text).not.toContain('Bitmap');
    expect(text).toContain('"Node Type":"Tid Scan"');
    // The oldest 10,000 went, and the counters still count every task that ended.
    expect((await admin.query<{ n: number }>(`SELECT min(seq)::int AS n FROM pruned.task WHERE queue = $1`, [name])).rows[0]!.n).toBe(10_001);
    await Promise.all([q.close(), p.close()]);
    await admin.query('DROP SCHEMA pruned CASCADE');
  });

  it('an enqueue that adds some ids and reruns others makes them ready in the order given, as the in-memory reference does', async () => {
    const clock = new FakeClock();
    const name = `order_${++n}`;
    const p = queue(name, { now: clock.now, dbNow: clock.now });
    const m = new MemoryQueue({ name, now: clock.now });
    for (const q of [p, m] as Queue[]) {
      await q.enqueue([{ id: 'a', payload: 1 }]);
      const [h] = await q.claim({ owner: owner('o'), max: 1, lease_ms: 1000 });
      await q.complete('a', h!.lease);
      expect(await q.enqueue([{ id: 'z', payload: 0 }, { id: 'a', payload: 1 }, { id: 'f', payload: 2 }], { rerun_completed: true, by: 'r' })).toEqual({ added: ['z', 'f'], existing: [], rerun: ['a'] });
    }
    const order = async (q: Queue) => (await q.claim({ owner: owner('o'), max: 5, lease_ms: 1000 })).map((x) => x.task.id);
    expect(await order(p)).toEqual(['z', 'a', 'f']);
    expect(await order(m)).toEqual(['z', 'a', 'f']);
    await p.close();
  });

  it('counters equal count(*), and every answer equals the in-memory reference, after random operation sequences', async () => {
    const direct = new pg.Client({ connectionString: db.url });
    await direct.connect();
    onTestFinished(() => direct.end());
    const shared = pool(db.url, 2);
    const ids = ['a', 'b', 'c', 'd', 'e', 'f'];
    const owners = [owner('o1'), owner('o2')];
    const op = fc.oneof(
      fc.record({ t: fc.constant('enqueue' as const), ids: fc.subarray(ids, { minLength: 1 }), group: fc.constantFrom('g1', 'g2', undefined), rerun: fc.boolean() }),
      fc.record({ t: fc.constant('claim' as const), o: fc.nat(1), max: fc.integer({ min: 1, max: 4 }), defer: fc.boolean(), lease: fc.constantFrom(100, 1000) }),
      fc.record({ t: fc.constantFrom('start' as const, 'complete' as const, 'release' as const, 'renew' as const, 'dead' as const), pick: fc.nat(20) }),
      fc.record({ t: fc.constant('fail' as const), pick: fc.nat(20), delay: fc.constantFrom(0, 50, 500) }),
      fc.record({ t: fc.constant('advance' as const), ms: fc.constantFrom(10, 60, 200, 1200) }),
      fc.record({ t: fc.constantFrom('reclaim' as const, 'stats' as const) }),
      fc.record({ t: fc.constant('retry' as const), ids: fc.option(fc.subarray(ids), { nil: undefined }) }),
      fc.record({ t: fc.constant('discard' as const), ids: fc.option(fc.subarray(ids), { nil: undefined }) }),
      fc.record({ t: fc.constant('cancel' as const), group: fc.constantFrom('g1', 'g2'), keep: fc.subarray(ids) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 40 }), async (ops) => {
        const clock = new FakeClock();
        const name = `model_${++n}`;
        // Every claim gives expired leases back first, as the reference does. By default PostgreSQL
        // does so every 500 ms and after a short claim (presence_check_ms): a full claim then hands
        // out the same tasks (the case "between presence checks" above), but the expired leases stay
        // leased a little longer, which stats, cancel and discard in between would see.
        const p = queue(name, { schema: 'model', pool: shared, now: clock.now, dbNow: clock.now, max_attempts: 2, presence_check_ms: 0 });
        const m = new MemoryQueue({ name, max_attempts: 2, now: clock.now, ownerAlive: () => true });
        const leases: { id: string; lease: import('../../src/queue/types.js').Lease }[] = [];
        try {
          for (const o of ops) {
            const both = async <T>(f: (q: Queue) => Promise<T>): Promise<T> => {
              const [x, y] = [await f(p), await f(m)];
              expect(x, JSON.stringify(o)).toEqual(y);
              return y;
            };
            switch (o.t) {
              case 'enqueue':
                await both((q) => q.enqueue(o.ids.map((id) => ({ id, payload: { id }, ...(o.group ? { group: o.group } : {}) })), { rerun_completed: o.rerun, by: 'model' }));
                break;
              case 'claim': {
                const got = await both((q) => q.claim({ owner: owners[o.o]!, max: o.max, lease_ms: o.lease, defer_start: o.defer }));
                leases.push(...got.map((c) => ({ id: c.task.id, lease: c.lease })));
                break;
              }
              case 'advance':
                clock.advance(o.ms);
                break;
              case 'reclaim':
                await both(async (q) => (await q.reclaimExpired()).sort());
                break;
              case 'stats':
                await both((q) => q.stats());
                break;
              case 'retry':
                await both((q) => q.retry({ ...(o.ids ? { ids: o.ids } : {}), by: 'model' }));
                break;
              case 'discard':
                await both((q) => q.discard({ ...(o.ids ? { ids: o.ids } : {}), by: 'model', reason: 'r' }));
                break;
              case 'cancel':
                await both((q) => q.cancel({ group: o.group, keep: new Set(o.keep), by: 'model', reason: 'r' }));
                break;
              case 'fail': {
                const l = leases[o.pick % Math.max(1, leases.length)];
                if (l) await both((q) => q.fail(l.id, l.lease, err('x'), o.delay));
                break;
              }
              default: {
                const l = leases[o.pick % Math.max(1, leases.length)];
                if (!l) break;
                if (o.t === 'start') await both((q) => q.start(l.id, l.lease));
                else if (o.t === 'complete') await both((q) => q.complete(l.id, l.lease));
                else if (o.t === 'release') await both((q) => q.release(l.id, l.lease));
                else if (o.t === 'renew') await both((q) => q.renewLease(l.id, l.lease, 1000));
                else await both((q) => q.deadLetter(l.id, l.lease, err('contract')));
              }
            }
          }
          await Promise.all([p.stats(), m.stats()]).then(([x, y]) => expect(x).toEqual(y));
          expect(await p.states(ids)).toEqual(await m.states(ids));
          expect(await p.listDead()).toEqual(await m.listDead());
          const counted = await direct.query<{ state: number; n: number }>(`SELECT state, count(*)::int AS n FROM model.task WHERE queue = $1 GROUP BY state`, [name]);
          const s = await p.stats();
          const byState = [s.ready, s.scheduled, s.leased, s.completed, s.dead, s.cancelled];
          for (let k = 0; k < 6; k++) expect(byState[k], `state ${k}`).toBe(counted.rows.find((r) => r.state === k)?.n ?? 0);
        } finally {
          await p.close();
        }
      }),
      { numRuns: 60 },
    );
  });
});
