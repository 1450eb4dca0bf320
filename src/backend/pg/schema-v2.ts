/**
 * Migration 2: presence. `worker.lock_key` is the key of the session-level advisory lock an owner
 * holds while it is alive (src/backend/pg/presence.ts); NULL for an owner without presence.
 */
export const SCHEMA_V2 = `
ALTER TABLE S.worker ADD COLUMN lock_key bigint;
`;
