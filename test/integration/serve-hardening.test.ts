// `metaspn serve` against hostile or careless clients: bodies refused before they are read, Host
// names checked, one enqueue per event id, signatures bound to their queue, JSON-only writes,
// writes that do not replay the queue log, run starts that never answer 202 for a run that
// cannot start. Every server is a real subprocess on loopback; every wait is on a condition.
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run, spec, tempWorkspace, until, waitFor } from './cli.js';
import { cliIn } from './in-process.js';
import { hmac, hmacRequest, http, startServe, type Served } from './serve-process.js';

const TOKEN = 'hardening-token-0123456789';
const SECRET = 'hardening-signing-secret';

function port(s: Served): number {
  return Number(new URL(s.url).port);
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
}

/** A raw connection that records what the server sends and when it closes. */
interface Raw {
  sock: Socket;
  received(): string;
  closed: Promise<number>;
}

function raw(s: Served, head: string): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const sock = connect(port(s), '127.0.0.1');
    let data = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => (data += d));
    sock.on('error', () => undefined);
    const closed = new Promise<number>((r) => sock.on('close', () => r(Date.now() - t0)));
    sock.once('connect', () => {
      sock.write(head);
      resolve({ sock, received: () => data, closed });
    });
    sock.once('error', reject);
  });
}

/** GET with an explicit Host header (fetch does not let a caller set one). */
function getWithHost(s: Served, path: string, host: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: port(s), path, method: 'GET', headers: { host } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timed out')));
    req.end();
  });
}

async function withServer<T>(ws: string, o: { env?: NodeJS.ProcessEnv; args?: string[] }, fn: (s: Served) => Promise<T>): Promise<T> {
  const s = await startServe(ws, o);
  try {
    return await fn(s);
  } finally {
    await s.stop();
  }
}

describe('metaspn serve: bodies', () => {
  it('refuses unauthenticated bodies at their headers (slow or huge: memory stays flat), ends slow headers and slow authenticated bodies (408), and caps sizes (413)', async () => {
    const ws = tempWorkspace({ demo: false });
    const args = ['--request-timeout-sec', '3', '--headers-timeout-sec', '1', '--body-limit-mb', '1'];
    await withServer(ws, { env: { METASPN_ADMIN_TOKEN: TOKEN }, args }, async (s) => {
      const pid = s.proc.child.pid!;
      const before = rssMiB(pid);
      // 30 bodies of 8 MiB announced, 2 MiB sent each, no token: refused at once, never buffered.
      const bombs: Raw[] = [];
      const chunk = Buffer.alloc(1 << 20, 0x20);
      for (let i = 0; i < 30; i++) {
        const c = await raw(s, `POST /api/queues/bomb/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${8 << 20}\r\n\r\n{`);
        c.sock.write(chunk);
        c.sock.write(chunk);
        bombs.push(c);
      }
      // Slow: no token and a trickled body; a wrong token; headers that never end.
      const noToken = await raw(s, 'POST /api/queues/slow/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{');
      const wrongToken = await raw(s, 'POST /api/queues/slow/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer wrong\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{');
      const slowHeaders = await raw(s, 'GET /api/queues HTTP/1.1\r\nHost: 127.0.0.1\r\n');
      const slowAuthed = await raw(s, `POST /api/queues/slow/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{`);

      // Each is answered 401 and closed at once. (The client may see a reset instead of the answer:
      // the server closes with the unread body still arriving, and the kernel then resets.)
      for (const c of [...bombs, noToken, wrongToken]) {
        expect(await c.closed).toBeLessThan(5_000);
        expect(c.received()).toMatch(/^$|^HTTP\/1\.1 401 /);
      }
      const refused = await http('POST', `${s.url}/api/queues/slow/tasks`, { token: 'wrong', body: { payload: 1 } });
      expect(refused.status).toBe(401);
      expect(refused.text).toContain('invalid token');
      expect(refused.headers.get('connection')).toBe('close');
      const health = await http('GET', `${s.url}/health`);
      expect(health.status).toBe(200);
      expect(rssMiB(pid) - before).toBeLessThan(40);

      // Headers that never end: closed after --headers-timeout-sec (Node answers 408 or just closes).
      expect(await slowHeaders.closed).toBeLessThan(6_000);
      // An authenticated body that never ends: 408 after --request-timeout-sec, connection closed.
      expect(await slowAuthed.closed).toBeLessThan(9_000);
      expect(slowAuthed.received()).toMatch(/^HTTP\/1\.1 408 /);

      // Over --body-limit-mb (1 MiB) with the token: 413; other writes take 64 KiB.
      const big = await http('POST', `${s.url}/api/queues/big/tasks`, { token: TOKEN, body: { payload: { pad: 'x'.repeat(1_100_000) } } });
      expect(big.status).toBe(413);
      const bigRetry = await http('POST', `${s.url}/api/queues/big/retry`, { token: TOKEN, raw: JSON.stringify({ task_id: 'x'.repeat(70_000) }) });
      expect(bigRetry.status).toBe(413);
      const ok = await http('POST', `${s.url}/api/queues/big/tasks`, { token: TOKEN, body: { payload: { pad: 'x'.repeat(900_000) } } });
      expect(ok.status, ok.text).toBe(201);
    });
  }, 180_000);

  it('takes JSON objects only on write routes: text/plain is 415 and retries nothing; a JSON string, an array, a missing body or an unknown key is 400', async () => {
    const ws = tempWorkspace({ demo: false });
    expect((await cliIn(['queue', 'enqueue', 'contract', '--workspace', ws, '--payload', '{"n":1}'])).code).toBe(0);
    expect((await cliIn(['queue', 'enqueue', 'contract', '--workspace', ws, '--payload', '{"n":2}'])).code).toBe(0);
    expect((await cliIn(['worker', 'run', spec('Contract'), '--workspace', ws, '--once'])).code).toBe(20);
    await withServer(ws, { env: { METASPN_ADMIN_TOKEN: TOKEN } }, async (s) => {
      const dead = ((await http('GET', `${s.url}/api/queues/contract/deadletters`)).json as { dead_letters: { task: { id: string } }[] }).dead_letters;
      expect(dead).toHaveLength(2);
      const one = dead[0]!.task.id;
      const retry = `${s.url}/api/queues/contract/retry`;
      const text = await http('POST', retry, { token: TOKEN, raw: JSON.stringify({ task_id: one }), headers: { 'content-type': 'text/plain' } });
      expect(text.status, text.text).toBe(415);
      for (const [raw, why] of [
        ['"all"', /JSON object/],
        ['[1]', /JSON object/],
        ['{"taskid":"x"}', /unknown key/],
        ['{"task_id":5}', /non-empty string/],
        ['{"task_id":', /not valid JSON/],
      ] as const) {
        const r = await http('POST', retry, { token: TOKEN, raw });
        expect(`${raw}: ${r.status}`).toBe(`${raw}: 400`);
        expect((r.json as { error: string }).error).toMatch(why);
      }
      const none = await fetch(retry, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
      expect(none.status).toBe(400);
      expect(((await http('GET', `${s.url}/api/queues/contract`)).json as { dead: number }).dead).toBe(2);

      expect((await http('POST', `${s.url}/api/queues/contract/tasks`, { token: TOKEN, raw: '{"payload":1}', headers: { 'content-type': 'text/plain' } })).status).toBe(415);
      expect((await http('POST', `${s.url}/api/runs`, { token: TOKEN, raw: '{"date":"2026-01-15"}', headers: { 'content-type': 'text/plain' } })).status).toBe(415);
      expect((await http('POST', `${s.url}/api/queues/contract/tasks`, { token: TOKEN, raw: '"x"' })).status).toBe(400);

      // The control: a JSON body retries exactly the one named.
      const r = await http('POST', retry, { token: TOKEN, body: { task_id: one } });
      expect(r.status, r.text).toBe(200);
      expect(r.json).toEqual({ schema_version: 1, worker: 'contract', retried: [one] });
    });
  }, 180_000);
});

describe('metaspn serve: Host names', () => {
  it('answers 421 to a Host it does not serve (DNS rebinding), before any handler; loopback names, IP addresses and --allowed-host are served', async () => {
    const ws = tempWorkspace({ demo: false });
    expect((await cliIn(['queue', 'enqueue', 'evil', '--workspace', ws, '--payload', '{"secret":"s3"}'])).code).toBe(0);
    await withServer(ws, { env: { METASPN_ADMIN_TOKEN: TOKEN }, args: ['--allowed-host', 'ops.example.test'] }, async (s) => {
      const p = port(s);
      for (const path of ['/api/queues/evil', '/api/queues/evil/deadletters', '/ops', '/metrics', '/health', '/api/runs']) {
        const r = await getWithHost(s, path, `rebind.attacker.example:${p}`);
        expect(`${path}: ${r.status}`).toBe(`${path}: 421`);
        expect(r.text).not.toContain('s3');
      }
      expect((await getWithHost(s, '/api/queues/evil', 'attacker.example')).status).toBe(421);
      expect((await getWithHost(s, '/api/queues/evil', 'bad host')).status).toBe(421);
      for (const host of [`localhost:${p}`, `127.0.0.1:${p}`, `[::1]:${p}`, 'ops.example.test', `OPS.example.test.:${p}`]) {
        const r = await getWithHost(s, '/api/queues/evil', host);
        expect(`${host}: ${r.status}`).toBe(`${host}: 200`);
      }
    });
    // A bad --allowed-host is a usage error at start.
    const bad = await run(['serve', '--workspace', ws, '--port', '1', '--allowed-host', 'not a host'], { cwd: ws });
    expect(bad.code).toBe(64);
    expect(bad.stderr).toMatch(/--allowed-host: "not a host" is not a host name/);
  }, 180_000);
});

describe('metaspn serve: requests refused before any route', () => {
  it('a URL that does not decode (400), headers past 16 KiB (431) and bytes that are no HTTP (400) get the error document, with nothing of the request echoed', async () => {
    const ws = tempWorkspace({ demo: false });
    await withServer(ws, {}, async (s) => {
      const marker = 'zz-echo-marker';
      const answers: [Raw, number, RegExp][] = [
        [await raw(s, `GET /api/runs/%${marker} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`), 400, /the request URL is not valid/],
        [await raw(s, `GET /api/runs?${marker}${'a'.repeat(20_000)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`), 431, /over the size this server reads \(16 KiB\)/],
        [await raw(s, `${marker} GARBAGE\r\n\r\n`), 400, /the request is not valid HTTP/],
      ];
      for (const [c, status, rule] of answers) {
        await c.closed;
        const text = c.received();
        expect(text).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
        expect(text).toMatch(/content-type: application\/json/i);
        const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;
        expect(Object.keys(body)).toEqual(['schema_version', 'error']);
        expect(body.error).toMatch(rule);
        expect(text).not.toContain(marker);
      }
      expect((await http('GET', `${s.url}/health`)).status).toBe(200);
    });
  }, 60_000);
});

describe('metaspn serve: a run start refused', () => {
  it('names the body\'s fields, not the CLI\'s flags: "date", "as_of", "run_id" (400), and starts nothing', async () => {
    const ws = tempWorkspace({ demo: false });
    await withServer(ws, { env: { METASPN_ADMIN_TOKEN: TOKEN } }, async (s) => {
      for (const [body, rule] of [
        [{ date: '2026-13-01' }, /^"date" must be YYYY-MM-DD, got "2026-13-01" \(no such calendar date\)$/],
        [{ date: '2026-01-15', as_of: 'soon' }, /^"as_of" must be an ISO-8601 instant/],
        [{ date: '2026-01-15', run_id: '../x' }, /^"run_id" "\.\.\/x" must match /],
      ] as const) {
        const r = await http('POST', `${s.url}/api/runs`, { token: TOKEN, body });
        expect(r.status, r.text).toBe(400);
        const doc = JSON.parse(r.text) as { schema_version: number; error: string; hint?: string };
        expect(doc.schema_version).toBe(1);
        expect(doc.error).toMatch(rule);
        expect(r.text).not.toContain('--');
      }
      expect(JSON.parse((await http('GET', `${s.url}/api/runs`)).text)).toMatchObject({ runs: [] });
    });
  }, 60_000);
});

describe('metaspn serve: signed submissions and event ids', () => {
  it('enqueues once for 20 concurrent deliveries of one event id; scopes event ids per queue; binds signatures to the queue; refuses loose signature formats and, by default, the legacy format', async () => {
    const ws = tempWorkspace({ demo: false });
    const env = { METASPN_ADMIN_TOKEN: TOKEN, METASPN_SIGNING_SECRET: SECRET };
    const now = (): string => String(Math.floor(Date.now() / 1000));
    const send = (s: Served, queue: string, body: string, sig?: (ts: string) => Record<string, string>) => {
      const ts = now();
      return http('POST', `${s.url}/api/queues/${queue}/tasks`, {
        token: TOKEN,
        raw: body,
        headers: sig ? sig(ts) : { 'x-metaspn-timestamp': ts, 'x-metaspn-signature': hmacRequest(SECRET, ts, 'POST', `/api/queues/${queue}/tasks`, body) },
      });
    };
    const ready = async (s: Served, q: string): Promise<number> => ((await http('GET', `${s.url}/api/queues/${q}`)).json as { ready: number }).ready;
    await withServer(ws, { env }, async (s) => {
      const bodies = Array.from({ length: 20 }, (_, i) => JSON.stringify({ event_id: 'evt-race', tasks: [{ id: `r${i}`, payload: { i } }] }));
      const answers = await Promise.all(bodies.map((b) => send(s, 'queue_a', b)));
      expect(answers.map((a) => a.status)).toEqual(Array(20).fill(201));
      // Every answer is the first one (the replays carry it back), and one task was enqueued.
      expect(new Set(answers.flatMap((a) => (a.json as { added: string[] }).added)).size).toBe(1);
      for (const a of answers) expect(a.json).toEqual(answers.find((x) => x.headers.get('x-metaspn-replayed') === null)!.json);
      expect(answers.filter((a) => a.headers.get('x-metaspn-replayed') === 'true')).toHaveLength(19);
      expect(await ready(s, 'queue_a')).toBe(1);

      // The same event id for another queue is another event.
      const b = await send(s, 'queue_b', JSON.stringify({ event_id: 'evt-race', tasks: [{ id: 'b1', payload: 1 }] }));
      expect(b.status, b.text).toBe(201);
      expect(b.headers.get('x-metaspn-replayed')).toBeNull();
      expect(b.json).toMatchObject({ worker: 'queue_b', added: ['b1'] });

      // Bytes signed for one queue do not verify for another.
      const body = JSON.stringify({ tasks: [{ id: 'pay-1', payload: { amount: 5 } }] });
      const forA = (ts: string): Record<string, string> => ({ 'x-metaspn-timestamp': ts, 'x-metaspn-signature': hmacRequest(SECRET, ts, 'POST', '/api/queues/payments_a/tasks', body) });
      expect((await send(s, 'payments_a', body, forA)).status).toBe(201);
      const moved = await send(s, 'payments_b', body, forA);
      expect(moved.status).toBe(401);
      expect(moved.text).toMatch(/signature does not match/);

      // Loose formats: upper-case hex, trailing garbage, a hex or float timestamp; the legacy format.
      const sig = (ts: string): string => hmacRequest(SECRET, ts, 'POST', '/api/queues/loose/tasks', body);
      const loose: [string, (ts: string) => Record<string, string>][] = [
        ['upper case', (ts) => ({ 'x-metaspn-timestamp': ts, 'x-metaspn-signature': sig(ts).toUpperCase() })],
        ['trailing garbage', (ts) => ({ 'x-metaspn-timestamp': ts, 'x-metaspn-signature': `${sig(ts)}zz` })],
        ['hex timestamp', (ts) => ({ 'x-metaspn-timestamp': `0x${Number(ts).toString(16)}`, 'x-metaspn-signature': sig(ts) })],
        ['float timestamp', (ts) => ({ 'x-metaspn-timestamp': `${ts}.0`, 'x-metaspn-signature': sig(ts) })],
        ['legacy format', (ts) => ({ 'x-metaspn-timestamp': ts, 'x-metaspn-signature': hmac(SECRET, ts, body) })],
      ];
      for (const [name, h] of loose) expect(`${name}: ${(await send(s, 'loose', body, h)).status}`).toBe(`${name}: 401`);
      // Nothing refused created anything: no such queue.
      expect((await http('GET', `${s.url}/api/queues/payments_b`)).status).toBe(404);
      expect((await http('GET', `${s.url}/api/queues/loose`)).status).toBe(404);
    });
    // The migration switch: the legacy format accepted, with a warning header.
    await withServer(ws, { env: { ...env, METASPN_SIGNATURE_ACCEPT_LEGACY: 'true' } }, async (s) => {
      const body = JSON.stringify({ tasks: [{ id: 'legacy-1', payload: 1 }] });
      const r = await send(s, 'legacy_q', body, (ts) => ({ 'x-metaspn-timestamp': ts, 'x-metaspn-signature': hmac(SECRET, ts, body) }));
      expect(r.status, r.text).toBe(201);
      expect(r.headers.get('x-metaspn-signature-deprecated')).toMatch(/legacy format/);
      expect((await send(s, 'legacy_q', JSON.stringify({ tasks: [{ id: 'v2-1', payload: 1 }] }))).headers.get('x-metaspn-signature-deprecated')).toBeNull();
    });
  }, 180_000);
});

describe('metaspn serve: writes on a large queue', () => {
  it('keeps each queue open: a POST to a queue of 80k tasks costs about what one to an empty queue does, and /health answers meanwhile', async () => {
    const ws = tempWorkspace({ demo: false });
    const file = join(ws, 'tasks.jsonl');
    writeFileSync(file, `${Array.from({ length: 80_000 }, (_, i) => JSON.stringify({ id: `m${i}`, payload: { i, pad: 'p'.repeat(80) } })).join('\n')}\n`);
    expect((await cliIn(['queue', 'enqueue', 'big', '--workspace', ws, '--file', file], { ms: 120_000 })).code).toBe(0);
    expect((await cliIn(['queue', 'enqueue', 'small', '--workspace', ws, '--payload', '{"a":1}'])).code).toBe(0);
    await withServer(ws, { env: { METASPN_ADMIN_TOKEN: TOKEN } }, async (s) => {
      const timed = async (q: string, i: number): Promise<number> => {
        const t0 = performance.now();
        const r = await http('POST', `${s.url}/api/queues/${q}/tasks`, { token: TOKEN, body: { tasks: [{ id: `probe-${i}`, payload: i }] } });
        expect(r.status, r.text).toBe(201);
        return performance.now() - t0;
      };
      const median = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
      const big: number[] = [];
      const small: number[] = [];
      for (let i = 0; i < 7; i++) {
        big.push(await timed('big', i));
        small.push(await timed('small', i));
      }
      // Replaying 80k tasks takes hundreds of milliseconds; a kept-open queue only appends.
      expect(median(big)).toBeLessThan(median(small) * 3 + 100);
      const during = timed('big', 100);
      const h0 = performance.now();
      expect((await http('GET', `${s.url}/health`)).status).toBe(200);
      const healthMs = performance.now() - h0;
      await during;
      expect(healthMs).toBeLessThan(median(small) * 3 + 150);
      expect(((await http('GET', `${s.url}/api/queues/big`)).json as { ready: number }).ready).toBe(80_008);
      // The queues were opened after the server listened, not before (the log is flushed within a second).
      const events = (): (string | undefined)[] =>
        readFileSync(join(ws, 'logs', 'metaspn.jsonl'), 'utf8')
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => (JSON.parse(l) as { event?: string }).event);
      await waitFor(() => events().includes('ops_queues_preloaded'), 10_000, 'the preload to be logged');
      expect(events().indexOf('serve_start')).toBeGreaterThanOrEqual(0);
      expect(events().indexOf('ops_queues_preloaded')).toBeGreaterThan(events().indexOf('serve_start'));
    });
  }, 180_000);
});

describe('metaspn serve: starting runs', () => {
  it('answers ten concurrent POST /api/runs with one 202 and nine 409s, and every status_url says what happened; a run that fails before its first manifest is reported, not 404', async () => {
    const ws = tempWorkspace();
    await withServer(ws, { env: { METASPN_ADMIN_TOKEN: TOKEN } }, async (s) => {
      const answers = await Promise.all(Array.from({ length: 10 }, () => http('POST', `${s.url}/api/runs`, { token: TOKEN, body: { date: '2026-01-15' } })));
      const statuses = answers.map((a) => a.status).sort();
      expect(statuses).toEqual([202, ...Array(9).fill(409)]);
      const started = answers.find((a) => a.status === 202)!.json as { run_id: string; status_url: string };
      for (const a of answers.filter((x) => x.status === 409)) {
        const r = await http('GET', `${s.url}${(a.json as { status_url: string }).status_url}`);
        expect(r.status).toBe(200);
        expect(r.json).toMatchObject({ status: 'refused', error: expect.stringMatching(/run lock (s1 )?is held/) });
      }
      const done = await until(
        async () => {
          const r = await http('GET', `${s.url}${started.status_url}`);
          expect(r.status).toBe(200);
          const j = r.json as { status?: string; steps?: unknown[] };
          return j.status === 'success' && j.steps?.length === 4 ? j : null;
        },
        90_000,
        'the started run to succeed',
      );
      expect(done).toMatchObject({ status: 'success', exit_code: 0, run_id: started.run_id });
      await until(async () => !((await http('GET', `${s.url}/api/lock`)).json as { held: boolean }).held || null, 30_000, 'the run lock to be released');

      // A damaged pointer stops the next run at its start (exit 30): the status_url says so.
      const pointer = join(ws, 'manifests', 'current', 's1', 'date=2026-01-15.json');
      writeFileSync(pointer, readFileSync(pointer, 'utf8').replace('"run_id": "', '"run_id" "'));
      const next = await http('POST', `${s.url}/api/runs`, { token: TOKEN, body: { date: '2026-01-16' } });
      expect(next.status, next.text).toBe(202);
      const url = (next.json as { status_url: string }).status_url;
      const rec = await until(
        async () => {
          const j = (await http('GET', `${s.url}${url}`)).json as { status?: string; exit_code?: number; error?: string };
          return j.status === 'exited' ? j : null;
        },
        60_000,
        'the second run to end',
      );
      expect(rec).toMatchObject({ status: 'exited', exit_code: 30 });
      expect(rec.error).toContain('manifests/current/s1/date=2026-01-15.json: not valid JSON');
    });
  }, 180_000);
});
