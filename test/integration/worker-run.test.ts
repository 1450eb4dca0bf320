// `metaspn worker run` and the queue triage commands, driven through the real CLI in temp workspaces (in the test process, but for the graceful stop and concurrent enqueues, which need processes of their own).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Run, exit, run, spec, start, tempWorkspace, waitFor } from './cli.js';
import { cliIn } from './in-process.js';

interface Stats {
  ready: number;
  scheduled: number;
  leased: number;
  completed: number;
  dead: number;
  paused: boolean;
  /** ISO-8601, as every instant in JSON output. */
  next_due_at: string | null;
  corrupt_records: number;
}

async function stats(ws: string, queue: string): Promise<Stats> {
  const r = await cliIn(['queue', 'stats', queue, '--workspace', ws, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Stats;
}

interface Execution {
  queue: string;
  id: string;
  attempt: number;
  pid: number;
}

/** <workspace>/executions.log, written by the fixture workers: one line per handler call. */
function executions(ws: string): Execution[] {
  const f = join(ws, 'executions.log');
  if (!existsSync(f)) return [];
  return readFileSync(f, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [queue, id, attempt, pid] = l.split(' ');
      return { queue: queue!, id: id!, attempt: Number(attempt), pid: Number(pid) };
    });
}

function taskFile(ws: string, name: string, tasks: { id: string; payload: unknown; max_attempts?: number }[]): string {
  const f = join(ws, name);
  writeFileSync(f, tasks.map((t) => JSON.stringify(t)).join('\n') + '\n');
  return f;
}

async function enqueue(ws: string, queue: string, tasks: { id: string; payload: unknown; max_attempts?: number }[], env: NodeJS.ProcessEnv = {}): Promise<void> {
  const f = taskFile(ws, `${queue}-tasks.jsonl`, tasks);
  const r = await cliIn(['queue', 'enqueue', queue, '--workspace', ws, '--file', f], { env });
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout).toContain(`enqueued ${tasks.length} task(s) to ${queue}; 0 already present`);
}

function workerRun(ws: string, exportName: string, flags: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return cliIn(['worker', 'run', spec(exportName), '--workspace', ws, ...flags], { env });
}

interface DeadLetterJson {
  task: { id: string; max_attempts: number };
  attempt_count: number;
  errors: { attempt: number; kind: string; class: string; message: string }[];
  reason: { attempt: number; kind: string; class: string; message: string } | null;
}

async function deadLetters(ws: string, queue: string): Promise<DeadLetterJson[]> {
  const r = await cliIn(['queue', 'deadletter', 'list', queue, '--workspace', ws, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { dead_letters: DeadLetterJson[] }).dead_letters;
}

const NO_STACK = /\n\s+at \S+/;

describe('worker run', () => {
  it('Succeed: --once completes every ready task exactly once, exit 0', async () => {
    const ws = tempWorkspace({ demo: false });
    const ids = Array.from({ length: 20 }, (_, i) => `ok-${String(i).padStart(2, '0')}`);
    await enqueue(
      ws,
      'ok',
      ids.map((id) => ({ id, payload: { n: id } })),
    );

    const r = await workerRun(ws, 'Succeed', ['--once']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^worker ok: claimed 20, completed 20 in [\d.]+s \(exit 0\)\n$/);

    const s = await stats(ws, 'ok');
    expect(s).toMatchObject({ ready: 0, scheduled: 0, leased: 0, completed: 20, dead: 0 });
    const ex = executions(ws);
    expect(ex.map((e) => e.id).sort()).toEqual(ids);
    expect(ex.every((e) => e.queue === 'ok' && e.attempt === 1)).toBe(true);
  });

  it('FailTimes fail:2: --once exits 11 while a retry is scheduled; once due, the next --once runs it, 3rd attempt completes (exit 0)', async () => {
    const ws = tempWorkspace({ demo: false });
    // Retries far enough out that one --once run cannot reach them.
    const env = { METASPN_QUEUE_BACKOFF_BASE_MS: '1000', METASPN_QUEUE_BACKOFF_CAP_MS: '1000', METASPN_QUEUE_BACKOFF_JITTER: '0' };
    await enqueue(ws, 'flaky', [{ id: 'f1', payload: { fail: 2 }, max_attempts: 5 }]);

    const r1 = await workerRun(ws, 'FailTimes', ['--once'], env);
    expect(r1.code, r1.stderr).toBe(11);
    expect(r1.stdout).toMatch(/claimed 1, completed 0, retry scheduled 1 .*\(exit 11\)/);
    const s = await stats(ws, 'flaky');
    expect(s).toMatchObject({ ready: 0, scheduled: 1, leased: 0, completed: 0, dead: 0 });
    expect(s.next_due_at).not.toBeNull();
    expect(executions(ws).map((e) => e.attempt)).toEqual([1]);

    const due1 = Date.parse(s.next_due_at!);
    await waitFor(() => Date.now() > due1, 10_000, 'first retry due');
    const r2 = await workerRun(ws, 'FailTimes', ['--once'], env);
    // The retry is due at most 1000 ms (no jitter) after this run's failure, which came before its exit.
    const due2 = Date.now() + 1000;
    expect(r2.code, r2.stderr).toBe(11);
    expect(r2.stdout).toMatch(/claimed 1, completed 0, retry scheduled 1 /);
    expect(executions(ws).map((e) => e.attempt)).toEqual([1, 2]);

    await waitFor(() => Date.now() > due2, 10_000, 'second retry due');
    const r3 = await workerRun(ws, 'FailTimes', ['--once'], env);
    expect(r3.code, r3.stderr).toBe(0);
    expect(r3.stdout).toMatch(/claimed 1, completed 1 in .*\(exit 0\)/);
    expect(await stats(ws, 'flaky')).toMatchObject({ ready: 0, scheduled: 0, leased: 0, completed: 1, dead: 0 });
    expect(executions(ws).map((e) => `${e.id}#${e.attempt}`)).toEqual(['f1#1', 'f1#2', 'f1#3']);
  });

  it('FailTimes fail:10, max_attempts 3: dead letter (exit 50); list/show explain it; retry moves it back, --dry-run changes nothing, unknown id exits 64', async () => {
    const ws = tempWorkspace({ demo: false });
    const env = { METASPN_QUEUE_MAX_ATTEMPTS: '3', METASPN_QUEUE_BACKOFF_BASE_MS: '0', METASPN_QUEUE_BACKOFF_CAP_MS: '0' };
    await enqueue(ws, 'flaky', [{ id: 'f1', payload: { fail: 10 } }], env);

    const r = await workerRun(ws, 'FailTimes', ['--once'], env);
    expect(r.code, r.stderr).toBe(50);
    expect(r.stdout).toMatch(/claimed 3, completed 0, retry scheduled 2, dead-lettered 1 \(contract 0\) .*\(exit 50\)/);
    expect(executions(ws).map((e) => e.attempt)).toEqual([1, 2, 3]);

    const logFile = join(ws, 'queue', 'flaky', 'log.000001.jsonl');
    const dlFile = join(ws, 'deadletter', 'flaky', 'f1.json');
    const logBefore = readFileSync(logFile);
    const dlBefore = readFileSync(dlFile);
    // Read-only commands, run side by side.
    const [list, show, showJson, unknown, dry, before] = await Promise.all([
      cliIn(['queue', 'deadletter', 'list', 'flaky', '--workspace', ws]),
      cliIn(['queue', 'deadletter', 'show', 'flaky', 'f1', '--workspace', ws]),
      cliIn(['queue', 'deadletter', 'show', 'flaky', 'f1', '--workspace', ws, '--json']),
      cliIn(['queue', 'retry', 'flaky', '--workspace', ws, '--task-id', 'nope']),
      cliIn(['queue', 'retry', 'flaky', '--workspace', ws, '--task-id', 'f1', '--dry-run']),
      stats(ws, 'flaky'),
    ]);
    expect(before).toMatchObject({ ready: 0, scheduled: 0, leased: 0, completed: 0, dead: 1 });

    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^f1\s+3\s+\S+\s+transient Error: flaky failure 3$/m);
    expect(list.stdout).toContain('1 dead letter(s) in');

    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/^attempts +3 of 3$/m);
    for (const n of [1, 2, 3]) expect(show.stdout).toMatch(new RegExp(`^  #${n} \\S+ transient Error: flaky failure ${n}$`, 'm'));
    expect(show.stdout).not.toMatch(/#4 /);
    const dl = JSON.parse(showJson.stdout) as DeadLetterJson;
    expect(dl.attempt_count).toBe(3);
    expect(dl.errors.map((e) => [e.attempt, e.kind])).toEqual([
      [1, 'transient'],
      [2, 'transient'],
      [3, 'transient'],
    ]);

    expect(unknown.code).toBe(64);
    expect(unknown.stderr).toContain('not in the dead letters of flaky: nope');
    expect(unknown.stderr).not.toMatch(NO_STACK);

    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toBe('dry run: would move 1 task(s) of flaky back to ready:\n  f1\n');
    expect(readFileSync(logFile).equals(logBefore)).toBe(true);
    expect(readFileSync(dlFile).equals(dlBefore)).toBe(true);

    const retry = await cliIn(['queue', 'retry', 'flaky', '--workspace', ws, '--task-id', 'f1']);
    expect(retry.code, retry.stderr).toBe(0);
    expect(retry.stdout).toBe('moved 1 task(s) of flaky back to ready:\n  f1\n');
    expect(existsSync(dlFile)).toBe(false);
    const [after, left] = await Promise.all([stats(ws, 'flaky'), deadLetters(ws, 'flaky')]);
    expect(after).toMatchObject({ ready: 1, scheduled: 0, leased: 0, dead: 0 });
    expect(left).toEqual([]);
  });

  it('Contract: dead letter at once with kind contract, one execution, exit 20', async () => {
    const ws = tempWorkspace({ demo: false });
    await enqueue(ws, 'contract', [{ id: 'c1', payload: {} }]);

    const r = await workerRun(ws, 'Contract', ['--once']);
    expect(r.code, r.stderr).toBe(20);
    expect(r.stdout).toMatch(/claimed 1, completed 0, dead-lettered 1 \(contract 1\) .*\(exit 20\)/);
    expect(executions(ws).map((e) => `${e.id}#${e.attempt}`)).toEqual(['c1#1']);
    const [[dl, ...more], s] = await Promise.all([deadLetters(ws, 'contract'), stats(ws, 'contract')]);
    expect(more).toEqual([]);
    expect(dl!.attempt_count).toBe(1);
    expect(dl!.task.max_attempts).toBe(5);
    expect(dl!.reason).toMatchObject({ attempt: 1, kind: 'contract', class: 'ContractError', message: 'missing required column "score"' });
    expect(s).toMatchObject({ ready: 0, scheduled: 0, leased: 0, dead: 1 });
  });

  it('Hang (timeout 300 ms, max_attempts 1): the timeout dead-letters it with kind timeout and worker run exits 50 by itself', async () => {
    const ws = tempWorkspace({ demo: false });
    const env = { METASPN_QUEUE_MAX_ATTEMPTS: '1' };
    await enqueue(ws, 'hang', [{ id: 'h1', payload: {} }], env);

    const r = await workerRun(ws, 'Hang', ['--once'], env);
    expect(executions(ws).map((e) => `${e.id}#${e.attempt}`)).toEqual(['h1#1']);
    const [s, [dl]] = await Promise.all([stats(ws, 'hang'), deadLetters(ws, 'hang')]);
    // The task must not be left leased by a process that is gone.
    expect(s).toMatchObject({ leased: 0, dead: 1 });
    expect(r.code, `stdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(50);
    expect(r.stdout).toMatch(/claimed 1, completed 0, dead-lettered 1 \(contract 0\) .*\(exit 50\)/);
    expect(dl?.reason).toMatchObject({ attempt: 1, kind: 'timeout', class: 'TaskTimeoutError' });
  });

  it("a worker's own policy defaults are honoured: Overrun's timeout_ms 200 ends its 2 s attempt (timeout, exit 50)", async () => {
    const ws = tempWorkspace({ demo: false });
    const env = { METASPN_QUEUE_MAX_ATTEMPTS: '1' };
    await enqueue(ws, 'overrun', [{ id: 'o1', payload: { ms: 2000 } }], env);

    const r = await workerRun(ws, 'Overrun', ['--once'], env);
    expect(r.code, `stdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(50);
    const [dl] = await deadLetters(ws, 'overrun');
    expect(dl?.reason).toMatchObject({ attempt: 1, kind: 'timeout', class: 'TaskTimeoutError', message: 'task timed out after 200 ms' });
  });

  it('metaspn.config.json queues.<name> is honoured: max_attempts 2 dead-letters after two attempts', async () => {
    const ws = tempWorkspace({ demo: false, config: { queues: { flaky: { max_attempts: 2 } } } });
    const env = { METASPN_QUEUE_BACKOFF_BASE_MS: '0', METASPN_QUEUE_BACKOFF_CAP_MS: '0' };
    await enqueue(ws, 'flaky', [{ id: 'f1', payload: { fail: 10 } }], env);

    const r = await workerRun(ws, 'FailTimes', ['--once'], env);
    expect(executions(ws).map((e) => e.attempt)).toEqual([1, 2]);
    expect(r.code, r.stderr).toBe(50);
    const [dl] = await deadLetters(ws, 'flaky');
    expect(dl).toMatchObject({ attempt_count: 2, task: { max_attempts: 2 } });
  });

  it('--max-tasks 1 claims exactly one task and exits', async () => {
    const ws = tempWorkspace({ demo: false });
    await enqueue(
      ws,
      'ok',
      ['a', 'b', 'c'].map((id) => ({ id, payload: { id } })),
    );

    // No --once: the limit alone must end the run.
    const r = await workerRun(ws, 'Succeed', ['--max-tasks', '1']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^worker ok: claimed 1, completed 1 in /);
    expect(executions(ws)).toHaveLength(1);
    expect(await stats(ws, 'ok')).toMatchObject({ ready: 2, leased: 0, completed: 1 });
  });

  it('queue enqueue --file with a malformed line 3 exits 20 naming file:3 and enqueues nothing', async () => {
    const ws = tempWorkspace({ demo: false });
    const f = join(ws, 'bad.jsonl');
    writeFileSync(f, ['{"id":"m1","payload":{}}', '{"id":"m2","payload":{}}', '{"id":"m3","payload":{', '{"id":"m4","payload":{}}', ''].join('\n'));
    // One good task first, so the queue exists and stats can show what the bad file added.
    const [, r] = await Promise.all([enqueue(ws, 'ok', [{ id: 'before', payload: {} }]), run(['queue', 'enqueue', 'ok', '--workspace', ws, '--file', f], { cwd: ws })]);
    expect(r.code).toBe(20);
    expect(r.stderr).toContain(`${f}:3: not valid JSON`);
    expect(r.stderr).not.toMatch(NO_STACK);
    expect(r.stdout).toBe('');
    expect(await stats(ws, 'ok')).toMatchObject({ ready: 1, scheduled: 0, leased: 0, completed: 0, dead: 0 });
  });

  it('pause: worker run --once claims nothing; resume: it drains the queue', async () => {
    const ws = tempWorkspace({ demo: false });
    await enqueue(
      ws,
      'ok',
      ['p1', 'p2'].map((id) => ({ id, payload: { id } })),
    );

    const p = await cliIn(['queue', 'pause', 'ok', '--workspace', ws]);
    expect(p.code, p.stderr).toBe(0);
    expect(p.stdout).toBe('ok: paused\n');

    const r1 = await workerRun(ws, 'Succeed', ['--once']);
    expect(r1.code, r1.stderr).toBe(0);
    expect(r1.stdout).toMatch(/^worker ok: claimed 0, completed 0 in /);
    expect(executions(ws)).toEqual([]);
    expect(await stats(ws, 'ok')).toMatchObject({ paused: true, ready: 2, leased: 0 });

    const q = await cliIn(['queue', 'resume', 'ok', '--workspace', ws]);
    expect(q.code, q.stderr).toBe(0);
    expect(q.stdout).toBe('ok: resumed\n');

    const r2 = await workerRun(ws, 'Succeed', ['--once']);
    expect(r2.code, r2.stderr).toBe(0);
    expect(r2.stdout).toMatch(/^worker ok: claimed 2, completed 2 in /);
    expect(
      executions(ws)
        .map((e) => e.id)
        .sort(),
    ).toEqual(['p1', 'p2']);
    expect(await stats(ws, 'ok')).toMatchObject({ paused: false, ready: 0, completed: 2 });
  });

  it('graceful stop: SIGTERM during a Slow task; the process exits by itself, nothing stays leased, nothing is lost', async () => {
    const ws = tempWorkspace({ demo: false });
    const N = 6;
    const ids = Array.from({ length: N }, (_, i) => `s${i}`);
    await enqueue(
      ws,
      'slow',
      ids.map((id) => ({ id, payload: { ms: 500 } })),
    );

    const w = start(['worker', 'run', spec('Slow'), '--workspace', ws, '--poll-ms', '50', '--json'], { cwd: ws });
    await waitFor(() => executions(ws).length >= 1, 20_000, 'the first execution');
    w.child.kill('SIGTERM');
    const r = await exit(w);
    expect(r.signal).toBeNull();
    const sum = JSON.parse(r.stdout) as { claimed: number; completed: number; released: number; abandoned: number; forced: boolean; lease_lost: number; exit_code: number };
    expect(r.code).toBe(sum.exit_code);
    expect(sum.forced).toBe(false);
    expect(sum.abandoned).toBe(0);
    expect(sum.lease_lost).toBe(0);
    // Running tasks finish; buffered ones are given back (exit 11 says some were).
    expect(sum.claimed).toBe(sum.completed + sum.released);
    expect(r.code).toBe(sum.released > 0 ? 11 : 0);

    const s = await stats(ws, 'slow');
    expect(s.leased).toBe(0);
    expect(s.ready + s.scheduled + s.completed + s.dead).toBe(N);
    expect(s.completed).toBe(sum.completed);
    const ran = new Set(executions(ws).map((e) => e.id));
    expect(ran.size).toBe(s.completed);
    expect(executions(ws).length).toBe(ran.size);
  });
});
