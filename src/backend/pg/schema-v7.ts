/**
 * Migration 7: the counters' update trigger (schema-v1.ts) joins the statement's old and new rows
 * by (queue, id). A plan cached from small statements ran those joins as nested loops: a rerun of
 * 10k completed tasks (`pipeline run` or `s1 run-local` of a date again) spent 17.8 s in the trigger
 * and passed the 30 s statement timeout on a loaded machine. Without nested loops: 1.1 s.
 */
export const SCHEMA_V7 = `
ALTER FUNCTION S.task_counts_upd() SET enable_nestloop = off;
`;
