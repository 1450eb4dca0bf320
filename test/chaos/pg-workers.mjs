// Fixture workers of the PostgreSQL chaos suite (test/chaos/pg-effects.test.ts), loaded by
// `metaspn worker run <this file>:<Export>`. Both do the same work and write the same effect, one
// entry of the un-keyed log `chaos` per task: so a duplicate shows as a task id on two entries.
import pg from 'pg';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Records its effects with ctx.effects: on PostgreSQL they commit in the transaction of the acknowledgement. */
export class Effects {
  name = 'pgchaos';
  isolation = 'none';

  async handle(task, ctx) {
    if (task.payload.ms) await sleep(task.payload.ms);
    ctx.effects.append('chaos', { id: task.id });
    ctx.effects.rows('chaos', 'effects', [{ key: task.id, id: task.id, step: 'effects', date: '2026-01-01', identity: 'chaos', n: task.payload.n }]);
  }
}

/**
 * The NEGATIVE CONTROL: commits the same log entry in a transaction of its own before the
 * acknowledgement (as an at-least-once handler does), then does its work. A crash, a terminated
 * session or a server restart between that commit and the acknowledgement runs the task again.
 */
export class EffectFirst {
  name = 'pgchaos';
  isolation = 'none';

  init() {
    this.pool = new pg.Pool({ connectionString: process.env.METASPN_DATABASE_URL, max: 4 });
    this.pool.on('error', () => undefined);
  }

  async handle(task) {
    await this.pool.query(`INSERT INTO metaspn.effect_log (log, queue, task_id, fence, body) VALUES ('chaos', 'pgchaos', $1, 0, $2)`, [task.id, JSON.stringify({ id: task.id })]);
    if (task.payload.ms) await sleep(task.payload.ms);
  }

  async close() {
    await this.pool?.end().catch(() => undefined);
  }
}
