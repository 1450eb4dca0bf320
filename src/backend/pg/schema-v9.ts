/**
 * Migration 9: start marks that do not rewrite the task row. `S` stands for the schema (quoted).
 *
 * A start mark written after the claim (a prefetched task marked ahead of its turn, beyond what
 * the claim marked itself: `start_ahead`) was an `UPDATE` of the task's row, which the claim had
 * just rewritten and the acknowledgement would rewrite again: a new row version, its index
 * entries, and the counters' statement trigger, for a bit. Now each claim has a number (`claim`
 * on its tasks' rows, written by the claim's own rewrite) and, when it hands out tasks not marked
 * by the claim, one row in `claim_mark`: a start statement appends the ids it marks to that row
 * (`marks`), one row rewritten per claim and ack window instead of one per task.
 *
 * The row is also where a start and a reclaim meet. A reclaim that takes tasks of a claim away
 * appends their ids to `revoked` in the same statement, and reads `marks` from the row it
 * updated (the newest version, after any start in flight committed); a start refuses (and does
 * not mark) ids the row has revoked. So a mark either commits before the reclaim reads it (the
 * attempt is charged) or is refused (the handler does not run): the guarantee of the row's
 * `started`, which the claim still writes for the tasks it marks itself. `task.started` or the
 * task's id among its claim's `marks` means started. Rows of claims with no leased task left are
 * deleted by the queue's prune (PgQueue.prune).
 */
export const SCHEMA_V9 = `
CREATE SEQUENCE S.claim_seq;
ALTER TABLE S.task ADD COLUMN claim bigint;
CREATE TABLE S.claim_mark (
  claim   bigint PRIMARY KEY,
  queue   text COLLATE "C" NOT NULL,
  owner   text COLLATE "C" NOT NULL,
  marks   text[] COLLATE "C" NOT NULL DEFAULT '{}',
  revoked text[] COLLATE "C" NOT NULL DEFAULT '{}'
) WITH (fillfactor = 50);
`;
