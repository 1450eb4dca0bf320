// `metaspn serve` as a real subprocess on a free loopback port, and small HTTP helpers for tests.
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { expect } from 'vitest';
import { exit, start, waitFor, type Proc, type Run } from './cli.js';

/** A port free right now on 127.0.0.1 (the kernel picks it; `serve --port` needs a number). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export interface Served {
  url: string;
  proc: Proc;
  /** Output so far. */
  out(): { stdout: string; stderr: string };
  /** SIGTERM, then waits for a clean exit (0). */
  stop(): Promise<Run>;
}

/** Starts `metaspn serve` and waits until it listens. Periodic alert checks are off unless args turn them on. */
export async function startServe(ws: string, o: { env?: NodeJS.ProcessEnv; args?: string[] } = {}): Promise<Served> {
  const port = await freePort();
  const args = ['serve', '--workspace', ws, '--port', String(port), ...(o.args ?? [])];
  if (!args.includes('--alert-interval-sec')) args.push('--alert-interval-sec', '0');
  const proc = start(args, { env: o.env ?? {} });
  let stdout = '';
  let stderr = '';
  proc.child.stdout?.on('data', (d: Buffer | string) => (stdout += String(d)));
  proc.child.stderr?.on('data', (d: Buffer | string) => (stderr += String(d)));
  let exited = false;
  void proc.exited.then(() => (exited = true));
  // A hang detector only (the wait ends as soon as it listens): five serves started at once took
  // over 20 s to listen at load 28.
  await waitFor(() => stdout.includes('metaspn serve: http') || exited, 60_000, 'metaspn serve to listen');
  if (exited) throw new Error(`metaspn serve exited at start: ${stderr}`);
  return {
    url: `http://127.0.0.1:${port}`,
    proc,
    out: () => ({ stdout, stderr }),
    stop: async () => {
      proc.child.kill('SIGTERM');
      const r = await exit(proc, 15_000);
      expect(r.code, r.stderr).toBe(0);
      return r;
    },
  };
}

export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: unknown;
}

export async function http(method: string, url: string, o: { token?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  if (o.token !== undefined) headers.authorization = `Bearer ${o.token}`;
  const body = o.raw ?? (o.body === undefined ? undefined : JSON.stringify(o.body));
  if (body !== undefined) headers['content-type'] ??= 'application/json';
  const res = await fetch(url, { method, headers, ...(body !== undefined ? { body } : {}), signal: AbortSignal.timeout(15_000) });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** HMAC-SHA256 hex over `<timestamp>.<body>` (alert deliveries; legacy task submissions), computed here independently of the code under test. */
export function hmac(secret: string, ts: string, body: string): string {
  return createHmac('sha256', secret).update(`${ts}.${body}`).digest('hex');
}

/** HMAC-SHA256 hex over `<timestamp>\n<METHOD>\n<path>\n<body>`: a signed task submission (docs/OPS.md section 5). */
export function hmacRequest(secret: string, ts: string, method: string, path: string, body: string): string {
  return createHmac('sha256', secret).update([ts, method, path, body].join('\n')).digest('hex');
}

export interface Hit {
  at: number;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** What the receiver answered. */
  status: number;
}

export interface Receiver {
  url: string;
  hits: Hit[];
  /** The status the next requests get (200 by default; 500 to simulate an outage). */
  answer: number;
  close(): Promise<void>;
}

/** A webhook receiver on 127.0.0.1 that records every request. */
export function webhookReceiver(): Promise<Receiver> {
  return new Promise((resolve) => {
    const hits: Hit[] = [];
    const r: Receiver = {
      url: '',
      hits,
      answer: 200,
      close: () => new Promise<void>((done) => server.close(() => done())),
    };
    const server: Server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => (body += d));
      req.on('end', () => {
        hits.push({ at: Date.now(), method: req.method ?? '', path: req.url ?? '', headers: req.headers, body, status: r.answer });
        res.writeHead(r.answer, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: r.answer < 300 }));
      });
    });
    server.keepAliveTimeout = 1;
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      r.url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}/hooks/metaspn`;
      resolve(r);
    });
  });
}
