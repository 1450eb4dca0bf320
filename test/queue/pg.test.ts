import { afterAll, beforeAll, describe } from 'vitest';
import { PgQueue, type PgQueueOptions } from '../../src/backend/pg/pg-queue.js';
import type { Queue } from '../../src/queue/types.js';
import { describeQueueBackend } from './conformance.js';
import { createTestDatabase, dbClockOf, pgAvailable, type TestDatabase } from './pg-db.js';

/**
 * The queue conformance suite on PostgreSQL. Each queue gets a schema of its own in a database this
 * file creates and drops. The suite's clocks move the database clock through PgQueueOptions.dbNow
 * (test only; see dbClockOf); production passes nothing and the server's now() decides.
 */
const up = await pgAvailable();
let db: TestDatabase;
let schemas = 0;
const opened = new WeakMap<Queue, PgQueueOptions>();

function open(opts: PgQueueOptions): PgQueue {
  const q = new PgQueue(opts);
  opened.set(q, opts);
  return q;
}

describe.skipIf(!up)('PostgreSQL', () => {
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  describeQueueBackend(
    'postgres',
    async (opts) => {
      const dbNow = dbClockOf(opts);
      return open({ ...opts, setting: { url: db.url, source: 'test', schema: `q_${++schemas}` }, ...(dbNow ? { dbNow } : {}) });
    },
    {
      // Another process's view: a new queue object on the same schema (nothing to compact).
      reopen: async (q) => {
        const opts = opened.get(q)!;
        await q.close();
        return open(opts);
      },
    },
  );
});
