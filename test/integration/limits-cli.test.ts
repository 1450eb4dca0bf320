// Bounds at the door, driven through the real CLI: no subcommand, flags out of range, waits past
// Node's timer limit, numbers JSON cannot carry, a signal value that overflows the S1 math, config typos.
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exit, spec, start, tempWorkspace, waitFor, type Run } from './cli.js';
import { cliIn } from './in-process.js';

const STACK = /\n\s+at /;

/** stderr holds one `error:` line (and at most a hint), no stack trace. */
function oneError(stderr: string): string {
  expect(stderr).not.toMatch(STACK);
  const errors = stderr.split('\n').filter((l) => l.startsWith('error:'));
  expect(errors, stderr).toHaveLength(1);
  return errors[0]!;
}

/** Runs the CLI for each argv, two at a time (two cores, shared with other tests). */
async function runAll(argvs: string[][]): Promise<Run[]> {
  const out: Run[] = [];
  for (let i = 0; i < argvs.length; i += 2) out.push(...(await Promise.all(argvs.slice(i, i + 2).map((a) => cliIn(a, { ms: 60_000 })))));
  return out;
}

describe('commands without a subcommand', () => {
  it('exit 64 with the help on stderr and nothing on stdout (a broken cron line is not a success)', async () => {
    const groups = [[], ['s1'], ['queue'], ['queue', 'deadletter']];
    const runs = await runAll([...groups, ['help']]);
    groups.forEach((g, i) => {
      const r = runs[i]!;
      expect({ group: g, code: r.code, stdout: r.stdout }).toEqual({ group: g, code: 64, stdout: '' });
      expect(r.stderr).toContain(`Usage: metaspn${g.length ? ` ${g.join(' ')}` : ''} [options] [command]`);
    });
    const help = runs[groups.length]!;
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: metaspn');
  });
});

describe('flags out of range', () => {
  it('exit 64 naming the flag and its range', async () => {
    const ws = tempWorkspace({ demo: false });
    const cases: [string[], RegExp][] = [
      [['worker', 'run', spec('Succeed'), '--workspace', ws, '--poll-ms', '3000000000'], /--poll-ms must be a whole number from 1 to 86400000 ms \(1 day\), got "3000000000"/],
      [['serve', '--workspace', ws, '--alert-interval-sec', '3000000'], /--alert-interval-sec must be a whole number from 0 to 86400 s \(1 day\)/],
      [['serve', '--workspace', ws, '--port', '99999'], /--port must be a whole number from 1 to 65535/],
      [['worker', 'run', spec('Succeed'), '--workspace', ws, '--concurrency', '5000'], /--concurrency must be a whole number from 1 to 1024/],
      [['s1', 'backfill', '--workspace', ws, '--start', '2026-01-01', '--end', '2026-01-02', '--max-parallel', '100000'], /--max-parallel must be a whole number from 1 to 64/],
      [['s1', 'run-local', '--workspace', ws, '--date', '2026-01-02', '--lock-wait-sec', '99999999999'], /--lock-wait-sec must be a whole number from 0 to 86400/],
    ];
    const runs = await runAll(cases.map(([args]) => args));
    runs.forEach((r, i) => {
      expect(r.code, r.stderr).toBe(64);
      expect(oneError(r.stderr)).toMatch(cases[i]![1]);
    });
    expect(readdirSync(ws)).toEqual(['inputs']);
  });
});

describe('waits past 2^31-1 ms', () => {
  it('s1 run-local waiting out a 30-day retry sleeps (no TimeoutOverflowWarning, no hot loop) until stopped', async () => {
    const ws = tempWorkspace();
    mkdirSync(join(ws, 'store', 's1_summaries.jsonl'), { recursive: true }); // the last stage fails (EISDIR) and retries
    const env = { METASPN_QUEUE_BACKOFF_BASE_MS: '2592000000', METASPN_QUEUE_BACKOFF_CAP_MS: '2592000000' };
    const p = start(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15'], { cwd: ws, env });
    const log = join(ws, 'logs', 'metaspn.jsonl');
    const retried = (): boolean => existsSync(log) && readFileSync(log, 'utf8').includes('"outcome":"retry_scheduled"');
    // Patient: on a loaded 2-core machine the three stages before it can take a while.
    await waitFor(retried, 100_000, 'the retry of publish_season_summary');
    await new Promise((r) => setTimeout(r, 1500));
    expect(p.child.exitCode).toBeNull();
    p.child.kill('SIGINT');
    const r = await exit(p, 30_000);
    expect(r.stderr).not.toContain('TimeoutOverflowWarning');
    expect(r.stdout).toContain('not published');
    // One failed attempt: the wait did not spin into more.
    expect(readFileSync(log, 'utf8').split('"outcome":"retry_scheduled"').length - 1).toBe(1);
  }, 150_000);
});

describe('numbers JSON cannot carry, at enqueue', () => {
  it('--payload 1e400 or a 20-digit integer: exit 20 naming the limit, nothing written', async () => {
    const ws = tempWorkspace({ demo: false });
    const [inf, big, deep] = (await runAll([
      ['queue', 'enqueue', 'q', '--workspace', ws, '--payload', '{"a":1e400}'],
      ['queue', 'enqueue', 'q', '--workspace', ws, '--payload', '{"a":12345678901234567890}'],
      ['queue', 'enqueue', 'q', '--workspace', ws, '--payload', `${'['.repeat(65)}${']'.repeat(65)}`],
    ])) as [Run, Run, Run];
    expect(inf.code).toBe(20);
    expect(oneError(inf.stderr)).toMatch(/^error: --payload: number 1e400 is beyond the largest number/);
    expect(big.code).toBe(20);
    expect(oneError(big.stderr)).toMatch(/^error: --payload: integer 12345678901234567890 is beyond 2\^53-1/);
    expect(deep.code).toBe(20);
    expect(oneError(deep.stderr)).toMatch(/nested deeper than 64 levels/);
    expect(readdirSync(ws)).toEqual(['inputs']);
  });

  it('--file with 1e400 on line 2: exit 20 naming file:2, nothing enqueued; a typo in a key names the nearest', async () => {
    const ws = tempWorkspace({ demo: false });
    const f = join(ws, 't.jsonl');
    writeFileSync(f, '{"id":"a","payload":{}}\n{"id":"b","payload":{"n":1e400}}\n');
    const g = join(ws, 'u.jsonl');
    writeFileSync(g, '{"id":"a","payload":{}}\n{"id":"b","payload":{},"max_atempts":2}\n');
    const [r, t] = await Promise.all([cliIn(['queue', 'enqueue', 'q', '--workspace', ws, '--file', f]), cliIn(['queue', 'enqueue', 'q', '--workspace', ws, '--file', g])]);
    expect(r.code).toBe(20);
    expect(oneError(r.stderr)).toBe(`error: ${f}:2: number 1e400 is beyond the largest number JSON readers carry (about 1.8e308); it would become Infinity`);
    expect(t.code).toBe(20);
    expect(oneError(t.stderr)).toMatch(/u\.jsonl:2: unknown key "max_atempts" \(did you mean "max_attempts"\?\)/);
    expect(existsSync(join(ws, 'queue'))).toBe(false);
  });
});

describe('signals', () => {
  it('a value near 1e303 is exit 20 naming file, line and rule, before anything is written', async () => {
    const ws = tempWorkspace();
    const input = join(ws, 'inputs', 's1_signals.jsonl');
    const lines = readFileSync(input, 'utf8').trimEnd().split('\n');
    lines.splice(9, 0, '{"signal_id":"huge","ts":"2026-01-14T10:00:00Z","subject_ref":"creator:huge","kind":"follow","value":1e303}');
    writeFileSync(input, `${lines.join('\n')}\n`);
    const r = await cliIn(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15']);
    expect(r.code, r.stderr).toBe(20);
    expect(oneError(r.stderr)).toMatch(new RegExp(`^error: ${input.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:10: value 1e\\+303 is too large: the weighted sum`));
    expect(existsSync(join(ws, 'store')) ? readdirSync(join(ws, 'store')).filter((f) => f.endsWith('.jsonl')) : []).toEqual([]);
    expect(existsSync(join(ws, 'manifests'))).toBe(false);
    expect(existsSync(join(ws, 'queue'))).toBe(false);
  });
});

describe('config', () => {
  it('a typo under queues.<worker> is exit 20 naming the key and the nearest; doctor reports it instead of saying clean', async () => {
    const ws = tempWorkspace({ demo: false, config: { queues: { project_rewards: { max_attempt: 3 } } } });
    const [retry, doctor] = await Promise.all([cliIn(['queue', 'retry', 'project_rewards', '--workspace', ws]), cliIn(['doctor', '--workspace', ws])]);
    expect(retry.code).toBe(20);
    expect(oneError(retry.stderr)).toMatch(/metaspn\.config\.json: queues\.project_rewards: unknown key "max_attempt" \(did you mean "max_attempts"\?\)/);
    expect(doctor.code, doctor.stdout).toBe(20);
    expect(doctor.stdout).toMatch(/^ERROR\s+metaspn\.config\.json: queues\.project_rewards: unknown key "max_attempt"/);
    expect(doctor.stdout).not.toContain('clean');
  });
});
