/**
 * Migration 4: effect logs (src/backend/pg/effects.ts). `S` stands for the schema (quoted).
 *
 * - `effect_log`: the entries of append-only logs that tasks write with their completion
 *   (`ctx.effects.append`), one row per entry: `log` names the log, `queue`, `task_id` and `fence`
 *   the completion that wrote it (the fence is the lease's, so a task's entries from one attempt
 *   share it), `body` the entry's exact JSON text. Not keyed by task: an entry is written once
 *   per completion that commits, which is what makes "exactly once" checkable.
 */
export const SCHEMA_V4 = `
CREATE TABLE S.effect_log (
  seq      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  log      text COLLATE "C" NOT NULL,
  queue    text COLLATE "C" NOT NULL,
  task_id  text COLLATE "C" NOT NULL,
  fence    bigint NOT NULL,
  body     text NOT NULL,
  at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX effect_log_by_log ON S.effect_log (log, seq);
CREATE INDEX effect_log_by_task ON S.effect_log (queue, task_id);
`;
