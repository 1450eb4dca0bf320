/**
 * Migration 8: tasks keyed by (id, queue), and a counters trigger that skips empty statements.
 *
 * - The primary key was (queue, id). The acknowledgements (complete, fail, start, renew, release)
 *   join their (id, fence, owner) arrays to the task table by (queue, id), and while the table's
 *   statistics were those of a smaller table (after a bulk enqueue, until autovacuum analyzed it;
 *   `queue = $1` estimated at 0.5% of the rows) the planner read the queue's whole key range and
 *   hashed it, rather than looking up each of the 100 ids: 30,000 index entries for 100 rows at
 *   30k tasks. With the id first, the key cannot be read by queue alone, and the lookups are the
 *   cheapest plan whatever the statistics. `ON CONFLICT (queue, id)` finds the key by its columns.
 * - The counters' update trigger (schema-v1.ts, with migration 7's setting) returns at once when
 *   its statement changed no row: every claim first gives back expired leases, almost always
 *   none, and the trigger ran its five scans and its insert all the same.
 */
/**
 * The counters' update trigger's statement that pairs each row's old and new version (`ot`, `nt`)
 * by key: tasks by state, failed attempts (10), arrivals in the dead letters (11), dead letters
 * retried (12). Migration 10 keeps it for the statements its grouped count does not cover.
 */
export const COUNT_BY_ROW = `  INSERT INTO S.queue_counts AS c (queue, slot, kind, n)
  SELECT queue, (pg_backend_pid() % 16)::smallint, kind, sum(d) FROM (
      SELECT o.queue, o.state AS kind, -1 AS d FROM ot o
    UNION ALL
      SELECT n.queue, n.state, 1 FROM nt n
    UNION ALL
      SELECT n.queue, 10, n.attempt_count - o.attempt_count FROM ot o JOIN nt n USING (queue, id)
       WHERE n.attempt_count > o.attempt_count
    UNION ALL
      SELECT n.queue, 11, 1 FROM ot o JOIN nt n USING (queue, id) WHERE n.state = 4 AND o.state <> 4
    UNION ALL
      SELECT n.queue, 12, 1 FROM ot o JOIN nt n USING (queue, id) WHERE o.state = 4 AND n.state = 0
  ) x GROUP BY queue, kind HAVING sum(d) <> 0
  ON CONFLICT (queue, slot, kind) DO UPDATE SET n = c.n + excluded.n;
`;

export const SCHEMA_V8 = `
ALTER TABLE S.task DROP CONSTRAINT task_pkey;
ALTER TABLE S.task ADD CONSTRAINT task_pkey PRIMARY KEY (id, queue);

CREATE OR REPLACE FUNCTION S.task_counts_upd() RETURNS trigger LANGUAGE plpgsql SET enable_nestloop = off AS $f$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM nt) THEN
    RETURN NULL;
  END IF;
${COUNT_BY_ROW}  RETURN NULL;
END $f$;
`;
