import { COUNT_BY_ROW } from './schema-v8.js';

/**
 * Migration 10: the counters' update trigger without joins for the statements a drain runs.
 * `S` stands for the schema (quoted).
 *
 * The trigger (schema-v1.ts, with migrations 7 and 8) counts a statement's changes from its
 * transition tables: tasks by state, and three counters that pair each row's old and new version
 * (`ot` joined to `nt` by key, three hash joins): failed attempts (10, the attempt count's rise),
 * arrivals in the dead letters (11) and dead letters retried (12). A claim, a completion, a start,
 * a renewal, a release, a failure that is retried and a reclaim that gives tasks back leave no row
 * in state 4 and start from no row in states 3, 4 or 5; attempt counts only fall on the way out of
 * those (`rerun` from 3 and 5, `retry` from 4: statements.ts). For such a statement, counters 11
 * and 12 are zero and counter 10 is the sum of the new attempt counts less that of the old ones,
 * so it is counted from one pass over each table, grouped, without pairing rows. Any other
 * statement (a row leaving 3, 4 or 5, or arriving in 4) is counted as before, row by row.
 *
 * The joins were the larger part of the trigger's time: in a completion of 64 tasks the trigger
 * took 28% of the statement before, 15% with this function; claims of 500 and their completions
 * about 4% less of the backend's CPU (docs/PERFORMANCE.md, 2026-11-30 22:53). `CREATE OR REPLACE`:
 * idempotent; the triggers keep pointing at the function.
 */
export const SCHEMA_V10 = `
CREATE OR REPLACE FUNCTION S.task_counts_upd() RETURNS trigger LANGUAGE plpgsql SET enable_nestloop = off AS $f$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM nt) THEN
    RETURN NULL;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM ot WHERE state >= 3) AND NOT EXISTS (SELECT 1 FROM nt WHERE state = 4) THEN
    INSERT INTO S.queue_counts AS c (queue, slot, kind, n)
    SELECT queue, (pg_backend_pid() % 16)::smallint, kind, sum(d) FROM (
        SELECT queue, state AS kind, -count(*) AS d FROM ot GROUP BY queue, state
      UNION ALL
        SELECT queue, state, count(*) FROM nt GROUP BY queue, state
      UNION ALL
        SELECT queue, 10, -sum(attempt_count) FROM ot GROUP BY queue
      UNION ALL
        SELECT queue, 10, sum(attempt_count) FROM nt GROUP BY queue
    ) x GROUP BY queue, kind HAVING sum(d) <> 0
    ON CONFLICT (queue, slot, kind) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
  END IF;
${COUNT_BY_ROW}  RETURN NULL;
END $f$;
`;
