/**
 * Migration 3: what the pipeline runner persists (src/backend/pg/stores.ts) and the run locks
 * (src/backend/pg/run-locks.ts). `S` stands for the schema (quoted); see migrations.ts.
 *
 * - `artifact`: the rows of each step, one row per id of a store (`<pipeline>.<step>`), keeping the
 *   row's exact canonical text (`body`: jsonb would reorder keys and renormalise numbers, and the
 *   digest is over these bytes). `h` is the content hash of `body` (hashText, as the file store's
 *   index); `seq` is write order (what `store export` and `rows` keep).
 * - `manifest`: one per (pipeline, step, partition, run), its JSON as text.
 * - `current_pointer`: one per (pipeline, partition), its JSON as text.
 * - `ledger`: the hash chain; `body` is the entry's exact JSON (its hash is over the entry's stable
 *   stringification, as in ledger.jsonl). `ledger_head` is one row that appenders lock
 *   (`FOR UPDATE`) to take the next seq: appends serialise there, on any number of hosts, and the
 *   unique `seq`, `hash` and `prev_hash` make a fork impossible even by hand.
 * - `run_lock`: one row per lock name: the payload operators know, `generation` (the fencing token,
 *   one more at each acquisition), `backend_pid` of the holder's lock session, and `start_ts` on
 *   the database clock (the TTL is judged by it).
 * Every key uses COLLATE "C" so database order is JavaScript's string order.
 */
export const SCHEMA_V3 = `
CREATE TABLE S.artifact (
  store text COLLATE "C" NOT NULL,
  id    text COLLATE "C" NOT NULL,
  date  text COLLATE "C" NOT NULL,
  p     text COLLATE "C" NOT NULL,
  h     text COLLATE "C" NOT NULL,
  seq   bigint GENERATED ALWAYS AS IDENTITY,
  body  text NOT NULL,
  PRIMARY KEY (store, id)
);
CREATE INDEX artifact_by_date ON S.artifact (store, date, p, seq);
CREATE INDEX artifact_by_seq ON S.artifact (store, seq);

CREATE TABLE S.manifest (
  pipeline   text COLLATE "C" NOT NULL,
  step       text COLLATE "C" NOT NULL,
  date       text COLLATE "C" NOT NULL,
  run_id     text COLLATE "C" NOT NULL,
  started_at text COLLATE "C" NOT NULL,
  body       text NOT NULL,
  written_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (pipeline, step, date, run_id)
);
CREATE INDEX manifest_run ON S.manifest (run_id, step);
CREATE INDEX manifest_date ON S.manifest (date);

CREATE TABLE S.current_pointer (
  pipeline   text COLLATE "C" NOT NULL,
  date       text COLLATE "C" NOT NULL,
  run_id     text COLLATE "C" NOT NULL,
  body       text NOT NULL,
  written_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (pipeline, date)
);

CREATE TABLE S.ledger (
  seq       bigint PRIMARY KEY CHECK (seq >= 1),
  kind      text NOT NULL,
  run_id    text COLLATE "C",
  at        text NOT NULL,
  prev_hash text COLLATE "C" NOT NULL UNIQUE,
  hash      text COLLATE "C" NOT NULL UNIQUE,
  body      text NOT NULL
);

CREATE TABLE S.ledger_head (
  one  boolean PRIMARY KEY DEFAULT true CHECK (one),
  seq  bigint NOT NULL,
  hash text COLLATE "C" NOT NULL
);
INSERT INTO S.ledger_head (one, seq, hash) VALUES (true, 0, '${'0'.repeat(64)}');

CREATE TABLE S.run_lock (
  name         text COLLATE "C" PRIMARY KEY,
  generation   bigint NOT NULL DEFAULT 0,
  lock_id      text,
  active       smallint NOT NULL DEFAULT 0 CHECK (active IN (0, 1)),
  pid          integer,
  host         text,
  backend_pid  integer,
  start_ts     timestamptz,
  ttl_sec      double precision,
  reason       text,
  cmd          text
);
`;
