// `queue deadletter discard`, `queue list` and the nearest queue name on PostgreSQL: the same
// commands read and change the database's queue (no files), and the ledger records the discard.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, pgAvailable, type TestDatabase } from '../queue/pg-db.js';
import { spec, tempWorkspace } from './cli.js';
import { cliIn } from './in-process.js';

const up = await pgAvailable();
let db: TestDatabase;

describe.skipIf(!up)('dead letters you can finish with, on PostgreSQL', () => {
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('queue list, a typo, discard by id and --all: through the database, ledgered in the workspace', async () => {
    const ws = tempWorkspace({ demo: false });
    const env = { METASPN_DATABASE_URL: db.url };
    const cli = (args: string[]) => cliIn([...args, '--workspace', ws], { env });
    expect((await cli(['db', 'migrate'])).code).toBe(0);
    for (const id of ['a', 'b']) expect((await cli(['queue', 'enqueue', 'contract', '--payload', JSON.stringify({ id }), '--id', id])).code).toBe(0);
    const w = await cli(['worker', 'run', spec('Contract'), '--once']);
    expect(w.code, w.stderr).toBe(20);

    const list = await cli(['queue', 'list', '--json']);
    expect(list.code, list.stderr).toBe(0);
    const queues = (JSON.parse(list.stdout) as { queues: { queue: string; dead: number }[] }).queues;
    expect(queues.find((q) => q.queue === 'contract')).toMatchObject({ dead: 2 });
    expect(queues.map((q) => q.queue)).toContain('settle_season');

    const typo = await cli(['queue', 'deadletter', 'discard', 'contrct', '--all', '--reason', 'x']);
    expect(typo.code).toBe(64);
    expect(typo.stderr).toMatch(/^error: unknown worker "contrct": no queue of that name in PostgreSQL schema \S+ at \S+; did you mean contract\?\nhint: queues there: contract, /);

    const unknown = await cli(['queue', 'deadletter', 'discard', 'contract', '--task-id', 'nope', '--reason', 'x']);
    expect(unknown.code).toBe(64);
    expect(unknown.stderr).toContain('error: not in the dead letters of contract: nope; nothing was discarded');

    const one = await cli(['queue', 'deadletter', 'discard', 'contract', '--task-id', 'a', '--reason', 'obsolete', '--json']);
    expect(one.code, one.stderr).toBe(0);
    expect(JSON.parse(one.stdout)).toMatchObject({ discarded: ['a'], ledger_seq: 1 });
    const dead = await cli(['queue', 'deadletter', 'list', 'contract', '--json']);
    expect((JSON.parse(dead.stdout) as { dead_letters: { task: { id: string } }[] }).dead_letters.map((d) => d.task.id)).toEqual(['b']);
    const all = await cli(['queue', 'deadletter', 'discard', 'contract', '--all', '--reason', 'done with them']);
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout).toBe('discarded 1 dead letter(s) of contract:\n  b\nrecorded in the ledger (seq 2): done with them\n');
    const stats = await cli(['queue', 'stats', 'contract', '--json']);
    expect(JSON.parse(stats.stdout)).toMatchObject({ dead: 0, cancelled: 2 });
    const ledger = readFileSync(join(ws, 'ledger.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { kind: string; detail: { ids: string[]; reason: string } });
    expect(ledger.map((e) => [e.kind, e.detail.ids, e.detail.reason])).toEqual([
      ['deadletter_discard', ['a'], 'obsolete'],
      ['deadletter_discard', ['b'], 'done with them'],
    ]);
    // Nothing of the queue in the workspace: it lives in the database.
    expect(existsSync(join(ws, 'queue'))).toBe(false);
    expect(existsSync(join(ws, 'deadletter'))).toBe(false);
  });
});
