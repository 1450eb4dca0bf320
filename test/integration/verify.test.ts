// `metaspn verify` against a real `metaspn serve`, and against stand-ins that are broken on purpose.
import { createServer, type Server } from 'node:http';
import { describe, expect, it } from 'vitest';
import { tempWorkspace } from './cli.js';
import { cliIn } from './in-process.js';
import { freePort, startServe } from './serve-process.js';

const TOKEN = 'verify-token-abcdef';

async function verify(url: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}) {
  return await cliIn(['verify', '--url', url, ...extra], { env });
}

const failLines = (stdout: string): string[] => stdout.split('\n').filter((l) => l.startsWith('FAIL '));

interface FakeOptions {
  /** What an unauthenticated POST gets. */
  writeStatus: number;
  metrics?: string;
  env?: 'development' | 'production';
}

/** A stand-in for `metaspn serve` that gets one thing wrong. */
async function fakeServer(o: FakeOptions): Promise<{ url: string; posts: string[]; close(): Promise<void> }> {
  const posts: string[] = [];
  const metrics = o.metrics ?? '# HELP metaspn_queue_ready Tasks ready to run.\n# TYPE metaspn_queue_ready gauge\nmetaspn_queue_ready{worker="a"} 0\n';
  const server: Server = createServer((req, res) => {
    const json = (status: number, body: unknown): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    let body = '';
    req.on('data', (d) => (body += String(d)));
    req.on('end', () => {
      if (req.method === 'POST') {
        posts.push(`${req.url} ${req.headers.authorization ?? '-'} ${body}`);
        return json(o.writeStatus, o.writeStatus < 300 ? { worker: 'x', retried: [] } : { error: 'no' });
      }
      if (req.url === '/health') return json(200, { status: 'ok', version: '9.9.9', uptime_s: 1 });
      if (req.url === '/health/test') return json(200, { status: 'ok', checks: [{ name: 'workspace_rw', ok: true, detail: '' }] });
      if (req.url === '/metrics') return void res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(metrics);
      if (req.url === '/api/settings') return json(200, { env: o.env ?? 'development', write_enabled: true, signing: false });
      if (req.url === '/api/queues') return json(200, { schema_version: 1, queues: [] });
      return json(404, { error: 'not found' });
    });
  });
  server.keepAliveTimeout = 1;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const a = server.address();
  return { url: `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`, posts, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe('metaspn verify', () => {
  it('passes against a development and a production server (writes refused with 401/403, and 403 in production)', async () => {
    const ws = tempWorkspace();
    const [dev, prod] = await Promise.all([startServe(ws, { env: { METASPN_ADMIN_TOKEN: TOKEN } }), startServe(ws, { env: { METASPN_ADMIN_TOKEN: TOKEN, METASPN_ENV: 'production' } })]);
    try {
      const d = await verify(dev.url, ['--token', TOKEN]);
      expect(d.code, d.stdout + d.stderr).toBe(0);
      expect(failLines(d.stdout)).toEqual([]);
      for (const name of ['health', 'readiness', 'metrics', 'settings', 'write_without_token', 'write_wrong_token', 'token_reads']) expect(d.stdout).toMatch(new RegExp(`^PASS ${name}: `, 'm'));
      expect(d.stdout).toMatch(/^PASS write_without_token: .* refused with 401: missing Authorization/m);
      expect(d.stdout).toMatch(/^PASS write_wrong_token: .* refused with 401: invalid token/m);
      expect(d.stdout).toMatch(/^STATUS=PASS http:\/\/127\.0\.0\.1:\d+ \(development\)$/m);

      // The token from the environment, and JSON output.
      const p = await verify(prod.url, ['--json'], { METASPN_ADMIN_TOKEN: TOKEN });
      expect(p.code, p.stdout).toBe(0);
      const j = JSON.parse(p.stdout);
      expect(j).toMatchObject({ env: 'production', status: 'pass', exit_code: 0 });
      const byName = Object.fromEntries(j.checks.map((c: { name: string; ok: boolean; detail: string }) => [c.name, c]));
      expect(byName.production_read_only.ok).toBe(true);
      expect(byName.write_without_token.detail).toMatch(/refused with 403: writes are disabled in PRODUCTION/);
      expect(byName.write_wrong_token.detail).toMatch(/refused with 403/);
    } finally {
      await Promise.all([dev.stop(), prod.stop()]);
    }
    // verify changed nothing: the probe retried a dead letter that does not exist, and was refused anyway.
    const stats = await cliIn(['queue', 'stats', 'update_attention_scores', '--workspace', ws, '--json']);
    expect(JSON.parse(stats.stdout)).toMatchObject({ ready: 0, dead: 0, paused: false });
  });

  it('fails (exit 50, one FAIL line) when readiness fails', async () => {
    const ws = tempWorkspace();
    // More free disk than any machine has: /health/test answers 503 naming disk_free.
    const s = await startServe(ws, { env: { METASPN_ADMIN_TOKEN: TOKEN }, args: ['--min-free-mb', '16777216'] });
    try {
      const r = await verify(s.url, ['--token', TOKEN]);
      expect(r.code).toBe(50);
      const fails = failLines(r.stdout);
      expect(fails).toHaveLength(1);
      expect(fails[0]).toMatch(/^FAIL readiness: GET \/health\/test answered 503: disk_free \(\d+ MiB free \(threshold 16777216 MiB\)\)$/);
      expect(r.stdout).toMatch(/^STATUS=FAIL failed=readiness \(exit 50\)$/m);
    } finally {
      await s.stop();
    }
  });

  it('fails when a write is accepted without a token, when metrics are not Prometheus text, and when nothing answers', async () => {
    const open = await fakeServer({ writeStatus: 200 });
    const badMetrics = await fakeServer({ writeStatus: 401, metrics: '<html>metrics</html>\n' });
    const prodWrites = await fakeServer({ writeStatus: 401, env: 'production' });
    try {
      const a = await verify(open.url);
      expect(a.code).toBe(50);
      expect(failLines(a.stdout)).toEqual([expect.stringMatching(/^FAIL write_without_token: POST \/api\/queues\/update_attention_scores\/retry without a token answered 200, expected 401 or 403$/)]);
      expect(open.posts).toEqual(['/api/queues/update_attention_scores/retry - {"task_id":"metaspn-verify-probe"}']);

      const b = await verify(badMetrics.url);
      expect(b.code).toBe(50);
      expect(failLines(b.stdout)).toEqual([expect.stringMatching(/^FAIL metrics: not valid Prometheus text: line 1: not a sample/)]);

      // Production must be read-only and refuse with 403, not 401.
      const c = await verify(prodWrites.url);
      expect(c.code).toBe(50);
      expect(failLines(c.stdout).map((l) => l.split(':')[0])).toEqual(['FAIL production_read_only', 'FAIL write_without_token']);
    } finally {
      await Promise.all([open.close(), badMetrics.close(), prodWrites.close()]);
    }

    const nobody = await verify(`http://127.0.0.1:${await freePort()}`, ['--timeout-ms', '3000']);
    expect(nobody.code).toBe(50);
    expect(failLines(nobody.stdout).length).toBeGreaterThanOrEqual(4);
    expect(nobody.stdout).toMatch(/^FAIL health: GET \/health: ECONNREFUSED/m);

    const bad = await verify('not a url');
    expect(bad.code).toBe(64);
    expect(bad.stderr).toMatch(/--url must be an http\(s\) URL/);
  });
});
