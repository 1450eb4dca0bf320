// `metaspn serve` at its edges, as a real process: an address it cannot listen on (a bad --host,
// a port in use) is the operator's command line, not an unexpected failure; a path segment past
// the router's length and a body that is not UTF-8 are refused with what is wrong with them.
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { run, tempWorkspace, type Run } from './cli.js';
import { http, startServe } from './serve-process.js';

/** stderr holds exactly one `error:` line (and a hint), no stack trace; returns it. */
function oneError(r: Run): string {
  expect(r.stderr).not.toMatch(/\n\s+at /);
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('error:'));
  expect(errors, r.stderr).toHaveLength(1);
  return errors[0]!;
}

describe('serve: an address it cannot listen on is a bad invocation (64) naming the flag', () => {
  it('an empty --host, a --host that does not resolve or is not this machine, a --port in use', async () => {
    const ws = tempWorkspace({ demo: false });
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    const port = (busy.address() as { port: number }).port;
    try {
      const cases: [string[], RegExp][] = [
        [['--host', '', '--port', '1'], /^error: --host must name an address to listen on, got ""$/],
        [['--host', 'no_such_host.invalid', '--port', '1'], /^error: --host no_such_host\.invalid: cannot listen there \(ENOTFOUND: the name does not resolve\)$/],
        [['--host', '192.0.2.1', '--port', '1'], /^error: --host 192\.0\.2\.1: cannot listen there \(EADDRNOTAVAIL: not an address of this machine\)$/],
        [['--port', String(port)], new RegExp(`^error: --port ${port}: cannot listen there \\(EADDRINUSE: another process listens on 127\\.0\\.0\\.1:${port}\\)$`)],
      ];
      for (const [args, line] of cases) {
        const r = await run(['serve', '--workspace', ws, '--alert-interval-sec', '0', ...args]);
        expect({ args, code: r.code }).toEqual({ args, code: 64 });
        expect(oneError(r)).toMatch(line);
      }
    } finally {
      await new Promise((r) => busy.close(r));
    }
  });
});

describe('serve: requests at the edges', () => {
  it('a path segment longer than 100 characters is 414 naming the limit; a body that is not UTF-8 is 400, nothing added; an unknown route is 404 in the error document', async () => {
    const ws = tempWorkspace({ demo: false });
    const token = 'tok-tester-serve-bounds';
    const s = await startServe(ws, { env: { METASPN_ADMIN_TOKEN: token } });
    try {
      const long = await http('GET', `${s.url}/api/queues/${'a'.repeat(101)}`);
      expect(long.status).toBe(414);
      expect(long.json).toEqual({ schema_version: 1, error: 'a segment of the request path is longer than 100 characters (queue names and run ids are at most 100)' });
      const atLimit = await http('GET', `${s.url}/api/queues/${'a'.repeat(100)}`);
      expect(atLimit.status).toBe(404);

      const bytes = Buffer.concat([Buffer.from('{"id":"nu1","payload":{"s":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}}')]);
      const res = await fetch(`${s.url}/api/queues/bytes_q/tasks`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: bytes,
        signal: AbortSignal.timeout(15_000),
      });
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ schema_version: 1, error: 'the request body is refused: not UTF-8 (byte 0xff at byte 29); send it as UTF-8' });
      const ok = await http('POST', `${s.url}/api/queues/bytes_q/tasks`, { token, body: { id: 'ok1', payload: { s: 'é' } } });
      expect(ok.status, ok.text).toBe(201);
      const q = await http('GET', `${s.url}/api/queues/bytes_q`);
      expect((q.json as { ready: number }).ready).toBe(1);

      // A route that does not exist answers the documented error document, not the framework's.
      const put = await http('PUT', `${s.url}/api/queues/bytes_q/pause`, { token, body: {} });
      expect(put.status).toBe(404);
      expect(put.json).toEqual({ schema_version: 1, error: 'no route PUT /api/queues/bytes_q/pause', hint: 'docs/OPS.md lists the routes' });
      const nope = await http('GET', `${s.url}/api/nope?a=1&a=2`);
      expect(nope.status).toBe(404);
      expect(nope.json).toEqual({ schema_version: 1, error: 'no route GET /api/nope', hint: 'docs/OPS.md lists the routes' });
    } finally {
      await s.stop();
    }
  });
});
