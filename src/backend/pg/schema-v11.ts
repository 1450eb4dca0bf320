/**
 * Migration 11: the claim as a function planned without bitmap scans. `S` stands for the schema
 * (quoted).
 *
 * The claim (statements.ts `claim`) is a named statement: after five executions the server keeps
 * one generic plan, which knows none of the values. After a `VACUUM` without `ANALYZE` of the task
 * table (autovacuum's insert-triggered vacuum after a bulk enqueue, before its analyze), the table's
 * row count is known but not how its rows spread over queues and states: the planner takes a
 * queue's ready set for two or three rows, and the generic plan of the ready pick became a `Bitmap
 * Index Scan on task_ready`, a bitmap heap scan and a sort on `ready_seq`: the whole ready set read
 * at every claim (49,000 index entries a claim of 100 at 100k tasks instead of about 157; the
 * server's CPU 249–333 µs a task instead of 64–84; docs/PERFORMANCE.md, 2026-12-01). The same plan
 * follows from statistics taken while the queue had few ready tasks. A bitmap scan returns its rows
 * in no order, so every plan of the claim's picks that uses one reads the whole set it selects and
 * sorts it; without bitmap scans, the cheapest plan of an ordered pick with a limit is the ordered
 * index scan that stops at the limit, whatever the estimates (the ids are then looked up by an
 * index scan of the primary key).
 *
 * The function's `SET enable_bitmapscan = off` holds for its statement only, with no round trip:
 * the named statement calls the function (`SELECT * FROM S.claim_tasks($1, …, $8)`), and PL/pgSQL
 * keeps the plan of its statement for the session, as the named statement kept its own (five custom
 * plans, then the generic one when it costs no more). A SQL function would be planned again at
 * every call. The body is the claim of migration 10's code, parameters and columns unchanged:
 * `$1` queue, `$2` test time (NULL: the database clock), `$3` owner, `$4` at most this many tasks,
 * `$5` lease ms, `$6` only these ids (NULL: any), `$7` start them all, `$8` else start the first
 * `$8`. It returns the tasks in the order handed out, with the columns PgQueue reads (the record's,
 * then `fence`, `expires`, `now`, `started`, `claim`), each cast to the type the function declares:
 * a later change of a column's type (a migration) leaves the claim's result as it was. `CREATE OR
 * REPLACE`: idempotent.
 */
export const SCHEMA_V11 = `
CREATE OR REPLACE FUNCTION S.claim_tasks(text, timestamptz, text, bigint, float8, text[], boolean, bigint)
RETURNS TABLE (id text, payload text, attempt_count integer, max_attempts integer, created_at text, updated_at text,
               errors jsonb, retries jsonb, grp text, cancelled jsonb, fence float8, expires float8, now float8,
               started boolean, claim float8)
LANGUAGE plpgsql SET enable_bitmapscan = off AS $f$
#variable_conflict use_column
BEGIN
  -- MATERIALIZED CTEs and an uncorrelated ARRAY keep the planner on the partial indexes.
  RETURN QUERY
    WITH q AS (SELECT coalesce((SELECT paused FROM S.queue WHERE name = $1), false) AS paused),
    due AS MATERIALIZED (
      SELECT id, t, seq FROM S.task
       WHERE queue = $1 AND state = 1 AND t <= coalesce($2, now()) AND NOT (SELECT paused FROM q) AND ($6 IS NULL OR id = ANY($6))
       ORDER BY t, seq LIMIT $4 FOR UPDATE SKIP LOCKED),
    rdy AS MATERIALIZED (
      SELECT id, ready_seq FROM S.task
       WHERE queue = $1 AND state = 0 AND NOT (SELECT paused FROM q) AND ($6 IS NULL OR id = ANY($6))
       ORDER BY ready_seq LIMIT greatest(0, $4 - (SELECT count(*) FROM due)) FOR UPDATE SKIP LOCKED),
    picked AS MATERIALIZED (
      SELECT id, r, o, row_number() OVER (ORDER BY r, o) AS g FROM (
        SELECT id, 0 AS r, row_number() OVER (ORDER BY t, seq) AS o FROM due
        UNION ALL SELECT id, 1, row_number() OVER (ORDER BY ready_seq) FROM rdy) u),
    -- The claim's number, and its claim_mark row when it hands out tasks it does not mark (schema-v9.ts).
    cid AS MATERIALIZED (SELECT nextval('S.claim_seq') AS c),
    cm AS (
      INSERT INTO S.claim_mark (claim, queue, owner)
      SELECT c, $1, $3 FROM cid WHERE NOT $7 AND (SELECT count(*) FROM picked) > $8),
    upd AS (
      UPDATE S.task AS k SET state = 2, fence = k.fence + 1, owner = $3, t = coalesce($2, now()) + $5 * interval '1 ms',
             started = $7 OR k.id = ANY (ARRAY(SELECT id FROM picked WHERE g <= $8)), claim = (SELECT c FROM cid)
       WHERE k.queue = $1 AND k.id = ANY (ARRAY(SELECT id FROM picked))
      RETURNING k.id::text, k.payload::text, k.attempt_count::integer, k.max_attempts::integer, k.created_at::text, k.updated_at::text,
                k.errors::jsonb, k.retries::jsonb, k.grp::text, k.cancelled::jsonb, k.fence::float8 AS fence,
                (extract(epoch from k.t) * 1000)::float8 AS expires, (extract(epoch from coalesce($2, now())) * 1000)::float8 AS now,
                k.started::boolean, k.claim::float8 AS claim)
    SELECT upd.* FROM upd JOIN picked p USING (id) ORDER BY p.r, p.o;
END $f$;
`;
