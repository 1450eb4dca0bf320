// `metaspn serve` as a real subprocess on loopback: who may write, signed submissions, back-pressure, /metrics.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parsePrometheusText } from '../../src/ops/reports/prom-text.js';
import { run, spec, tempWorkspace } from './cli.js';
import { cliIn } from './in-process.js';
import { hmacRequest, http, startServe, type Served } from './serve-process.js';

const TOKEN = 'test-admin-token-0123456789';

interface QueueJson {
  queue: string;
  ready: number;
  dead: number;
  paused: boolean;
  completed: number;
}

/**
 * A workspace whose `contract` queue holds one dead letter (the Contract fixture worker dead-letters at once).
 * Made in this process: the server is what these tests drive, not the commands that set it up.
 */
async function workspaceWithDeadLetter(config?: unknown): Promise<{ ws: string; deadId: string }> {
  const ws = tempWorkspace(config === undefined ? {} : { config });
  const e = await cliIn(['queue', 'enqueue', 'contract', '--workspace', ws, '--payload', '{"n":1}']);
  expect(e.code, e.stderr).toBe(0);
  const w = await cliIn(['worker', 'run', spec('Contract'), '--workspace', ws, '--once']);
  expect(w.code, w.stderr).toBe(20);
  const dl = await cliIn(['queue', 'deadletter', 'list', 'contract', '--workspace', ws, '--json']);
  expect(dl.code, dl.stderr).toBe(0);
  const list = (JSON.parse(dl.stdout) as { dead_letters: { task: { id: string } }[] }).dead_letters;
  return { ws, deadId: list[0]!.task.id };
}

async function queues(s: Served): Promise<Record<string, QueueJson>> {
  const r = await http('GET', `${s.url}/api/queues`);
  expect(r.status).toBe(200);
  return Object.fromEntries((r.json as { queues: QueueJson[] }).queues.map((q) => [q.queue, q]));
}

/** Every kind of write the server has, none of which may change anything when refused. */
function writes(deadId: string): { name: string; method: string; path: string; body: unknown }[] {
  return [
    { name: 'retry one', method: 'POST', path: '/api/queues/contract/retry', body: { task_id: deadId } },
    { name: 'retry all', method: 'POST', path: '/api/queues/contract/retry', body: {} },
    { name: 'pause', method: 'POST', path: '/api/queues/contract/pause', body: {} },
    { name: 'enqueue', method: 'POST', path: '/api/queues/contract/tasks', body: { tasks: [{ id: 'forged-1', payload: { forged: true } }] } },
    { name: 'run', method: 'POST', path: '/api/runs', body: { date: '2026-01-15' } },
  ];
}

describe('metaspn serve: who may write', () => {
  it('refuses writes without the token, with a wrong one, from an address not allowed, with writes disabled and in production (401/403), changing nothing', async () => {
    const { ws, deadId } = await workspaceWithDeadLetter();
    const cases: { name: string; env: NodeJS.ProcessEnv; token?: string; status: number; reason: RegExp }[] = [
      { name: 'no token', env: { METASPN_ADMIN_TOKEN: TOKEN }, status: 401, reason: /missing Authorization/ },
      { name: 'wrong token', env: { METASPN_ADMIN_TOKEN: TOKEN }, token: `${TOKEN}x`, status: 401, reason: /invalid token/ },
      { name: 'address not allowed', env: { METASPN_ADMIN_TOKEN: TOKEN, METASPN_ADMIN_IP_ALLOWLIST: '10.0.0.0/8,fd00::/8' }, token: TOKEN, status: 403, reason: /not in METASPN_ADMIN_IP_ALLOWLIST/ },
      { name: 'writes disabled', env: { METASPN_ADMIN_TOKEN: TOKEN, METASPN_ADMIN_WRITE_ENABLED: 'false' }, token: TOKEN, status: 403, reason: /writes are disabled in DEVELOPMENT/ },
      { name: 'production', env: { METASPN_ADMIN_TOKEN: TOKEN, METASPN_ENV: 'production' }, token: TOKEN, status: 403, reason: /writes are disabled in PRODUCTION/ },
    ];
    // One server per case, started together (each reads the same workspace).
    const servers = await Promise.all(cases.map((c) => startServe(ws, { env: c.env })));
    let before: Record<string, QueueJson>;
    try {
      before = await queues(servers[0]!);
      for (const [i, c] of cases.entries()) {
        const s = servers[i]!;
        for (const w of writes(deadId)) {
          const r = await http(w.method, `${s.url}${w.path}`, { body: w.body, ...(c.token !== undefined ? { token: c.token } : {}) });
          expect(`${c.name} / ${w.name}: ${r.status}`).toBe(`${c.name} / ${w.name}: ${c.status}`);
          expect((r.json as { error: string }).error).toMatch(c.reason);
        }
        // Reads stay open on loopback whatever the write settings.
        expect(await queues(s)).toEqual(before);
      }
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
    }
    // Nothing changed: the dead letter is still dead, the queue is not paused, nothing enqueued, no run started.
    expect(before.contract).toMatchObject({ dead: 1, ready: 0, paused: false });
    expect(existsSync(join(ws, 'manifests'))).toBe(false);
    expect(existsSync(join(ws, 'ops', 'events'))).toBe(false);

    // The control: the same requests with the token, in development, from loopback, do write.
    const s = await startServe(ws, { env: { METASPN_ADMIN_TOKEN: TOKEN } });
    try {
      const r = await http('POST', `${s.url}/api/queues/contract/retry`, { token: TOKEN, body: { task_id: deadId } });
      expect(r.status, r.text).toBe(200);
      expect(r.json).toEqual({ schema_version: 1, worker: 'contract', retried: [deadId] });
      expect((await queues(s)).contract).toMatchObject({ dead: 0, ready: 1 });
    } finally {
      await s.stop();
    }
  });
});

describe('metaspn serve: signed task submissions', () => {
  it('refuses unsigned, badly signed and stale requests (401); a replayed event_id gets the first answer and enqueues nothing twice', async () => {
    const ws = tempWorkspace();
    const secret = 'signing-secret-for-tests';
    const s = await startServe(ws, { env: { METASPN_ADMIN_TOKEN: TOKEN, METASPN_SIGNING_SECRET: secret, METASPN_SIGNATURE_TOLERANCE_SEC: '300' } });
    try {
      const url = `${s.url}/api/queues/signed_q/tasks`;
      const body = JSON.stringify({ event_id: 'evt-0001', tasks: [{ id: 'task-a', payload: { a: 1 } }] });
      const now = (): string => String(Math.floor(Date.now() / 1000));
      const hmac = (key: string, ts: string, raw: string): string => hmacRequest(key, ts, 'POST', '/api/queues/signed_q/tasks', raw);
      const signed = (ts: string, raw = body): Record<string, string> => ({ 'x-metaspn-timestamp': ts, 'x-metaspn-signature': hmac(secret, ts, raw) });

      const unsigned = await http('POST', url, { token: TOKEN, raw: body });
      expect(unsigned.status).toBe(401);
      expect(unsigned.text).toMatch(/missing x-metaspn-timestamp or x-metaspn-signature/);

      const old = String(Math.floor(Date.now() / 1000) - 3600);
      const stale = await http('POST', url, { token: TOKEN, raw: body, headers: signed(old) });
      expect(stale.status).toBe(401);
      expect(stale.text).toMatch(/outside the tolerance window of 300s/);

      const future = String(Math.floor(Date.now() / 1000) + 3600);
      expect((await http('POST', url, { token: TOKEN, raw: body, headers: signed(future) })).status).toBe(401);

      const forged = await http('POST', url, { token: TOKEN, raw: body, headers: { ...signed(now()), 'x-metaspn-signature': hmac('another-secret', now(), body) } });
      expect(forged.status).toBe(401);
      expect(forged.text).toMatch(/signature does not match/);

      // A body changed after signing is refused too.
      const tampered = body.replace('"a":1', '"a":2');
      expect((await http('POST', url, { token: TOKEN, raw: tampered, headers: signed(now()) })).status).toBe(401);

      // Nothing so far reached the queue.
      expect(((await http('GET', `${s.url}/api/queues`)).json as { queues: QueueJson[] }).queues).not.toContainEqual(expect.objectContaining({ queue: 'signed_q' }));

      const ts = now();
      const first = await http('POST', url, { token: TOKEN, raw: body, headers: signed(ts) });
      expect(first.status, first.text).toBe(201);
      expect(first.json).toMatchObject({ worker: 'signed_q', added: ['task-a'] });
      expect(first.headers.get('x-metaspn-replayed')).toBeNull();

      // The same request again, and the same event id signed afresh with other tasks: the first answer, nothing enqueued.
      const again = await http('POST', url, { token: TOKEN, raw: body, headers: signed(ts) });
      expect(again.status).toBe(201);
      expect(again.json).toEqual(first.json);
      expect(again.headers.get('x-metaspn-replayed')).toBe('true');
      const other = JSON.stringify({ event_id: 'evt-0001', tasks: [{ id: 'task-b', payload: { b: 2 } }] });
      const replay = await http('POST', url, { token: TOKEN, raw: other, headers: signed(now(), other) });
      expect(replay.status).toBe(201);
      expect(replay.json).toEqual(first.json);
      expect(replay.headers.get('x-metaspn-replayed')).toBe('true');

      const q = await http('GET', `${s.url}/api/queues/signed_q`);
      expect(q.json).toMatchObject({ ready: 1 });
      // A signature does not replace the token: writes still need it.
      const ts2 = now();
      const body2 = JSON.stringify({ event_id: 'evt-0002', payload: { c: 3 } });
      expect((await http('POST', url, { raw: body2, headers: signed(ts2, body2) })).status).toBe(401);
    } finally {
      await s.stop();
    }
  });
});

describe('metaspn serve: back-pressure', () => {
  it('answers 429 with Retry-After beyond max_queue_size and enqueues nothing (the CLI exits 11)', async () => {
    const ws = tempWorkspace({ config: { queues: { defaults: { max_queue_size: 2 } } } });
    const s = await startServe(ws, { env: { METASPN_ADMIN_TOKEN: TOKEN } });
    try {
      const url = `${s.url}/api/queues/bp_q/tasks`;
      const ok = await http('POST', url, {
        token: TOKEN,
        body: {
          tasks: [
            { id: 't1', payload: 1 },
            { id: 't2', payload: 2 },
          ],
        },
      });
      expect(ok.status, ok.text).toBe(201);
      const full = await http('POST', url, { token: TOKEN, body: { tasks: [{ id: 't3', payload: 3 }] } });
      expect(full.status).toBe(429);
      expect(Number(full.headers.get('retry-after'))).toBeGreaterThan(0);
      expect((full.json as { error: string }).error).toMatch(/max_queue_size 2/);
      expect((await http('GET', `${s.url}/api/queues/bp_q`)).json).toMatchObject({ ready: 2 });
    } finally {
      await s.stop();
    }
    const cli = await run(['queue', 'enqueue', 'bp_q', '--workspace', ws, '--payload', '{"n":4}'], { cwd: ws });
    expect(cli.code, cli.stderr).toBe(11);
  });
});

describe('metaspn serve: /metrics', () => {
  it('is valid Prometheus text with the queue counters and gauges', async () => {
    const { ws } = await workspaceWithDeadLetter();
    const s = await startServe(ws);
    try {
      const r = await http('GET', `${s.url}/metrics`);
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      const p = parsePrometheusText(r.text);
      expect(p.errors).toEqual([]);
      // Independently of the parser: every line is a comment, blank, or `name{labels} value`.
      const sample = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? (-?[0-9.e+-]+|NaN|[+-]Inf)( -?\d+)?$/;
      for (const line of r.text.split('\n').filter((l) => l && !l.startsWith('#'))) expect(line).toMatch(sample);
      const fam = (n: string) => p.families.get(n)!;
      for (const n of ['metaspn_tasks_completed_total', 'metaspn_tasks_failed_total', 'metaspn_tasks_retried_total', 'metaspn_tasks_dead_lettered_total']) expect(fam(n).type).toBe('counter');
      for (const n of ['metaspn_queue_ready', 'metaspn_queue_leased', 'metaspn_queue_scheduled', 'metaspn_queue_dead', 'metaspn_queue_oldest_ready_age_seconds']) expect(fam(n).type).toBe('gauge');
      const value = (n: string, worker: string) => fam(n).samples.find((x) => x.labels.worker === worker)?.value;
      expect(value('metaspn_queue_dead', 'contract')).toBe(1);
      expect(value('metaspn_tasks_dead_lettered_total', 'contract')).toBe(1);
      expect(value('metaspn_queue_ready', 'update_attention_scores')).toBe(0);
      expect(fam('metaspn_queue_dead').help).toBeTruthy();
    } finally {
      await s.stop();
    }
  });

  it('the parser rejects what a scraper would reject', () => {
    expect(parsePrometheusText('# TYPE a counter\na 1\n').errors).toEqual([]);
    expect(parsePrometheusText('a{x="1"} 1\n').errors).toEqual([]);
    expect(parsePrometheusText('a 1').errors[0]).toMatch(/newline/);
    expect(parsePrometheusText('a one\n').errors[0]).toMatch(/not a number/);
    expect(parsePrometheusText('a{x=1} 1\n').errors[0]).toMatch(/not quoted/);
    expect(parsePrometheusText('a{x="1} 1\n').errors[0]).toMatch(/not closed/);
    expect(parsePrometheusText('a 1\n# TYPE a gauge\n').errors[0]).toMatch(/after its samples/);
    expect(parsePrometheusText('# TYPE a gauge\n# TYPE a gauge\n').errors[0]).toMatch(/second # TYPE/);
    expect(parsePrometheusText('<html>\n').errors[0]).toMatch(/not a sample/);
    expect(parsePrometheusText('# TYPE h histogram\nh_bucket 1\n').errors[0]).toMatch(/without "le"/);
  });
});
