// Failed attempts you can read: one line each, in logs/metaspn.jsonl (pino's `err` object) and on the
// terminal, naming the task, attempt n of m, the error and what happens next; every log line carries
// pid and hostname, and the command line is logged once per process.
import { readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run, spec, tempWorkspace, waitFor } from './cli.js';
import { cliIn } from './in-process.js';

interface Line {
  level: number;
  time: string;
  pid: number;
  hostname: string;
  event?: string;
  cmd?: string;
  msg: string;
  task_id?: string;
  attempt?: string;
  outcome?: string;
  next?: string;
  retry_at?: string;
  err?: { type: string; message: string; stack: string };
}

function logLines(ws: string): Line[] {
  return readFileSync(join(ws, 'logs', 'metaspn.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);
}

/** The lines `metaspn` wrote to stderr, without the empty last one. */
const errLines = (stderr: string): string[] => stderr.split('\n').filter(Boolean);

describe('failed attempts in the log and on the terminal', () => {
  it('a retry, then the dead letters: one line per failed attempt with task, attempt n of m, the error and what happens next', async () => {
    const ws = tempWorkspace({ demo: false });
    writeFileSync(join(ws, 'tasks.jsonl'), `${JSON.stringify({ id: 't1', payload: { fail: 9 }, max_attempts: 2 })}\n`);
    const e = await cliIn(['queue', 'enqueue', 'flaky', '--workspace', ws, '--file', join(ws, 'tasks.jsonl')]);
    expect(e.code, e.stderr).toBe(0);

    const before = Date.now();
    // A retry 2 s later: not due within this run, even on a loaded machine.
    const first = await cliIn(['worker', 'run', spec('FailTimes'), '--workspace', ws, '--once'], { env: { METASPN_QUEUE_BACKOFF_BASE_MS: '2000', METASPN_QUEUE_BACKOFF_CAP_MS: '2000' } });
    expect(first.code, first.stderr).toBe(11);
    const [line1, ...rest1] = errLines(first.stderr);
    expect(rest1).toEqual([]);
    const m = /^warning: task t1 of flaky failed, attempt 1 of 2: Error: flaky failure 1; retry at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)$/.exec(line1 ?? '');
    expect(m, first.stderr).not.toBeNull();
    const retryAt = Date.parse(m![1]!);
    // 2 s ± 10% after the failure.
    expect(retryAt).toBeGreaterThan(before + 1500);
    expect(retryAt).toBeLessThan(Date.now() + 2500);

    await waitFor(() => Date.now() > retryAt, 5_000, 'the retry to be due');
    const second = await cliIn(['worker', 'run', spec('FailTimes'), '--workspace', ws, '--once']);
    expect(second.code, second.stderr).toBe(50);
    expect(errLines(second.stderr)).toEqual(['error: task t1 of flaky failed, attempt 2 of 2: Error: flaky failure 2; dead-lettered: no attempt left']);

    const failures = logLines(ws).filter((l) => l.event === 'task_end' && l.err);
    expect(failures).toHaveLength(2);
    expect(failures[0]).toMatchObject({ level: 40, task_id: 't1', attempt: '1 of 2', outcome: 'retry_scheduled', next: 'retry', retry_at: m![1], err: { type: 'Error', message: 'flaky failure 1' } });
    expect(failures[1]).toMatchObject({ level: 50, task_id: 't1', attempt: '2 of 2', outcome: 'dead', next: 'dead_letter', err: { type: 'Error', message: 'flaky failure 2' } });
    expect(failures[1]!.retry_at).toBeUndefined();
    // pino's error object, with the handler's stack: not a string.
    for (const f of failures) {
      expect(typeof f.err).toBe('object');
      expect(f.err!.stack).toMatch(/^Error: flaky failure \d\n\s+at .*workers\.mjs/);
    }
    expect(failures[0]!.msg).toBe(line1!.replace(/^warning: /, ''));
  });

  it('a contract error is dead-lettered at once, its class named; a payload the schema refuses too', async () => {
    const ws = tempWorkspace({ demo: false });
    expect((await cliIn(['queue', 'enqueue', 'contract', '--workspace', ws, '--payload', '{"n":1}', '--id', 'c1'])).code).toBe(0);
    const r = await cliIn(['worker', 'run', spec('Contract'), '--workspace', ws, '--once']);
    expect(r.code, r.stderr).toBe(20);
    expect(errLines(r.stderr)).toEqual(['error: task c1 of contract failed, attempt 1 of 5: ContractError: missing required column "score"; dead-lettered: a contract error, which no retry can fix']);
    const [f] = logLines(ws).filter((l) => l.err);
    expect(f).toMatchObject({ level: 50, next: 'dead_letter', outcome: 'dead_contract', err: { type: 'ContractError', message: 'missing required column "score"' } });

    // Season 1's worker validates its payload with a schema.
    expect((await cliIn(['queue', 'enqueue', 'project_rewards', '--workspace', ws, '--payload', '{"date":"not-a-date"}', '--id', 'bad-task'])).code).toBe(0);
    const s1 = await cliIn(['worker', 'run', 'metaspn_ops.workers.s1:ProjectRewardsWorker', '--workspace', ws, '--once']);
    expect(s1.code, s1.stderr).toBe(20);
    expect(errLines(s1.stderr)).toEqual([
      expect.stringMatching(/^error: task bad-task of project_rewards failed, attempt 1 of \d+: ContractError: payload invalid: date: .+; dead-lettered: a contract error, which no retry can fix$/),
    ]);
  });

  // Three real processes: what is logged once is logged once per process.
  it('every log line carries pid and hostname; the command line is logged once per process, not on every line', async () => {
    const ws = tempWorkspace({ demo: false });
    expect((await run(['queue', 'enqueue', 'ok', '--workspace', ws, '--payload', '{"n":1}'])).code).toBe(0);
    expect((await run(['worker', 'run', spec('Succeed'), '--workspace', ws, '--once'])).code).toBe(0);
    // A third process, which logs nothing but its command line.
    expect((await run(['queue', 'retry', 'ok', '--workspace', ws, '--dry-run'])).code).toBe(0);
    const lines = logLines(ws);
    expect(lines.length).toBeGreaterThan(4);
    for (const l of lines) {
      expect(typeof l.pid).toBe('number');
      expect(l.hostname).toBe(hostname());
    }
    const pids = [...new Set(lines.map((l) => l.pid))];
    expect(pids).toHaveLength(3);
    for (const pid of pids) {
      const starts = lines.filter((l) => l.pid === pid && l.event === 'command_start');
      expect(starts).toHaveLength(1);
      expect(starts[0]!.cmd).toMatch(/^metaspn (queue enqueue ok|worker run|queue retry ok) /);
    }
    expect(lines.filter((l) => l.cmd !== undefined && l.event !== 'command_start')).toEqual([]);
    // The enqueue's payload is not copied into the log.
    expect(lines.find((l) => l.cmd?.startsWith('metaspn queue enqueue'))!.cmd).toContain("--payload '<redacted>'");
  });
});
