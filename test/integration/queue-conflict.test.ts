// A queue log holding a record no writer under the lock writes (two tasks in one slot) is
// STATE_CORRUPT (30) for every command, doctor names the offset and the recovery, and
// `doctor --repair` recovers it with every acknowledged task kept. Real CLI, temp workspace.
import { appendFileSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeLine } from '../../src/queue/file/codec.js';
import { listGens, logPath } from '../../src/queue/file/log-io.js';
import { newRecord } from '../../src/queue/record.js';
import { spec, tempWorkspace } from './cli.js';
import { cliIn } from './in-process.js';

const Q = 'ok'; // the queue of the fixture worker `Succeed`

describe('a queue log with two tasks in one slot', () => {
  it('exits 30 naming the offset until doctor --repair keeps both tasks', async () => {
    const ws = tempWorkspace({ demo: false });
    const tasks = join(ws, 'tasks.jsonl');
    writeFileSync(tasks, `${JSON.stringify({ id: 'x0', payload: 0 })}\n`);
    const first = await cliIn(['queue', 'enqueue', Q, '--workspace', ws, '--file', tasks]);
    expect(first.code, first.stderr).toBe(0);

    // Two writers both numbered their task slot 1: what two processes appending at once leave.
    const dir = join(ws, 'queue', Q);
    const log = logPath(dir, listGens(dir).at(-1)!);
    const at = Date.now();
    appendFileSync(log, encodeLine({ t: 'enq', n: 1, at, task: newRecord(Q, { id: 'b0', payload: 1 }, 3, at) }));
    const offset = statSync(log).size;
    appendFileSync(log, encodeLine({ t: 'enq', n: 1, at, task: newRecord(Q, { id: 'a0', payload: 2 }, 3, at) }));
    const bytes = readFileSync(log);

    const stats = await cliIn(['queue', 'stats', Q, '--workspace', ws]);
    expect(stats.code, stats.stderr).toBe(30);
    expect(stats.stderr).toContain(`byte ${offset}`);
    expect(stats.stderr).toContain(log);
    expect(stats.stderr).toContain('doctor');

    const worker = await cliIn(['worker', 'run', spec('Succeed'), '--workspace', ws, '--once']);
    expect(worker.code, worker.stderr).toBe(30);
    expect(worker.stderr).toContain(`byte ${offset}`);
    expect(existsSync(join(ws, 'executions.log'))).toBe(false);

    const enqueue = await cliIn(['queue', 'enqueue', Q, '--workspace', ws, '--payload', '{"id":"y0"}']);
    expect(enqueue.code, enqueue.stderr).toBe(30);
    // Nothing was written to the log by any of them.
    expect(readFileSync(log).equals(bytes)).toBe(true);

    const found = await cliIn(['doctor', '--workspace', ws]);
    expect(found.code, found.stderr).toBe(30);
    expect(found.stdout).toContain(`replay conflict at byte ${offset}`);
    expect(found.stdout).toContain(`metaspn doctor --workspace ${ws} --repair`);
    expect(readFileSync(log).equals(bytes)).toBe(true);

    const fixed = await cliIn(['doctor', '--workspace', ws, '--repair']);
    expect(fixed.code, fixed.stdout + fixed.stderr).toBe(0);
    expect(fixed.stdout).toMatch(/FIXED .*replay conflict at byte/);
    expect(fixed.stdout).toContain('a0 (byte');
    expect(fixed.stdout).toMatch(/made ready again/);
    expect(readdirSync(dir).filter((f) => f.startsWith('log.'))).toEqual(['log.000002.jsonl']);
    expect((await cliIn(['doctor', '--workspace', ws])).code).toBe(0);

    const after = await cliIn(['queue', 'stats', Q, '--workspace', ws, '--json']);
    expect(after.code, after.stderr).toBe(0);
    expect(JSON.parse(after.stdout)).toMatchObject({ ready: 3, scheduled: 0, leased: 0, completed: 0, dead: 0 });

    const drained = await cliIn(['worker', 'run', spec('Succeed'), '--workspace', ws, '--once']);
    expect(drained.code, drained.stderr).toBe(0);
    const ran = readFileSync(join(ws, 'executions.log'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(' ')[1]);
    expect(ran.sort()).toEqual(['a0', 'b0', 'x0']);
    const end = await cliIn(['queue', 'stats', Q, '--workspace', ws, '--json']);
    expect(JSON.parse(end.stdout)).toMatchObject({ ready: 0, completed: 3 });
  });
});
