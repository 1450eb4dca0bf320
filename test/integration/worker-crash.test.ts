// Crash tests with real processes: SIGKILLed workers, a stopped worker whose lease expires, and
// several processes (an enqueuer and two workers) on one queue.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exit, type Proc, spec, start, tempWorkspace, waitFor } from './cli.js';
import { cliIn } from './in-process.js';

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function alive(p: Proc): boolean {
  return p.child.exitCode === null && p.child.signalCode === null;
}

interface Stats {
  ready: number;
  scheduled: number;
  leased: number;
  completed: number;
  dead: number;
}

/** Reads and enqueues run in this process: what these tests crash are the workers. */
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

async function enqueue(ws: string, queue: string, file: string, tasks: { id: string; payload: unknown }[]): Promise<void> {
  const f = join(ws, file);
  writeFileSync(f, tasks.map((t) => JSON.stringify(t)).join('\n') + '\n');
  const r = await cliIn(['queue', 'enqueue', queue, '--workspace', ws, '--file', f]);
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout).toContain(`enqueued ${tasks.length} task(s) to ${queue}; 0 already present`);
}

interface TaskError {
  attempt: number;
  kind: string;
  message: string;
}

/** The records of the current generation of a queue's log, in order. */
function logRecords(ws: string, queue: string): { t: string }[] {
  const dir = join(ws, 'queue', queue);
  const log = readdirSync(dir)
    .filter((f) => /^log\.\d+\.jsonl$/.test(f))
    .sort()
    .pop()!;
  return readFileSync(join(dir, log), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { r: { t: string } }).r);
}

/** The error history of a task, from the newest full record of it in its queue log (docs: one checksummed record a line). */
function errorHistory(ws: string, queue: string, id: string): TaskError[] {
  const dir = join(ws, 'queue', queue);
  const log = readdirSync(dir)
    .filter((f) => /^log\.\d+\.jsonl$/.test(f))
    .sort()
    .pop()!;
  let errors: TaskError[] | null = null;
  for (const line of readFileSync(join(dir, log), 'utf8').split('\n')) {
    if (!line) continue;
    const rec = (JSON.parse(line) as { r: { t: string; task?: { id: string; errors: TaskError[] }; id?: string; a?: number; e?: Omit<TaskError, 'attempt'> } }).r;
    if (rec.task?.id === id) errors = rec.task.errors;
    // A short fail (docs/QUEUE-FORMAT.md): the failure's error after the task's record before it.
    else if (rec.t === 'fail' && rec.id === id && rec.e) errors = [...(errors ?? []), { ...rec.e, attempt: rec.a! }];
  }
  if (errors === null) throw new Error(`no record of task ${id} in ${log}`);
  return errors;
}

interface Summary {
  claimed: number;
  completed: number;
  lease_lost: number;
  released: number;
  exit_code: number;
}

describe('worker crashes', () => {
  it('Crash fixture: the worker dies by SIGKILL mid-task; the next --once reclaims the task at once (owner gone) and completes attempt 2', async () => {
    const ws = tempWorkspace({ demo: false });
    await enqueue(ws, 'crash', 'tasks.jsonl', [{ id: 'x1', payload: {} }]);

    const first = start(['worker', 'run', spec('Crash'), '--workspace', ws, '--once'], { cwd: ws });
    const r1 = await exit(first);
    expect(r1.signal).toBe('SIGKILL');
    expect(await stats(ws, 'crash')).toMatchObject({ leased: 1, completed: 0 });
    // Its start is in its own start-mark file only (docs/QUEUE-FORMAT.md, "Start marks"), not in the log.
    const starts = join(ws, 'queue', 'crash', 'starts');
    const [markFile, ...others] = readdirSync(starts);
    expect(others).toEqual([]);
    expect(markFile).toMatch(new RegExp(`^${first.child.pid}-[0-9a-f]{8}\\.[0-9a-f]{8}\\.jsonl$`));
    const marks = readFileSync(join(starts, markFile!), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { r: unknown }).r);
    expect(marks).toEqual([expect.objectContaining({ t: 'owner', pid: first.child.pid }), { t: 'started', l: [['x1', 1]] }]);
    expect(logRecords(ws, 'crash').filter((r) => r.t === 'start')).toEqual([]);

    // Default lease is 60 s: only the dead owner's pid lets this run take the task now.
    // The next worker need not be a process of its own: what it must find is the killed one's state.
    const r2 = await cliIn(['worker', 'run', spec('Crash'), '--workspace', ws, '--once']);
    expect(r2.code, r2.stderr).toBe(0);
    expect(r2.stdout).toMatch(/^worker crash: claimed 1, completed 1 in /);

    const ex = executions(ws);
    expect(ex.map((e) => `${e.id}#${e.attempt}`)).toEqual(['x1#1', 'x1#2']);
    expect(ex[0]!.pid).toBe(first.child.pid);
    expect(ex[1]!.pid).not.toBe(first.child.pid);
    const [s, dead] = await Promise.all([stats(ws, 'crash'), cliIn(['queue', 'deadletter', 'list', 'crash', '--workspace', ws])]);
    expect(s).toMatchObject({ ready: 0, scheduled: 0, leased: 0, completed: 1, dead: 0 });
    expect(dead.stdout).toBe('no dead letters for crash\n');
    const errors = errorHistory(ws, 'crash', 'x1');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ attempt: 1, kind: 'owner_gone' });
    expect(errors[0]!.message).toContain(`worker process ${first.child.pid} `);
    // The reclaim read the dead worker's marks and dropped its file; the second worker closed its own.
    expect(readdirSync(starts)).toEqual([]);
  });

  it('SIGKILL a worker mid-task (Slow, 2 s): another worker recovers the task with its attempt counted', async () => {
    const ws = tempWorkspace({ demo: false });
    await enqueue(ws, 'slow', 'tasks.jsonl', [{ id: 'k1', payload: { ms: 2000 } }]);

    const a = start(['worker', 'run', spec('Slow'), '--workspace', ws], { cwd: ws });
    await waitFor(() => executions(ws).length === 1, 20_000, 'the first execution');
    a.child.kill('SIGKILL');
    expect((await exit(a)).signal).toBe('SIGKILL');
    expect(await stats(ws, 'slow')).toMatchObject({ leased: 1, completed: 0 });

    const b = await cliIn(['worker', 'run', spec('Slow'), '--workspace', ws, '--once']);
    expect(b.code, b.stderr).toBe(0);
    expect(b.stdout).toMatch(/^worker slow: claimed 1, completed 1 in /);
    const ex = executions(ws);
    expect(ex.map((e) => `${e.id}#${e.attempt}`)).toEqual(['k1#1', 'k1#2']);
    expect(ex[0]!.pid).toBe(a.child.pid);
    expect(await stats(ws, 'slow')).toMatchObject({ ready: 0, leased: 0, completed: 1, dead: 0 });
    expect(errorHistory(ws, 'slow', 'k1')).toMatchObject([{ attempt: 1, kind: 'owner_gone' }]);
  });

  it('isolation process: SIGKILL the worker mid-task; its handler process goes with it, and another worker recovers the task', async () => {
    const ws = tempWorkspace({ demo: false });
    // Stall: attempt 1 waits for a gate that never comes; attempt 2 returns at once.
    await enqueue(ws, 'stall', 'tasks.jsonl', [{ id: 'k2', payload: {} }]);

    const a = start(['worker', 'run', spec('Stall'), '--workspace', ws, '--isolation', 'process'], { cwd: ws });
    await waitFor(() => executions(ws).length === 1, 20_000, 'the first execution');
    const handlerPid = executions(ws)[0]!.pid;
    expect(handlerPid).not.toBe(a.child.pid);
    a.child.kill('SIGKILL');
    expect((await exit(a)).signal).toBe('SIGKILL');
    // The child sees its channel to the worker close and exits: no handler outlives its worker.
    await waitFor(() => !pidAlive(handlerPid), 20_000, `handler process ${handlerPid} to exit`);

    const b = await cliIn(['worker', 'run', spec('Stall'), '--workspace', ws, '--once', '--isolation', 'none']);
    expect(b.code, b.stderr).toBe(0);
    expect(executions(ws).map((e) => `${e.id}#${e.attempt}`)).toEqual(['k2#1', 'k2#2']);
    expect(errorHistory(ws, 'stall', 'k2')).toMatchObject([{ attempt: 1, kind: 'owner_gone' }]);
  });

  it('expired lease: a stopped (SIGSTOP) worker loses its task to another after the lease; its late completion is refused (fencing)', async () => {
    const ws = tempWorkspace({ demo: false });
    const env = { METASPN_QUEUE_LEASE_MS: '500' };
    await enqueue(ws, 'stall', 'tasks.jsonl', [{ id: 'g1', payload: {} }]);

    // The waits below end as soon as what they wait for holds; their limits only catch a hang (one
    // took 21 s of a 20 s limit under load), so they are a minute each.
    const HANG_MS = 60_000;
    // A holds the task (Stall blocks attempt 1 until <ws>/gate exists), then is frozen: alive, but no renewals.
    const a = start(['worker', 'run', spec('Stall'), '--workspace', ws, '--once', '--json'], { cwd: ws, env });
    let b: Proc | null = null;
    try {
      await waitFor(() => executions(ws).length === 1, HANG_MS, 'the first execution');
      a.child.kill('SIGSTOP');

      b = start(['worker', 'run', spec('Stall'), '--workspace', ws, '--poll-ms', '50', '--json'], { cwd: ws, env });
      await waitFor(() => executions(ws).length === 2, HANG_MS, 'the second worker to take the task over');
      await waitFor(async () => (await stats(ws, 'stall')).completed === 1, HANG_MS, 'the second worker to complete it');
      b.child.kill('SIGTERM');
      const rb = await exit(b, HANG_MS);
      expect(rb.code, rb.stderr).toBe(0);
      expect(JSON.parse(rb.stdout)).toMatchObject({ claimed: 1, completed: 1, lease_lost: 0 });

      // A wakes up, finishes its (stale) attempt and tries to complete it: refused.
      writeFileSync(join(ws, 'gate'), '');
      a.child.kill('SIGCONT');
      const ra = await exit(a, HANG_MS);
      const sum = JSON.parse(ra.stdout) as Summary;
      expect(sum).toMatchObject({ claimed: 1, completed: 0, lease_lost: 1, exit_code: 11 });
      expect(ra.code).toBe(11);
    } finally {
      if (alive(a)) {
        a.child.kill('SIGCONT');
        a.child.kill('SIGKILL');
      }
      if (b && alive(b)) b.child.kill('SIGKILL');
    }

    const ex = executions(ws);
    expect(ex.map((e) => `${e.id}#${e.attempt}`)).toEqual(['g1#1', 'g1#2']);
    expect(ex[0]!.pid).toBe(a.child.pid);
    expect(ex[1]!.pid).toBe(b!.child.pid);
    expect(await stats(ws, 'stall')).toMatchObject({ ready: 0, scheduled: 0, leased: 0, completed: 1, dead: 0 });
    // A stopped process is alive: only its lease's expiry handed the task over.
    expect(errorHistory(ws, 'stall', 'g1')).toMatchObject([{ attempt: 1, kind: 'lease_expired' }]);
  }, 300_000);

  it('three processes: an enqueuer adds 2000 tasks in batches while two workers drain one queue; none lost, none completed twice', async () => {
    const ws = tempWorkspace({ demo: false });
    const BATCHES = 4;
    const PER = 500;
    const N = BATCHES * PER;
    const workerArgs = ['worker', 'run', spec('Succeed'), '--workspace', ws, '--poll-ms', '20', '--json'];
    const w1 = start(workerArgs, { cwd: ws });
    const w2 = start(workerArgs, { cwd: ws });
    const all: string[] = [];
    try {
      for (let b = 0; b < BATCHES; b++) {
        const tasks = Array.from({ length: PER }, (_, i) => ({ id: `t${b}-${String(i).padStart(3, '0')}`, payload: { b, i } }));
        all.push(...tasks.map((t) => t.id));
        await enqueue(ws, 'ok', `batch${b}.jsonl`, tasks);
      }
      await waitFor(() => new Set(executions(ws).map((e) => e.id)).size >= N, 30_000, `${N} tasks executed`);
      await waitFor(async () => (await stats(ws, 'ok')).completed === N, 30_000, `stats to show ${N} completed`);
      w1.child.kill('SIGTERM');
      w2.child.kill('SIGTERM');
      const [r1, r2] = await Promise.all([exit(w1), exit(w2)]);
      expect(r1.code, r1.stderr).toBe(0);
      expect(r2.code, r2.stderr).toBe(0);
      const s1 = JSON.parse(r1.stdout) as Summary;
      const s2 = JSON.parse(r2.stdout) as Summary;
      expect(s1.completed + s2.completed).toBe(N);
      expect(s1.claimed + s2.claimed).toBe(N);
    } finally {
      for (const w of [w1, w2]) if (alive(w)) w.child.kill('SIGKILL');
    }

    expect(await stats(ws, 'ok')).toMatchObject({ ready: 0, scheduled: 0, leased: 0, completed: N, dead: 0 });
    const ex = executions(ws);
    const ids = new Set(ex.map((e) => e.id));
    expect([...ids].sort()).toEqual(all.sort());
    const duplicates = ex.length - ids.size;
    expect(duplicates, `duplicate executions: ${duplicates}`).toBe(0);
    expect(ex.every((e) => e.attempt === 1)).toBe(true);
  });
});
