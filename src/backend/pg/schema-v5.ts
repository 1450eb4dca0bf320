/**
 * Migration 5: pruning completed and cancelled tasks past retention (PgQueue.prune). `S` stands for
 * the schema (quoted). The partial index lets a prune find the oldest terminal rows of a queue
 * without reading the others.
 */
export const SCHEMA_V5 = `
CREATE INDEX task_done ON S.task (queue, t, seq) WHERE state IN (3, 5);
`;
