import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { BIN, cliEnv, tempWorkspace } from './cli.js';

/** Runs the CLI with its stdout into a pipe whose reader exits without reading (`| true`); the CLI's exit code and stderr. */
function intoClosedPipe(args: string[]): { code: number; stderr: string } {
  const quoted = args.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  const r = spawnSync(
    'bash',
    ['-c', `node '${BIN}' ${quoted} 2>/tmp/.metaspn-closed-pipe-$$ | true; code=\${PIPESTATUS[0]}; cat /tmp/.metaspn-closed-pipe-$$ >&2; rm -f /tmp/.metaspn-closed-pipe-$$; exit $code`],
    { encoding: 'utf8', env: cliEnv() },
  );
  return { code: r.status ?? -1, stderr: r.stderr };
}

describe('a reader that goes away', () => {
  it('metaspn … | true: the command exits with its own code, no EPIPE stack trace', () => {
    const help = intoClosedPipe(['--help']);
    expect(help.stderr).not.toMatch(/EPIPE|node:events|at .*\(/);
    expect(help.code).toBe(0);
    // A run goes on when nobody reads what it prints: it publishes and exits 0.
    const ws = tempWorkspace();
    const run = intoClosedPipe(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-05']);
    expect(run.stderr).not.toMatch(/EPIPE|node:events/);
    expect(run.code).toBe(0);
  }, 60_000);
});
