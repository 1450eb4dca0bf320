/**
 * graphile-worker, the PostgreSQL peer of the PostgreSQL bench (bench/pg.ts): the same workloads
 * on a fresh database of the same server in the same run. Two configurations: its defaults (a job
 * fetched and completed per query) and its batched mode (a local queue of 500 jobs fetched per
 * query, completions and failures batched), the one its published figures use.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { makeWorkerUtils, run, Logger, type Runner, type TaskList } from 'graphile-worker';
import pg from 'pg';
import { nowMs } from './lib.js';

/** The task identifier of every bench job. */
const TASK = 'bench';
/** Jobs per addJobs call. */
const ADD_BATCH = 10_000;

const silent = new Logger(() => () => undefined);

/** How graphile-worker runs: its defaults, or batched (local queue of 500, batched completions). */
export type GraphileMode = 'default' | 'batched';

/** The installed graphile-worker version, or null when it is not installed. */
export function graphileVersion(): string | null {
  try {
    const req = createRequire(import.meta.url);
    const main = req.resolve('graphile-worker');
    // dist/index.js → the package root.
    return (JSON.parse(readFileSync(join(dirname(main), '..', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return null;
  }
}

/**
 * A pool of graphile-worker's own for `url`, ended after `f`. Its idle connections are terminated
 * when the bench drops the database (`DROP DATABASE … WITH (FORCE)`): the pool's error handler
 * keeps that from ending the bench (a pool graphile-worker makes itself has none).
 */
async function withPool<T>(url: string, f: (pool: pg.Pool) => Promise<T>): Promise<T> {
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  pool.on('error', () => undefined);
  // graphile-worker checks that each client has a handler too.
  pool.on('connect', (client) => void client.on('error', () => undefined));
  try {
    return await f(pool);
  } finally {
    await pool.end();
  }
}

/** Installs graphile-worker's schema in the database `url`. */
export async function graphileMigrate(url: string): Promise<void> {
  await withPool(url, async (pgPool) => {
    const utils = await makeWorkerUtils({ pgPool, logger: silent });
    try {
      await utils.migrate();
    } finally {
      await utils.release();
    }
  });
}

/** Adds `size` jobs (payload `{n}`), ADD_BATCH per addJobs call; returns the elapsed ms. */
export async function graphileEnqueue(url: string, size: number): Promise<number> {
  return withPool(url, async (pgPool) => {
    const utils = await makeWorkerUtils({ pgPool, logger: silent });
    try {
      const t0 = nowMs();
      for (let i = 0; i < size; i += ADD_BATCH) {
        const specs = [];
        for (let n = i; n < Math.min(size, i + ADD_BATCH); n++) specs.push({ identifier: TASK, payload: { n }, maxAttempts: 5 });
        await utils.addJobs(specs);
      }
      return nowMs() - t0;
    } finally {
      await utils.release();
    }
  });
}

/**
 * Runs a worker of concurrency 8 until `expect` jobs have succeeded; returns the elapsed ms from the
 * worker's start. `handler` is the task (it may throw: the job is retried with graphile-worker's
 * own backoff, exp(attempts) seconds, which no option lowers).
 */
export async function graphileDrain(url: string, mode: GraphileMode, expect: number, handler: TaskList[string]): Promise<number> {
  return withPool(url, (pgPool) => drainOn(pgPool, mode, expect, handler));
}

async function drainOn(pgPool: pg.Pool, mode: GraphileMode, expect: number, handler: TaskList[string]): Promise<number> {
  let done = 0;
  let resolveDone!: () => void;
  const all = new Promise<void>((r) => (resolveDone = r));
  const t0 = nowMs();
  const runner: Runner = await run({
    pgPool,
    concurrency: 8,
    noHandleSignals: true,
    pollInterval: 100,
    logger: silent,
    taskList: { [TASK]: handler },
    ...(mode === 'batched' ? { preset: { worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } } } : {}),
  });
  runner.events.on('job:success', () => {
    if (++done === expect) resolveDone();
  });
  try {
    await Promise.race([all, runner.promise.then(() => Promise.reject(new Error(`graphile-worker stopped after ${done} of ${expect} jobs`)))]);
    return nowMs() - t0;
  } finally {
    await runner.stop();
  }
}
