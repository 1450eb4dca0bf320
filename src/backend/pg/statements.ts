import { createHash } from 'node:crypto';
import { quoteSchema } from './migrations.js';

/**
 * The queue's SQL, for one schema. Every decision about time is taken here, on the database clock:
 * `NOW` is `coalesce($2::timestamptz, now())`, where `$2` is NULL except under a test clock
 * (PgQueueOptions.dbNow). Parameters, unless a statement says otherwise: `$1` queue name, `$2`
 * that test time, `$3` the writer's wall time (ISO text) for the record's own times. Every
 * statement references each of its parameters (the driver sends them untyped).
 *
 * Each statement is one state change of src/queue/state.ts, guarded in its WHERE clause by the
 * state, fence and owner the transition requires, so a holder that lost its lease changes nothing.
 * Each statement that moves tasks between states, or counts a failed attempt, keeps the counters
 * itself ({@link counting}; schema-v13.ts): the statements that change neither (start, renew,
 * reorder) write none.
 */
const NOW = 'coalesce($2::timestamptz, now())';
/** Epoch ms of a timestamptz. */
const ms = (x: string): string => `(extract(epoch from ${x}) * 1000)::float8`;

/**
 * `k.state = 2` (leased) for statements that reach their rows by id: written as a cast so that the
 * planner cannot prove the partial index `task_leased` (`WHERE state = 2`) from it, and reaches
 * each row by its primary key. Written plainly, the planner took `task_leased` as the smallest way
 * in (its statistics see few leased rows) and read the whole index with a bitmap scan: one entry
 * per lease ever taken until vacuum removes it (bitmap scans never mark an entry dead), so every
 * completion, failure and reclaim read more the longer the queue ran (32,000 entries for 76 rows
 * at 100k tasks; docs/PERFORMANCE.md).
 */
const LEASED = 'k.state::int = 2';

/**
 * A start mark's statement commits without waiting for its WAL to reach the disk
 * (`synchronous_commit` off for its own transaction only: `set_config(…, true)` in a CTE that the
 * statement reads, `ASYNC_DONE`). The mark is visible to every session at once, and the next
 * synchronous commit of any session (a claim, a completion, a reclaim that reads the mark) or the
 * WAL writer within `3 × wal_writer_delay` (600 ms by default) makes it durable. So a worker that
 * dies, a poison pill among them, is charged as before; only a crash of the database server itself
 * within that window can forget a mark, which forgives one attempt of a task whose handler may have
 * run (at-least-once, as any lost lease). Claims, completions, failures and releases stay
 * synchronous. A mark waited for its own flush before its handler could run: on the critical path
 * of every buffered task (docs/PERFORMANCE.md, 2026-12-01 07:00–08:30).
 */
const ASYNC = `sc AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true) AS v)`;
/** The condition that makes the statement evaluate {@link ASYNC} (once, before its rows). */
const ASYNC_DONE = '(SELECT v FROM sc) IS NOT NULL';

/**
 * In the reclaim: the task `k` was marked started, by its claim (its row's `started`, read by
 * `sel`, which locked the row) or after it (its id among `mk`, the claim's marks): the ids of `st`.
 */
const STARTED = '(k.id IN (SELECT id FROM st))';

/**
 * The array parameter `$n` of element type `type`, as an uncorrelated subquery: the planner then
 * cannot count its elements (it assumes 10) when it plans an acknowledgement's join to the task
 * table. Counting them (100 or more), it costed a hundred key lookups above one read of a table of
 * up to some 20,000 rows, and read the whole primary key by its second column (`queue`) for every
 * acknowledgement (10,100 entries and rows for 100 tasks at 10k; docs/PERFORMANCE.md). A lookup
 * per id is the cheapest plan at any size but the smallest tables.
 */
const arr = (n: number, type: string): string => `(SELECT $${n}::${type}[])`;

/** The columns a task record is rebuilt from (rowToRecord). */
const RECORD = 'k.id, k.payload, k.attempt_count, k.max_attempts, k.created_at, k.updated_at, k.errors, k.retries, k.grp, k.cancelled';

/** The SQL text of each queue operation for one schema (see {@link statements}). */
export interface Statements {
  ensureQueue: string;
  noteOwner: string;
  lockQueue: string;
  openCount: string;
  knownCount: string;
  insert: string;
  rerun: string;
  reorder: string;
  claim: string;
  start: string;
  /** Start marks appended to their claims' `claim_mark` rows (schema-v9.ts). */
  startMarks: string;
  renew: string;
  complete: string;
  release: string;
  /** Failures of one ack window, one statement (failBatch). */
  failMany: string;
  reclaim: string;
  leaseOwners: string;
  goneOwners: string;
  workerTable: string;
  noPresence: string;
  retry: string;
  cancel: string;
  discard: string;
  nextDue: string;
  pause: string;
  stats: string;
  states: string;
  dead: string;
  /** One task's record and state (getTask). */
  task: string;
  queueNames: string;
  taskState: string;
  prune: string;
  /** `claim_mark` rows of this queue's claims that have no leased task left. */
  pruneMarks: string;
  /** Worker processes whose presence session holds its lock, and live lease owners by queue (the ops server). */
  presence: string;
}

const cache = new Map<string, Statements>();

const names = new Map<string, string>();

/**
 * `text` with `values` as a named statement of the driver: parsed once per connection (the driver
 * sends its text only the first time a connection runs it), and its plan cached by the server,
 * which after five executions keeps one generic plan when it costs no more than the custom ones.
 * For the statements a drained task runs several times over: the claim's parse and plan took about
 * as much of the server's CPU as its execution (docs/PERFORMANCE.md). The name is the text's hash,
 * so the same name never stands for two texts (two schemas on one pool). Needs a direct connection
 * or a session-mode pooler, as presence does (docs/POSTGRES.md).
 */
export function prepared<V extends unknown[]>(text: string, values: V): { name: string; text: string; values: V } {
  let name = names.get(text);
  if (name === undefined) names.set(text, (name = `metaspn_${createHash('sha1').update(text).digest('hex').slice(0, 24)}`));
  return { name, text, values };
}

/** The statements for `schema` (built once). */
export function statements(schema: string): Statements {
  let s = cache.get(schema);
  if (!s) cache.set(schema, (s = build(quoteSchema(schema))));
  return s;
}

/**
 * The counters' change for the rows of `src` (a CTE of the statement's changed rows, or a join of
 * it), as a data-modifying CTE named `cnt` of the statement (it runs whether read or not): each
 * row leaves state `from` and enters state `to`, and adds `attempts` to the failed attempts (kind
 * 10), `dead` to the arrivals in the dead letters (11) and `retried` to the dead letters retried
 * (12); expressions over `src`'s columns. Five (kind, change) pairs a row, zipped by two
 * `unnest`s in the select list (no join: a lateral `VALUES` is a nested loop, which the claim
 * function disables, and its disable cost put the statement above the JIT's thresholds: 0.8 s a
 * claim compiling it). `$1` is the queue, as in every statement that writes
 * tasks; the slot is the session's (pg_backend_pid() % 16), as the insert and delete triggers'.
 * Grouped by kind, so that no counter row is upserted twice in one statement; nothing is written
 * for a statement that changed no row. Migration 13 dropped the update trigger that counted these
 * changes from the statement's transition tables (schema-v13.ts).
 */
function counting(S: string, src: string, c: { from: string; to: string; attempts?: string; dead?: string; retried?: string }): string {
  return `cnt AS (
        INSERT INTO ${S}.queue_counts AS c (queue, slot, kind, n)
        SELECT $1, (pg_backend_pid() % 16)::smallint, v.kind, sum(v.d) FROM (
          SELECT unnest(ARRAY[${c.from}, ${c.to}, 10, 11, 12]) AS kind, unnest(ARRAY[-1, 1, ${c.attempts ?? 0}, ${c.dead ?? 0}, ${c.retried ?? 0}]) AS d FROM ${src}) v
         GROUP BY v.kind HAVING sum(v.d) <> 0
        ON CONFLICT (queue, slot, kind) DO UPDATE SET n = c.n + excluded.n)`;
}

/** The advisory lock of the worker row `w`'s presence key (presence.ts) is not held by any session. */
const NO_LOCK = `NOT EXISTS (
             SELECT 1 FROM pg_locks l
              WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND l.classid = ((w.lock_key >> 32) & 4294967295)::oid
                AND l.objid = (w.lock_key & 4294967295)::oid)`;

function build(S: string): Statements {
  const T = `${S}.task`;
  /** (id, fence, owner) rows from arrays at `$a`, `$a+1`, `$a+2`. */
  const pairs = (a: number): string => `unnest(${arr(a, 'text')}, ${arr(a + 1, 'bigint')}, ${arr(a + 2, 'text')}) AS x(id, fence, owner)`;
  /** The lease of each (id, fence, owner) of x is held (rows found by key: schema-v8.ts). */
  const held = `k.queue = $1 AND k.id = x.id AND ${LEASED} AND k.fence = x.fence AND k.owner = x.owner`;
  /**
   * The `claim_mark` rows (schema-v9.ts) of the claims `claims` (an array expression), locked one
   * after the other in claim order whatever plan reads them (the row lock is taken above the sort):
   * the statements that write several of these rows (a start's marks, a reclaim's revocations) take
   * them in the same order, so two of them wait for each other at most, never in a cycle (a
   * deadlock, which PostgreSQL would break by failing one of them). `and`: more conditions.
   */
  const lockMarks = (claims: string, and: string): string => `SELECT claim FROM ${S}.claim_mark WHERE claim = ANY (${claims}) ${and} ORDER BY claim FOR UPDATE`;
  /** startMarks: the ids of \$3 (claims \$2, owners \$4) for claim_mark row `m`, less those it revoked, in the order given. */
  const marked = `ARRAY(SELECT u.id FROM unnest($2::bigint[], $3::text[], $4::text[]) WITH ORDINALITY AS u(c, id, o, n) WHERE u.c = m.claim AND u.o = m.owner AND u.id <> ALL (m.revoked) ORDER BY u.n)`;
  return {
    ensureQueue: `INSERT INTO ${S}.queue (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`,
    noteOwner: `INSERT INTO ${S}.worker (owner, pid, host) VALUES ($1, $2, $3) ON CONFLICT (owner) DO NOTHING`,
    lockQueue: `SELECT 1 FROM ${S}.queue WHERE name = $1 FOR UPDATE`,
    openCount: `SELECT coalesce(sum(n), 0)::float8 AS open FROM ${S}.queue_counts WHERE queue = $1 AND kind IN (0, 1, 2)`,
    knownCount: `SELECT count(*)::int AS n FROM ${T} WHERE queue = $1 AND id = ANY($2::text[])`,
    // Ids in the order given: seq and ready_seq follow it (nextval runs over the ordered rows).
    insert: `
      INSERT INTO ${T} AS k (queue, id, state, seq, ready_seq, t, max_attempts, grp, payload, created_at, updated_at)
      SELECT $1, x.id, 0, nextval('${S}.task_seq'), nextval('${S}.ready_seq'), ${NOW}, x.max, x.grp, x.payload, $3, $3
        FROM (SELECT * FROM unnest($4::text[], $5::int[], $6::text[], $7::text[]) WITH ORDINALITY AS u(id, max, grp, payload, ord) ORDER BY ord) x
      ON CONFLICT (queue, id) DO NOTHING
      RETURNING k.id`,
    // The rows are locked by sel, which reads their state (3 or 5) for the counters.
    rerun: `
      WITH sel AS MATERIALIZED (
        SELECT id, state, nextval('${S}.ready_seq') AS rs FROM (
          SELECT id, state FROM ${T} WHERE queue = $1 AND id = ANY($5::text[]) AND state IN (3, 5)
           ORDER BY array_position($5::text[], id) FOR UPDATE) o),
      upd AS (
        UPDATE ${T} AS k SET state = 0, attempt_count = 0, t = ${NOW}, owner = NULL, started = false, ready_seq = sel.rs,
               updated_at = $3, retries = k.retries || jsonb_build_array(jsonb_build_object('at', $3::text, 'by', $4::text, 'attempt_count', k.attempt_count))
          FROM sel WHERE k.queue = $1 AND k.id = sel.id
        RETURNING k.id, sel.state AS was),
      ${counting(S, 'upd', { from: 'upd.was', to: '0' })}
      SELECT id FROM upd`,
    // Tasks added and rerun by one enqueue become ready in the order given ($2: their ids, in order).
    reorder: `
      WITH o AS MATERIALIZED (
        SELECT x.id, nextval('${S}.ready_seq') AS rs FROM (
          SELECT * FROM unnest($2::text[]) WITH ORDINALITY AS u(id, ord) ORDER BY ord) x)
      UPDATE ${T} AS k SET ready_seq = o.rs FROM o WHERE k.queue = $1 AND k.id = o.id AND k.state = 0`,
    // Due retries first (by due time, then enqueue order), then ready tasks in the order they became
    // ready; started at once: all of them when $7, else the first $8 in the order returned
    // (start_first). The function (schema-v11.ts) is planned without bitmap scans, so that no plan
    // of it reads a whole ready set (the generic plan after a VACUUM without ANALYZE did); it
    // rewrites the rows it locked by their tuple ids (schema-v12.ts).
    claim: `SELECT * FROM ${S}.claim_tasks($1, $2, $3, $4, $5, $6, $7, $8)`,
    // Lease operations, batched (one statement per kind and ack window; an id at most once per
    // batch): $3 ids, $4 fences, $5 owners (start: $2, $3, $4; it reads no clock), renew $6 lease ms.
    // The ids returned are those whose lease was held; the others were fenced off.
    start: `WITH ${ASYNC} UPDATE ${T} AS k SET started = true FROM ${pairs(2)} WHERE ${held} AND ${ASYNC_DONE} RETURNING k.id`,
    // $2 claims, $3 ids, $4 owners: each id is appended to its claim's marks unless a reclaim took
    // it away (revoked); returns the ids marked. Under READ COMMITTED a start that waited for a
    // reclaim of the same claim re-reads the row it updates (the newest revoked).
    // The rows are reached by key (claim = ANY), whatever the statistics of a table that churns.
    // The rows are locked in claim order (lockMarks), as the reclaim locks them: a start and a
    // reclaim (or two reclaims) that share claims wait for each other, never in a cycle.
    startMarks: `
      WITH ${ASYNC}
      UPDATE ${S}.claim_mark AS m SET marks = m.marks || ${marked}
        FROM (${lockMarks('$2::bigint[]', 'AND queue = $1')}) l
       WHERE m.claim = l.claim AND m.claim = ANY ($2::bigint[]) AND ${ASYNC_DONE}
      RETURNING ${marked} AS ids`,
    renew: `
      UPDATE ${T} AS k SET t = greatest(k.t, ${NOW} + x.ms * interval '1 ms')
        FROM unnest(${arr(3, 'text')}, ${arr(4, 'bigint')}, ${arr(5, 'text')}, ${arr(6, 'int')}) AS x(id, fence, owner, ms)
       WHERE ${held} RETURNING k.id`,
    complete: `
      WITH upd AS (UPDATE ${T} AS k SET state = 3, owner = NULL, started = false, t = ${NOW} FROM ${pairs(3)} WHERE ${held} RETURNING k.id),
      ${counting(S, 'upd', { from: '2', to: '3' })}
      SELECT id FROM upd`,
    // Released tasks become ready in the order of the calls (nextval over the ordered rows).
    release: `
      WITH x AS MATERIALIZED (
        SELECT u.*, nextval('${S}.ready_seq') AS rs FROM (
          SELECT * FROM unnest(${arr(3, 'text')}, ${arr(4, 'bigint')}, ${arr(5, 'text')}) WITH ORDINALITY AS u(id, fence, owner, ord) ORDER BY ord) u),
      upd AS (
        UPDATE ${T} AS k SET state = 0, owner = NULL, started = false, t = ${NOW}, ready_seq = x.rs
          FROM x WHERE ${held} RETURNING k.id),
      ${counting(S, 'upd', { from: '2', to: '0' })}
      SELECT id FROM upd`,
    // The failures of one ack window (an id at most once): $3 ids, $4 fences, $5 owners, $6 errors,
    // $7 delays (ms), $8 dead now (contract errors), $9 the writers' wall times. Each failed attempt
    // is counted and its error kept; the task is dead when its attempts are exhausted or its error
    // is a contract error, else due again after its delay (ready at once when the delay is <= 0:
    // those take ready_seq in the order of the calls; the others take none).
    // Returns the ids whose lease was held, with the state each failure left.
    failMany: `
      WITH x AS MATERIALIZED (
        SELECT u.*, CASE WHEN u.delay <= 0 AND NOT u.dead THEN nextval('${S}.ready_seq') END AS rs FROM (
          SELECT * FROM unnest(${arr(3, 'text')}, ${arr(4, 'bigint')}, ${arr(5, 'text')}, ${arr(6, 'jsonb')}, ${arr(7, 'float8')}, ${arr(8, 'boolean')}, ${arr(9, 'text')})
                   WITH ORDINALITY AS u(id, fence, owner, err, delay, dead, wall, ord) ORDER BY ord) u),
      upd AS (UPDATE ${T} AS k SET
        attempt_count = k.attempt_count + 1,
        errors = k.errors || jsonb_build_array(x.err || jsonb_build_object('attempt', k.attempt_count + 1)),
        state = CASE WHEN x.dead OR k.attempt_count + 1 >= k.max_attempts THEN 4 WHEN x.delay > 0 THEN 1 ELSE 0 END,
        t = CASE WHEN x.dead OR k.attempt_count + 1 >= k.max_attempts OR x.delay <= 0 THEN ${NOW} ELSE ${NOW} + x.delay * interval '1 ms' END,
        ready_seq = CASE WHEN NOT (x.dead OR k.attempt_count + 1 >= k.max_attempts) AND x.delay <= 0 THEN x.rs ELSE k.ready_seq END,
        owner = NULL, started = false, updated_at = x.wall
        FROM x WHERE ${held}
      RETURNING k.id, k.state),
      ${counting(S, 'upd', { from: '2', to: 'upd.state', attempts: '1', dead: '(upd.state = 4)::int' })}
      SELECT id, state FROM upd`,
    // Leases whose expiry passed on the database clock, or whose owner is among $6 (gone, with
    // the error $7 each): a started one counts the attempt (dead when exhausted), one whose handler
    // never started goes back to ready with nothing charged (started: the row's mark, or its id among
    // its claim's marks). Guarded again at update time.
    reclaim: `
      WITH g AS (SELECT * FROM unnest($6::text[], $7::jsonb[]) AS g(owner, err)),
      -- Expired leases by the index on (queue, t), read from the oldest expiry up to now; the leases
      -- of gone owners (rare) only when there are any ($6 not empty: a one-time filter).
      sel AS MATERIALIZED (
        SELECT id, seq, claim, started FROM (
          SELECT * FROM (SELECT id, seq, t, claim, started FROM ${T} WHERE queue = $1 AND state = 2 AND t <= ${NOW} ORDER BY t LIMIT $4 FOR UPDATE SKIP LOCKED) e
          UNION
          SELECT * FROM (SELECT id, seq, t, claim, started FROM ${T} WHERE cardinality($6::text[]) > 0 AND queue = $1 AND state = 2 AND owner = ANY($6::text[]) LIMIT $4 FOR UPDATE SKIP LOCKED) o) u
         ORDER BY t LIMIT $4),
      -- Their claims' marks (schema-v9.ts): the ids are revoked in the row, whose newest marks
      -- (after any start in flight committed) say which of them started.
      rv AS MATERIALIZED (
        UPDATE ${S}.claim_mark AS m SET revoked = m.revoked || ARRAY(SELECT id FROM sel WHERE sel.claim = m.claim)
          FROM (${lockMarks('ARRAY(SELECT claim FROM sel WHERE claim IS NOT NULL)', '')}) l
         WHERE m.claim = l.claim AND m.claim = ANY (ARRAY(SELECT claim FROM sel WHERE claim IS NOT NULL))
        RETURNING m.claim, m.marks),
      mk AS MATERIALIZED (SELECT sel.id FROM sel JOIN rv ON rv.claim = sel.claim WHERE sel.id = ANY (rv.marks)),
      st AS MATERIALIZED (SELECT id FROM sel WHERE started UNION SELECT id FROM mk),
      -- Those going back to ready do so in enqueue order, as the other backends do.
      ord AS MATERIALIZED (SELECT id, nextval('${S}.ready_seq') AS rs FROM (SELECT id FROM sel ORDER BY seq) o),
      upd AS (
        UPDATE ${T} AS k SET
          attempt_count = k.attempt_count + (${STARTED})::int,
          errors = CASE WHEN ${STARTED} THEN k.errors || jsonb_build_array(coalesce((SELECT err FROM g WHERE g.owner = k.owner), $5::jsonb) || jsonb_build_object('attempt', k.attempt_count + 1)) ELSE k.errors END,
          state = CASE WHEN ${STARTED} AND k.attempt_count + 1 >= k.max_attempts THEN 4 ELSE 0 END,
          ready_seq = CASE WHEN ${STARTED} AND k.attempt_count + 1 >= k.max_attempts THEN k.ready_seq ELSE (SELECT rs FROM ord WHERE ord.id = k.id) END,
          updated_at = CASE WHEN ${STARTED} THEN $3 ELSE k.updated_at END,
          owner = NULL, started = false, t = ${NOW}
         WHERE k.queue = $1 AND k.id = ANY (ARRAY(SELECT id FROM sel)) AND ${LEASED} AND (k.t <= ${NOW} OR k.owner = ANY($6::text[]))
        RETURNING k.id, k.seq, k.state, ${STARTED}::int AS charged),
      ${counting(S, 'upd', { from: '2', to: 'upd.state', attempts: 'upd.charged', dead: '(upd.state = 4)::int' })}
      SELECT id FROM upd ORDER BY seq`,
    leaseOwners: `
      SELECT DISTINCT k.owner, w.pid, w.host FROM ${T} k LEFT JOIN ${S}.worker w ON w.owner = k.owner
       WHERE k.queue = $1 AND k.state = 2`,
    // Owners of this queue's leases whose presence lock (presence.ts) is no longer held: their
    // session ended. Owners without presence (lock_key NULL) are left to lease expiry.
    // The workers first (a small table): the task table is read only when some presence ended, and
    // then only for those owners. Read first, the leased tasks came by a bitmap scan of the whole
    // `task_leased` index, which never marks an entry dead: an entry per lease taken since the last
    // vacuum, at every check (49,000 a check in a 100k fail-once drain; docs/PERFORMANCE.md).
    //
    // A gone owner none of whose leases is left (in any queue) has its key cleared in the same
    // statement: an exited worker keeps its row, and its key made every later check find it gone
    // and read the task table. The lock is looked at again at update time (presence takes the lock
    // before it writes the key, so an owner that holds it again keeps its key; one that takes it
    // after writes its key after this). A cleared key only means judged by lease expiry alone.
    goneOwners: `
      WITH gone AS MATERIALIZED (
        SELECT w.owner, w.pid, w.host FROM ${S}.worker w
         WHERE w.lock_key IS NOT NULL
           AND ${NO_LOCK}),
      held AS MATERIALIZED (
        SELECT DISTINCT k.queue, k.owner FROM ${T} k
         WHERE EXISTS (SELECT 1 FROM gone) AND k.state = 2 AND k.owner = ANY (ARRAY(SELECT owner FROM gone))),
      cleared AS (
        UPDATE ${S}.worker w SET lock_key = NULL
         WHERE EXISTS (SELECT 1 FROM gone) AND w.owner = ANY (ARRAY(SELECT owner FROM gone)) AND w.lock_key IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM held h WHERE h.owner = w.owner)
           AND ${NO_LOCK}
        RETURNING 1)
      SELECT g.owner, g.pid, g.host FROM gone g
       WHERE g.owner IN (SELECT h.owner FROM held h WHERE h.queue = $1)`,
    workerTable: `${S}.worker`,
    presence: `
      WITH live AS MATERIALIZED (
        SELECT w.owner FROM ${S}.worker w
         WHERE w.lock_key IS NOT NULL
           AND EXISTS (
             SELECT 1 FROM pg_locks l
              WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND l.classid = ((w.lock_key >> 32) & 4294967295)::oid
                AND l.objid = (w.lock_key & 4294967295)::oid))
      SELECT (SELECT count(*) FROM live)::int AS present,
             coalesce((SELECT jsonb_object_agg(queue, n) FROM (
                SELECT k.queue, count(DISTINCT k.owner)::int AS n FROM ${T} k JOIN live ON live.owner = k.owner
                 WHERE k.state = 2 GROUP BY k.queue) x), '{}'::jsonb) AS by_queue`,
    noPresence: `UPDATE ${S}.worker SET lock_key = NULL WHERE owner = $1 AND lock_key IS NOT NULL`,
    retry: `
      WITH sel AS MATERIALIZED (
        SELECT id, nextval('${S}.ready_seq') AS rs FROM (
          SELECT id FROM ${T} WHERE queue = $1 AND state = 4 AND ($5::text[] IS NULL OR id = ANY($5::text[]))
           ORDER BY coalesce(array_position($5::text[], id), 0), seq FOR UPDATE) o),
      upd AS (
        UPDATE ${T} AS k SET state = 0, attempt_count = 0, t = ${NOW}, ready_seq = sel.rs, updated_at = $3,
               retries = k.retries || jsonb_build_array(jsonb_build_object('at', $3::text, 'by', $4::text, 'attempt_count', k.attempt_count))
          FROM sel WHERE k.queue = $1 AND k.id = sel.id
        RETURNING k.id, sel.rs),
      ${counting(S, 'upd', { from: '4', to: '0', retried: '1' })}
      SELECT id FROM upd ORDER BY rs`,
    // The rows are locked by sel, which reads their state (0 or 1) for the counters; a row a claim
    // leased meanwhile is passed over (its lock waited for, its state read again).
    cancel: `
      WITH sel AS MATERIALIZED (
        SELECT id, state FROM ${T} WHERE queue = $1 AND grp = $6 AND state IN (0, 1) AND NOT (id = ANY($7::text[])) FOR UPDATE),
      upd AS (
        UPDATE ${T} AS k SET state = 5, owner = NULL, started = false, t = ${NOW}, updated_at = $3,
               cancelled = jsonb_build_object('at', $3::text, 'by', $4::text, 'reason', $5::text)
          FROM sel WHERE k.queue = $1 AND k.id = sel.id
        RETURNING k.id, k.seq, sel.state AS was),
      ${counting(S, 'upd', { from: 'upd.was', to: '5' })}
      SELECT id FROM upd ORDER BY seq`,
    // Dead letters given up on: $4 by, $5 reason, $6 ids (null: all), in the order given, else enqueue order.
    discard: `
      WITH sel AS MATERIALIZED (
        SELECT id FROM ${T} WHERE queue = $1 AND state = 4 AND ($6::text[] IS NULL OR id = ANY($6::text[])) FOR UPDATE),
      upd AS (
        UPDATE ${T} AS k SET state = 5, owner = NULL, started = false, t = ${NOW}, updated_at = $3,
               cancelled = jsonb_build_object('at', $3::text, 'by', $4::text, 'reason', $5::text, 'discarded', true)
          FROM sel WHERE k.queue = $1 AND k.id = sel.id
        RETURNING k.id, k.seq),
      ${counting(S, 'upd', { from: '4', to: '5' })}
      SELECT id FROM upd ORDER BY coalesce(array_position($6::text[], id), 0), seq`,
    nextDue: `
      SELECT ${ms('t')} AS due, ${ms(NOW)} AS now FROM (
        SELECT min(t) AS t FROM ${T} WHERE queue = $1 AND state = 1 AND ($3::text[] IS NULL OR id = ANY($3::text[]))) m`,
    pause: `
      INSERT INTO ${S}.queue AS q (name, paused, paused_by, paused_at) VALUES ($1, $2, $3, $4)
      ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, paused_by = excluded.paused_by, paused_at = excluded.paused_at`,
    stats: `
      SELECT (SELECT coalesce(jsonb_object_agg(kind, s), '{}'::jsonb) FROM (
                SELECT kind, sum(n) AS s FROM ${S}.queue_counts WHERE queue = $1 GROUP BY kind) c) AS counts,
             coalesce((SELECT paused FROM ${S}.queue WHERE name = $1), false) AS paused,
             ${ms(`(SELECT t FROM ${T} WHERE queue = $1 AND state = 1 ORDER BY t, seq LIMIT 1)`)} AS next_due,
             ${ms(`(SELECT t FROM ${T} WHERE queue = $1 AND state = 0 ORDER BY ready_seq LIMIT 1)`)} AS oldest_ready,
             ${ms(NOW)} AS now`,
    states: `SELECT id, state FROM ${T} WHERE queue = $1 AND id = ANY($2::text[])`,
    dead: `SELECT ${RECORD} FROM ${T} k WHERE k.queue = $1 AND k.state = 4 AND ($2::text IS NULL OR k.id = $2)`,
    queueNames: `SELECT name FROM ${S}.queue ORDER BY name`,
    taskState: `SELECT state, fence::float8 AS fence, owner FROM ${T} WHERE queue = $1 AND id = $2`,
    task: `SELECT ${RECORD}, k.state FROM ${T} k WHERE k.queue = $1 AND k.id = $2`,
    // Completed and cancelled tasks past retention: older than $3 ms on the database clock, or
    // beyond the newest $4 of them (by the time they ended, then enqueue order); at most $5 rows. The counters keep counting them (as the file
    // backend's stats do after a compaction): the delete trigger takes them off, the insert here
    // puts them back, in the same statement.
    // In a function planned without bitmap or sequential scans (schema-v12.ts): the same
    // statement as it was, parameters unchanged.
    prune: `SELECT * FROM ${S}.prune_tasks($1, $2, $3, $4, $5)`,
    // A claim_mark row is visible only with its claim's tasks (one statement): when none of them
    // is leased under it, no start or reclaim of the claim will read the row again.
    pruneMarks: `
      DELETE FROM ${S}.claim_mark AS m
       WHERE m.queue = $1 AND m.claim <> ALL (ARRAY(SELECT DISTINCT claim FROM ${T} WHERE queue = $1 AND state = 2 AND claim IS NOT NULL))`,
  };
}
