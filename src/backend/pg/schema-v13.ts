/**
 * Migration 13: the statements that change tasks keep the counters; the update trigger goes. `S`
 * stands for the schema (quoted).
 *
 * The counters (`queue_counts`: tasks by state, failed attempts, arrivals in and retries from the
 * dead letters) were kept for updates by a statement trigger with transition tables
 * (schema-v1.ts, migrations 7, 8 and 10): every `UPDATE` of the task table copied each row it
 * changed, before and after, into two tuple stores (whole rows: payload, errors), then ran the
 * trigger's function, which grouped them and upserted the counters. Every statement paid it, also
 * those that change no state (start marks, renewals, reorders), and an acknowledgement of a dozen
 * tasks paid it as a claim of a hundred did: in a drain of tasks that fail once, the server spent
 * about a tenth of its CPU there (docs/PERFORMANCE.md, 2026-12-01 11:00). Each statement that
 * changes a task's state now knows the states it moves its rows between (its guard names them, or
 * the rows it locked say), and upserts the counters in a data-modifying CTE of its own
 * (statements.ts `counting`): the same counts, in the same transaction, from the rows it changed.
 * The insert and delete triggers stay (an insert or a delete copies nothing it does not count).
 *
 * The claim function is migration 12's with its counting: each row leaves the state it was picked
 * in (due: 1, ready: 0) for leased (2). Its variable `n` is now `nth` (the counters' column is `n`).
 *
 * Workers of an older metaspn keep running the statements they started with: stop them before this
 * migration runs (docs/POSTGRES.md, upgrading), or run `metaspn doctor`, which finds counters that
 * disagree with the rows. `CREATE OR REPLACE`, `IF EXISTS`: idempotent.
 */
export const SCHEMA_V13 = `
DROP TRIGGER IF EXISTS task_counts_upd ON S.task;
DROP FUNCTION IF EXISTS S.task_counts_upd();

CREATE OR REPLACE FUNCTION S.claim_tasks(text, timestamptz, text, bigint, float8, text[], boolean, bigint)
RETURNS TABLE (id text, payload text, attempt_count integer, max_attempts integer, created_at text, updated_at text,
               errors jsonb, retries jsonb, grp text, cancelled jsonb, fence float8, expires float8, now float8,
               started boolean, claim float8)
LANGUAGE plpgsql SET enable_bitmapscan = off SET enable_seqscan = off SET enable_nestloop = off AS $f$
#variable_conflict use_column
DECLARE
  tag text := ('S.task'::regclass)::oid::text || ' ' || $1;
  hint text := current_setting('metaspn.ready_floor', true);
  nth bigint := CASE WHEN substr(hint, length(split_part(hint, ' ', 1)) + length(split_part(hint, ' ', 2)) + 3) = tag
                     THEN split_part(hint, ' ', 2)::bigint + 1 ELSE 0 END;
  lo bigint := CASE WHEN $6 IS NULL AND nth % 32 <> 0 THEN split_part(hint, ' ', 1)::bigint ELSE 0 END;
BEGIN
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
    fl AS MATERIALIZED (
      SELECT set_config('metaspn.ready_floor', CASE WHEN $6 IS NOT NULL THEN coalesce(hint, '') ELSE (
               CASE WHEN (SELECT count(*) FROM rdy) < greatest(0, $4 - (SELECT count(*) FROM due)) THEN 0
                    ELSE coalesce((SELECT min(ready_seq) FROM rdy), lo) END)::text || ' ' || nth::text || ' ' || tag END, false) AS v),
    picked AS MATERIALIZED (
      SELECT id, tid, r, o, row_number() OVER (ORDER BY r, o) AS g FROM (
        SELECT id, tid, 0 AS r, row_number() OVER (ORDER BY t, seq) AS o FROM due
        UNION ALL SELECT id, tid, 1, row_number() OVER (ORDER BY ready_seq) FROM rdy) u),
    cid AS MATERIALIZED (SELECT nextval('S.claim_seq') AS c),
    cm AS (
      INSERT INTO S.claim_mark (claim, queue, owner)
      SELECT c, $1, $3 FROM cid WHERE NOT $7 AND (SELECT count(*) FROM picked) > $8),
    upd AS (
      UPDATE S.task AS k SET state = 2, fence = k.fence + 1, owner = $3, t = coalesce($2, now()) + $5 * interval '1 ms',
             started = $7 OR k.id = ANY (ARRAY(SELECT id FROM picked WHERE g <= $8)), claim = (SELECT c FROM cid)
       WHERE k.ctid = ANY (ARRAY(SELECT tid FROM picked)) AND k.queue = $1 AND k.state::int IN (0, 1)
      RETURNING k.id::text, k.payload::text, k.attempt_count::integer, k.max_attempts::integer, k.created_at::text, k.updated_at::text,
                k.errors::jsonb, k.retries::jsonb, k.grp::text, k.cancelled::jsonb, k.fence::float8 AS fence,
                (extract(epoch from k.t) * 1000)::float8 AS expires, (extract(epoch from coalesce($2, now())) * 1000)::float8 AS now,
                k.started::boolean, k.claim::float8 AS claim),
    -- The counters: each row leaves the state it was picked in (due 1, ready 0) for leased (2).
    cnt AS (
      INSERT INTO S.queue_counts AS c (queue, slot, kind, n)
      SELECT $1, (pg_backend_pid() % 16)::smallint, v.kind, sum(v.d) FROM (
        SELECT unnest(ARRAY[1 - p.r, 2]) AS kind, unnest(ARRAY[-1, 1]) AS d FROM upd JOIN picked p USING (id)) v
       GROUP BY v.kind HAVING sum(v.d) <> 0
      ON CONFLICT (queue, slot, kind) DO UPDATE SET n = c.n + excluded.n)
    SELECT upd.* FROM upd JOIN picked p USING (id) WHERE (SELECT v FROM fl) IS NOT NULL ORDER BY p.r, p.o;
END $f$;
`;
