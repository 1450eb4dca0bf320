/**
 * Migration 12: the claim rewrites the rows it locked by their tuple ids. `S` stands for the schema
 * (quoted).
 *
 * The claim (migration 11's function) picks its tasks with `FOR UPDATE SKIP LOCKED`, then rewrites
 * them with an `UPDATE` that found each again by its id: a descent of the primary key per task (its
 * entries and the heap page it points to, about 4.5 of the 14.5 buffers a claimed task touched).
 * Now the picks keep each locked row's tuple id (`ctid`) and the update reaches the rows by a TID
 * scan. A row this transaction has locked cannot be updated or deleted by another, so its tuple id
 * stays that of its newest version until the update (the lock itself is taken on the newest version
 * and the pick rechecked on it, under READ COMMITTED, so the id selected is that version's); the
 * update also requires the queue and a ready or due state, and hands out only the rows it rewrote,
 * as before. Server CPU per task of a drain, claims of 500 at 100k tasks: docs/PERFORMANCE.md,
 * 2026-12-01 05:00.
 *
 * The planner estimates a TID scan from an array of unknown length (the picks) at ten tuple ids,
 * ten random page reads: more than reading a table of a few pages whole, which it did (a `Seq
 * Scan` of the task table, in a plan PL/pgSQL may then keep for the session while the table grows).
 * `SET enable_seqscan = off` rules that out: every table this statement reads has an index or a
 * TID path. And with one row estimated per id, the planner joined the 500 rewritten rows of a
 * claim to the 500 picks (for their order) by a nested loop, 250,000 comparisons; `SET
 * enable_nestloop = off` makes that join a hash join whatever the estimates (no other part of the
 * statement joins).
 * Parameters, columns and everything else as migration 11 (schema-v11.ts).
 *
 * A session's claims of a queue start the ready pick at a floor: the `ready_seq` of the first ready
 * task the session's previous claim of the queue took (kept in the session's setting
 * `metaspn.ready_floor`, which the claim writes in its own transaction). Without it, each claim read
 * the ready index from the start, over the entries of every task claimed since the table was last
 * vacuumed (dead, marked dead or not, in pages only a vacuum removes): the claim's read grew with the
 * tasks drained, to 3,800 index pages a claim of 100 at 1M tasks with autovacuum off, and a drain
 * of 1M at a fraction of 100k's rate (docs/PERFORMANCE.md, 2026-12-01 05:00). Every task becomes
 * ready with a `ready_seq` from the sequence, above any floor already set, save one whose claim
 * rolled back (it keeps its number) or whose enqueue commits after a claim took later numbers. So a
 * claim that finds fewer ready tasks than it looks for sets the floor back to the start, and every
 * 32nd claim of a session, and every claim of given ids, reads from the start: such a task waits
 * for at most 31 claims of the session. A session's claims one after the other hand out the same
 * tasks in the same order as before.
 *
 * The prune (statements.ts `prune`) moves into `prune_tasks`, planned likewise without bitmap or
 * sequential scans, and deletes its rows by tuple id. In a table never analyzed (autovacuum off)
 * its terminal rows were estimated at 16: the plan read all of them with a bitmap scan and sorted
 * them, twice, and the delete compared each one's id with the 10,000 ids of the batch. At 1M tasks
 * it ran past the 30 s statement timeout every minute of a drain, pruning nothing, and held back the
 * xmin horizon meanwhile. `CREATE OR REPLACE`: idempotent.
 */
export const SCHEMA_V12 = `
CREATE OR REPLACE FUNCTION S.claim_tasks(text, timestamptz, text, bigint, float8, text[], boolean, bigint)
RETURNS TABLE (id text, payload text, attempt_count integer, max_attempts integer, created_at text, updated_at text,
               errors jsonb, retries jsonb, grp text, cancelled jsonb, fence float8, expires float8, now float8,
               started boolean, claim float8)
LANGUAGE plpgsql SET enable_bitmapscan = off SET enable_seqscan = off SET enable_nestloop = off AS $f$
#variable_conflict use_column
DECLARE
  -- The session's floor: '<ready_seq> <claims> <tag>', tag naming the queue and this schema's
  -- task table by its oid (a table made again is another).
  tag text := ('S.task'::regclass)::oid::text || ' ' || $1;
  hint text := current_setting('metaspn.ready_floor', true);
  -- This claim's number in the session's run of claims of the queue (0: the first).
  n bigint := CASE WHEN substr(hint, length(split_part(hint, ' ', 1)) + length(split_part(hint, ' ', 2)) + 3) = tag
                   THEN split_part(hint, ' ', 2)::bigint + 1 ELSE 0 END;
  -- Where the ready pick starts: at the floor; from the start at every 32nd claim and for given ids.
  lo bigint := CASE WHEN $6 IS NULL AND n % 32 <> 0 THEN split_part(hint, ' ', 1)::bigint ELSE 0 END;
BEGIN
  -- MATERIALIZED CTEs and an uncorrelated ARRAY keep the planner on the partial indexes.
  RETURN QUERY
    WITH q AS (SELECT coalesce((SELECT paused FROM S.queue WHERE name = $1), false) AS paused),
    due AS MATERIALIZED (
      SELECT id, t, seq, ctid AS tid FROM S.task
       WHERE queue = $1 AND state = 1 AND t <= coalesce($2, now()) AND NOT (SELECT paused FROM q) AND ($6 IS NULL OR id = ANY($6))
       ORDER BY t, seq LIMIT $4 FOR UPDATE SKIP LOCKED),
    rdy AS MATERIALIZED (
      SELECT id, ready_seq, ctid AS tid FROM S.task
       WHERE queue = $1 AND state = 0 AND ready_seq >= lo AND NOT (SELECT paused FROM q) AND ($6 IS NULL OR id = ANY($6))
       ORDER BY ready_seq LIMIT greatest(0, $4 - (SELECT count(*) FROM due)) FOR UPDATE SKIP LOCKED),
    -- The session's next floor: the first ready task this claim took; the start when it took fewer
    -- than it looked for (tasks below may have been locked by a claim that rolled back); as it was
    -- when it looked for none. A claim of given ids leaves it as it was.
    fl AS MATERIALIZED (
      SELECT set_config('metaspn.ready_floor', CASE WHEN $6 IS NOT NULL THEN coalesce(hint, '') ELSE (
               CASE WHEN (SELECT count(*) FROM rdy) < greatest(0, $4 - (SELECT count(*) FROM due)) THEN 0
                    ELSE coalesce((SELECT min(ready_seq) FROM rdy), lo) END)::text || ' ' || n::text || ' ' || tag END, false) AS v),
    picked AS MATERIALIZED (
      SELECT id, tid, r, o, row_number() OVER (ORDER BY r, o) AS g FROM (
        SELECT id, tid, 0 AS r, row_number() OVER (ORDER BY t, seq) AS o FROM due
        UNION ALL SELECT id, tid, 1, row_number() OVER (ORDER BY ready_seq) FROM rdy) u),
    -- The claim's number, and its claim_mark row when it hands out tasks it does not mark (schema-v9.ts).
    cid AS MATERIALIZED (SELECT nextval('S.claim_seq') AS c),
    cm AS (
      INSERT INTO S.claim_mark (claim, queue, owner)
      SELECT c, $1, $3 FROM cid WHERE NOT $7 AND (SELECT count(*) FROM picked) > $8),
    -- The locked rows by tuple id (a TID scan), not by a descent of the primary key each.
    upd AS (
      UPDATE S.task AS k SET state = 2, fence = k.fence + 1, owner = $3, t = coalesce($2, now()) + $5 * interval '1 ms',
             started = $7 OR k.id = ANY (ARRAY(SELECT id FROM picked WHERE g <= $8)), claim = (SELECT c FROM cid)
       WHERE k.ctid = ANY (ARRAY(SELECT tid FROM picked)) AND k.queue = $1 AND k.state::int IN (0, 1)
      RETURNING k.id::text, k.payload::text, k.attempt_count::integer, k.max_attempts::integer, k.created_at::text, k.updated_at::text,
                k.errors::jsonb, k.retries::jsonb, k.grp::text, k.cancelled::jsonb, k.fence::float8 AS fence,
                (extract(epoch from k.t) * 1000)::float8 AS expires, (extract(epoch from coalesce($2, now())) * 1000)::float8 AS now,
                k.started::boolean, k.claim::float8 AS claim)
    -- A condition without columns: evaluated once, before the join, whatever the claim took.
    SELECT upd.* FROM upd JOIN picked p USING (id) WHERE (SELECT v FROM fl) IS NOT NULL ORDER BY p.r, p.o;
END $f$;

CREATE OR REPLACE FUNCTION S.prune_tasks(text, timestamptz, float8, bigint, bigint)
RETURNS TABLE (pruned integer, counted integer)
LANGUAGE plpgsql SET enable_bitmapscan = off SET enable_seqscan = off AS $f$
#variable_conflict use_column
BEGIN
  RETURN QUERY
    WITH cnt AS (
      SELECT t, seq FROM S.task WHERE queue = $1 AND state IN (3, 5) ORDER BY t DESC, seq DESC OFFSET $4 LIMIT 1),
    sel AS MATERIALIZED (
      SELECT ctid AS tid FROM S.task
       WHERE queue = $1 AND state IN (3, 5) AND (t < coalesce($2, now()) - $3 * interval '1 ms' OR (t, seq) <= (SELECT t, seq FROM cnt))
       ORDER BY t, seq LIMIT $5 FOR UPDATE SKIP LOCKED),
    -- The rows locked, by tuple id (as the claim).
    del AS (
      DELETE FROM S.task AS k WHERE k.ctid = ANY (ARRAY(SELECT tid FROM sel)) AND k.queue = $1 AND k.state::int IN (3, 5) RETURNING k.state),
    back AS (
      INSERT INTO S.queue_counts AS c (queue, slot, kind, n)
      SELECT $1, (pg_backend_pid() % 16)::smallint, state, count(*) FROM del GROUP BY state
      ON CONFLICT (queue, slot, kind) DO UPDATE SET n = c.n + excluded.n
      RETURNING n)
    SELECT (SELECT count(*) FROM del)::int, (SELECT count(*) FROM back)::int;
END $f$;
`;
