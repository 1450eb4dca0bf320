/**
 * The BullMQ peer of the queue benchmark: BullMQ on a redis-server this benchmark starts itself,
 * on a free port, in a temp dir, with the append-only file on (`appendfsync everysec`: up to a
 * second of acknowledged jobs lost on a crash of the machine; `always`: fsynced before Redis
 * replies), RDB snapshots off. Stopped and its dir removed afterwards. Skipped, with a note,
 * when `redis-server` is not on the PATH.
 *
 * Workloads as bench/queue.ts: Queue.addBulk in batches; a Worker at concurrency 8 (no-op
 * processor) counting `completed` events; fail once then succeed (attempts 2, no backoff:
 * BullMQ's quickest retry). Everything else is BullMQ's defaults (completed jobs kept, as our queue keeps them).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, Worker, type ConnectionOptions, type Job } from 'bullmq';
import { nowMs, sleep } from './lib.js';

export type Fsync = 'everysec' | 'always';

export function redisServerVersion(): string | null {
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return null;
  return /v=(\S+)/.exec(r.stdout)?.[1] ?? r.stdout.trim();
}

export function bullmqVersion(): string {
  // Read from the installed package: the version measured, not the one asked for.
  return (JSON.parse(spawnSync(process.execPath, ['-p', 'JSON.stringify(require("bullmq/package.json"))'], { encoding: 'utf8' }).stdout) as { version: string }).version;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface RedisServer {
  port: number;
  connection: ConnectionOptions;
  stop(): Promise<void>;
}

/** Servers running now: stopped (and their dirs removed) if the benchmark is interrupted. */
const running = new Map<ChildProcess, string>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const cleanup = (): void => {
    for (const [child, dir] of running) {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
    running.clear();
  };
  process.once('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      cleanup();
      process.exit(130);
    });
  }
}

/** Starts a redis-server with AOF on in a fresh temp dir; `stop()` shuts it down and removes the dir. */
export async function startRedis(fsync: Fsync): Promise<RedisServer> {
  hookExit();
  let lastErr = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), 'metaspn-bench-redis-'));
    const port = await freePort();
    const child: ChildProcess = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', fsync, '--save', '', '--daemonize', 'no', '--loglevel', 'warning', '--logfile', ''],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    running.set(child, dir);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const connection: ConnectionOptions = { host: '127.0.0.1', port, maxRetriesPerRequest: null };
    const stop = async (): Promise<void> => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
      }
      running.delete(child);
      rmSync(dir, { recursive: true, force: true });
    };
    // Ready when it answers PING.
    const started = nowMs();
    let ready = false;
    while (nowMs() - started < 10_000 && child.exitCode === null) {
      if (await ping(port)) {
        ready = true;
        break;
      }
      await sleep(20);
    }
    if (ready) return { port, connection, stop };
    lastErr = out.trim();
    await stop();
  }
  throw new Error(`redis-server did not start: ${lastErr}`);
}

async function ping(port: number): Promise<boolean> {
  const { Socket } = await import('node:net');
  return new Promise((resolve) => {
    const s = new Socket();
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(500, () => done(false));
    s.once('error', () => done(false));
    s.connect(port, '127.0.0.1', () => s.write('PING\r\n'));
    s.once('data', (d: Buffer) => done(d.toString().startsWith('+PONG')));
  });
}

const QUEUE = 'bench';
/** BullMQ's quickest retry: no backoff (ours and the SQLite peer's is 1 ms, through their due-time order). */
export const BACKOFF_MS = 0;

/** Adds jobs t{from}…t{to-1} with addBulk, `batch` per call; returns the elapsed ms. */
export async function bullEnqueue(connection: ConnectionOptions, from: number, to: number, batch: number, failOnce: boolean): Promise<number> {
  const q = new Queue(QUEUE, { connection });
  try {
    await q.waitUntilReady();
    const opts = failOnce ? { attempts: 2, backoff: { type: 'fixed', delay: BACKOFF_MS } } : {};
    const t0 = nowMs();
    for (let i = from; i < to; i += batch) {
      const jobs = [];
      for (let j = i; j < Math.min(to, i + batch); j++) jobs.push({ name: 'noop', data: { n: j }, opts: { jobId: `t${j}`, ...opts } });
      await q.addBulk(jobs);
    }
    return nowMs() - t0;
  } finally {
    await q.close();
  }
}

/** Runs a Worker at `concurrency` until `expect` jobs completed; returns the elapsed ms and the failures seen. */
export async function bullDrain(connection: ConnectionOptions, expect: number, concurrency: number, failOnce: boolean): Promise<{ ms: number; completed: number; failed: number }> {
  let completed = 0;
  let failed = 0;
  const processor = failOnce
    ? async (job: Job): Promise<void> => {
        if (job.attemptsMade === 0) throw new Error('fails on attempt 1 (benchmark)');
      }
    : async (): Promise<void> => undefined;
  const worker = new Worker(QUEUE, processor, { connection, concurrency, autorun: false });
  await worker.waitUntilReady();
  const t0 = nowMs();
  let ms = 0;
  await new Promise<void>((resolve, reject) => {
    worker.on('completed', () => {
      if (++completed === expect) {
        ms = nowMs() - t0;
        resolve();
      }
    });
    worker.on('failed', () => void failed++);
    worker.on('error', reject);
    worker.run().catch(reject);
  });
  await worker.close();
  return { ms, completed, failed };
}
