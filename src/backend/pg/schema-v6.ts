/**
 * Migration 6: where each output set of a step is sealed (PgRowStore.seal). `S` stands for the
 * schema (quoted). Rows of a (store, partition, identity) whose `seq` is at most `sealed_to` are in
 * their final place in the store's order; rows committed after (tasks commit in any order, on any
 * host) are put in place when the step that wrote them ends.
 */
export const SCHEMA_V6 = `
CREATE TABLE S.artifact_seal (
  store     text COLLATE "C" NOT NULL,
  date      text COLLATE "C" NOT NULL,
  p         text COLLATE "C" NOT NULL,
  sealed_to bigint NOT NULL,
  PRIMARY KEY (store, date, p)
);
`;
