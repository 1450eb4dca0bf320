// What `worker run` prints: on a terminal a live counter line (drawn in place, cleared before each
// warning and before the summary); --verbose a line per task; --quiet nothing but errors.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, cliEnv, run, spec, tempWorkspace } from './cli.js';
import { cliIn } from './in-process.js';

const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;
/** A failed attempt's retry is not due within the run (on a loaded machine a 10 ms backoff would let `--once` retry it). */
const SLOW_RETRY = { METASPN_QUEUE_BACKOFF_BASE_MS: '60000', METASPN_QUEUE_BACKOFF_CAP_MS: '60000' };

/** Enqueues in this process (cliIn): the workers' output is what this file is about. */
async function enqueue(ws: string, queue: string, payloads: object[]): Promise<void> {
  for (const p of payloads) {
    const r = await cliIn(['queue', 'enqueue', queue, '--workspace', ws, '--payload', JSON.stringify(p)]);
    expect(r.code, r.stderr).toBe(0);
  }
}

describe('worker run output', () => {
  it.skipIf(!hasScript)('on a terminal: a live counter redrawn in place, cleared before each warning and before the summary', async () => {
    const ws = tempWorkspace({ demo: false });
    await enqueue(ws, 'flaky', [
      { fail: 1, i: 1 },
      { fail: 0, i: 2 },
      { fail: 0, i: 3 },
    ]);
    // script(1) gives the CLI a pseudo-terminal, as a person at a shell has.
    const cmd = [process.execPath, BIN, 'worker', 'run', spec('FailTimes'), '--workspace', ws, '--once'].map((a) => `'${a}'`).join(' ');
    const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', env: cliEnv(SLOW_RETRY), timeout: 60_000 });
    expect(r.status, r.stdout).toBe(11);
    // The terminal's "clear to the end of the line" as <CLR>, for readable expectations.
    const out = r.stdout.replace(/\r\n/g, '\n').replaceAll('\u001b[K', '<CLR>');
    // The counter: drawn from the line's start over a cleared line, never ending in a newline.
    expect(out).toMatch(/\r<CLR>worker flaky: \d+ completed(, \d+ retry scheduled)? · [\d.]+ tasks\/s · \d+s/);
    // A warning starts on a clean line (the counter cleared first), and is whole on its own line.
    for (const line of out.split('\n').filter((l) => l.includes('warning: ')))
      expect(line).toMatch(/(^|\r<CLR>)warning: task t_\w+ of flaky failed, attempt 1 of 5: Error: flaky failure 1; retry at \S+Z$/);
    // The summary comes last, after the counter is cleared: nothing of the counter is left before it.
    expect(out).toMatch(/\r<CLR>worker flaky: claimed 3, completed 2, retry scheduled 1 in [\d.]+s \(exit 11\)\n$/);
  });

  it('not on a terminal: no counter, the failed attempts and the summary only', async () => {
    const ws = tempWorkspace({ demo: false });
    await enqueue(ws, 'flaky', [{ fail: 1 }, { fail: 0 }]);
    const r = await run(['worker', 'run', spec('FailTimes'), '--workspace', ws, '--once'], { env: SLOW_RETRY });
    expect(r.code).toBe(11);
    expect(r.stderr).not.toContain('\u001b[');
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^warning: task t_\w+ of flaky failed, attempt 1 of 5: Error: flaky failure 1; retry at /)]);
    expect(r.stdout).toMatch(/^worker flaky: claimed 2, completed 1, retry scheduled 1 in [\d.]+s \(exit 11\)\n$/);
  });

  it('--verbose: a line per task as it ends; --quiet: nothing at all, the log keeps everything; not both', async () => {
    const ws = tempWorkspace({ demo: false });
    await enqueue(ws, 'ok', [{ n: 1 }, { n: 2 }]);
    const v = await run(['worker', 'run', spec('Succeed'), '--workspace', ws, '--once', '--verbose']);
    expect(v.code, v.stderr).toBe(0);
    const lines = v.stderr.trim().split('\n');
    expect(lines).toHaveLength(2);
    for (const l of lines) expect(l).toMatch(/^done: task t_\w+ of ok, attempt 1, \d+ ms$/);
    expect(v.stdout).toMatch(/^worker ok: claimed 2, completed 2 in /);

    await enqueue(ws, 'flaky', [{ fail: 1 }]);
    const q = await run(['worker', 'run', spec('FailTimes'), '--workspace', ws, '--once', '--quiet'], { env: SLOW_RETRY });
    expect([q.code, q.stdout, q.stderr]).toEqual([11, '', '']);
    const logged = readFileSync(join(ws, 'logs', 'metaspn.jsonl'), 'utf8');
    expect(logged).toContain('"outcome":"retry_scheduled"');

    const both = await run(['worker', 'run', spec('Succeed'), '--workspace', ws, '--quiet', '--verbose']);
    expect(both.code).toBe(64);
    expect(both.stderr).toBe('error: give --quiet or --verbose, not both\n');
  });
});
