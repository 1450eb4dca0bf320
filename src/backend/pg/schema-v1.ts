/**
 * Migration 1: the queue. `S` stands for the schema (quoted); see migrations.ts.
 *
 * One row per task. `state`: 0 ready, 1 scheduled, 2 leased, 3 completed, 4 dead, 5 cancelled
 * (src/queue/state.ts). `t` is the state's time on the database clock: ready since, due at, lease
 * expiry, or when it got to a terminal state. `seq` is enqueue order, `ready_seq` the order tasks
 * became ready (both from sequences without a cache, so that order holds across connections).
 * The record's own times (`created_at`, `updated_at`, retries, cancellation) are the writer's wall
 * clock as ISO text, as in the file backend; no decision reads them.
 * Ids use COLLATE "C" so database order is JavaScript's string order. The payload is kept as its
 * exact JSON text (jsonb would reorder keys and renormalise numbers).
 * Counts by state and the totals are kept by statement triggers in 16-way sharded counters
 * (`queue_counts`): exact at commit, read in about a millisecond on any table size.
 */
export const SCHEMA_V1 = `
CREATE TABLE S.queue (
  name       text COLLATE "C" PRIMARY KEY,
  paused     boolean NOT NULL DEFAULT false,
  paused_by  text,
  paused_at  text
);

CREATE SEQUENCE S.task_seq;
CREATE SEQUENCE S.ready_seq;

CREATE TABLE S.task (
  queue         text COLLATE "C" NOT NULL,
  id            text COLLATE "C" NOT NULL,
  state         smallint NOT NULL DEFAULT 0 CHECK (state BETWEEN 0 AND 5),
  seq           bigint   NOT NULL,
  ready_seq     bigint   NOT NULL,
  t             timestamptz NOT NULL,
  fence         bigint   NOT NULL DEFAULT 0,
  owner         text COLLATE "C",
  started       boolean  NOT NULL DEFAULT false,
  attempt_count integer  NOT NULL DEFAULT 0,
  max_attempts  integer  NOT NULL,
  grp           text COLLATE "C",
  payload       text     NOT NULL,
  created_at    text     NOT NULL,
  updated_at    text     NOT NULL,
  errors        jsonb    NOT NULL DEFAULT '[]',
  retries       jsonb    NOT NULL DEFAULT '[]',
  cancelled     jsonb,
  PRIMARY KEY (queue, id)
) WITH (fillfactor = 90, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
        autovacuum_vacuum_insert_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02);

CREATE INDEX task_ready  ON S.task (queue, ready_seq) WHERE state = 0;
CREATE INDEX task_sched  ON S.task (queue, t, seq)    WHERE state = 1;
CREATE INDEX task_leased ON S.task (queue, t)         WHERE state = 2;
CREATE INDEX task_dead   ON S.task (queue, seq)       WHERE state = 4;
CREATE INDEX task_group  ON S.task (queue, grp, seq)  WHERE state IN (0, 1) AND grp IS NOT NULL;

-- Who claimed: the owner id a lease names, with the pid and host it reported (shown in messages,
-- never used to decide liveness).
CREATE TABLE S.worker (
  owner      text COLLATE "C" PRIMARY KEY,
  pid        integer,
  host       text,
  first_seen timestamptz NOT NULL DEFAULT now()
);

-- kind: 0..5 tasks by state; 10 failed attempts, 11 arrivals in the dead letters, 12 dead letters retried.
CREATE TABLE S.queue_counts (
  queue text COLLATE "C" NOT NULL,
  slot  smallint NOT NULL,
  kind  smallint NOT NULL,
  n     bigint   NOT NULL,
  PRIMARY KEY (queue, slot, kind)
);

CREATE FUNCTION S.task_counts_ins() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  INSERT INTO S.queue_counts AS c (queue, slot, kind, n)
  SELECT queue, (pg_backend_pid() % 16)::smallint, state, count(*) FROM nt GROUP BY queue, state
  ON CONFLICT (queue, slot, kind) DO UPDATE SET n = c.n + excluded.n;
  RETURN NULL;
END $f$;

CREATE FUNCTION S.task_counts_upd() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  INSERT INTO S.queue_counts AS c (queue, slot, kind, n)
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
  RETURN NULL;
END $f$;

CREATE FUNCTION S.task_counts_del() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  INSERT INTO S.queue_counts AS c (queue, slot, kind, n)
  SELECT queue, (pg_backend_pid() % 16)::smallint, state, -count(*) FROM ot GROUP BY queue, state
  ON CONFLICT (queue, slot, kind) DO UPDATE SET n = c.n + excluded.n;
  RETURN NULL;
END $f$;

CREATE TRIGGER task_counts_ins AFTER INSERT ON S.task REFERENCING NEW TABLE AS nt
  FOR EACH STATEMENT EXECUTE FUNCTION S.task_counts_ins();
CREATE TRIGGER task_counts_upd AFTER UPDATE ON S.task REFERENCING OLD TABLE AS ot NEW TABLE AS nt
  FOR EACH STATEMENT EXECUTE FUNCTION S.task_counts_upd();
CREATE TRIGGER task_counts_del AFTER DELETE ON S.task REFERENCING OLD TABLE AS ot
  FOR EACH STATEMENT EXECUTE FUNCTION S.task_counts_del();
`;
