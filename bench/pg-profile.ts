/**
 * Where one PostgreSQL workload spends its CPU (issue 12, docs/PERFORMANCE.md): a fresh database,
 * `size` tasks enqueued, one drain as bench/pg.ts drains them, and per task the worker's CPU
 * (process.cpuUsage) and the server's (every process of the server on this machine, from
 * /proc/<pid>/stat: live backends and helpers, plus the postmaster's reaped children), with the
 * transactions committed and the task table's tuple and index counters. Run it against a server of
 * its own to read the server's CPU as this workload's (the machine's shared server also runs other
 * databases' work).
 *
 *   node dist/bench/pg-profile.js [--url postgres://…/postgres] [--size 100000] [--workload fail]
 *        [--start-ahead 128] [--explain-every-ms 0] [--statements] [--vacuumed [--autovacuum]] [--cpuprof FILE] [--heapprof FILE]
 *
 * workload: b100 | b500 | effects | fail (bench/pg.ts's drains). `--explain-every-ms N` runs
 * `EXPLAIN (ANALYZE, BUFFERS)` of the claim's selection every N ms during the drain (read-only: no
 * rows locked) and prints the slowest; `--statements` prints pg_stat_statements' top statements of
 * the run (the server must load it). `--vacuumed`: the task table vacuumed, never analyzed, before
 * the drain (autovacuum off for it from the start: what autovacuum's insert-triggered vacuum leaves
 * after a bulk enqueue, before its analyze; schema-v11.ts); `--autovacuum`: on again for the drain.
 * `--cpuprof FILE` / `--heapprof FILE`: a .cpuprofile / .heapprofile of the worker during the drain
 * only (node:inspector; summarize them with bench/cpuprofile-summary.ts, bench/heapprofile-summary.ts).
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import pg from 'pg';
import { PgQueue } from '../src/backend/pg/pg-queue.js';
import type { StoredRow } from '../src/pipeline/types.js';
import type { WorkerDefinition } from '../src/runtime/worker-api.js';
import { drainOnce, nowMs, parseCount, perSecond, timedEnqueue } from './lib.js';
import { admin } from './pg.js';
import { policyWith } from './queue.js';

const QUEUE = 'bench';
const TICKS = 100; // USER_HZ on Linux

interface Args {
  url: string;
  size: number;
  workload: 'b100' | 'b500' | 'effects' | 'fail';
  startAhead: number;
  explainEveryMs: number;
  statements: boolean;
  vacuumed: boolean;
  autovacuum: boolean;
  cpuprof: string | null;
  heapprof: string | null;
}

function parse(argv: string[]): Args {
  const a: Args = {
    url: process.env.METASPN_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    size: 100_000,
    workload: 'fail',
    startAhead: 128,
    explainEveryMs: 0,
    statements: false,
    vacuumed: false,
    autovacuum: false,
    cpuprof: null,
    heapprof: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1] ?? '';
    switch (argv[i]) {
      case '--url':
        a.url = v;
        i++;
        break;
      case '--size':
        a.size = parseCount(v);
        i++;
        break;
      case '--workload':
        a.workload = v as Args['workload'];
        i++;
        break;
      case '--start-ahead':
        a.startAhead = Number(v);
        i++;
        break;
      case '--explain-every-ms':
        a.explainEveryMs = Number(v);
        i++;
        break;
      case '--statements':
        a.statements = true;
        break;
      case '--vacuumed':
        a.vacuumed = true;
        break;
      case '--autovacuum':
        a.autovacuum = true;
        break;
      case '--cpuprof':
        a.cpuprof = v;
        i++;
        break;
      case '--heapprof':
        a.heapprof = v;
        i++;
        break;
      default:
        throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  return a;
}

/** CPU seconds of the server's processes: those whose parent is the postmaster, the postmaster itself and its reaped children. */
function serverCpuSeconds(postmaster: number): number {
  const stat = (pid: string): string[] | null => {
    try {
      const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return s.slice(s.lastIndexOf(')') + 2).split(' ');
    } catch {
      return null;
    }
  };
  let ticks = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const f = stat(pid);
    if (!f) continue;
    // After the command: [0] state, [1] ppid, [11] utime, [12] stime, [13] cutime, [14] cstime.
    if (Number(pid) === postmaster) ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    else if (Number(f[1]) === postmaster) ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / TICKS;
}

/** `f` on a client of its own to `url` (bench/pg.ts admin). */
const withClient = <T>(url: string, f: (c: pg.Client) => Promise<T>): Promise<T> => admin(f, url);

const workers: Record<Args['workload'], WorkerDefinition> = {
  b100: { name: QUEUE, handle: () => undefined },
  b500: { name: QUEUE, handle: () => undefined },
  effects: {
    name: QUEUE,
    handle: (task, ctx) => {
      const row: StoredRow = { key: task.id, id: `row_${task.id}`, step: 'effects', date: '2026-01-15', identity: 'bench', n: (task.payload as { n: number }).n };
      ctx.effects.rows('bench', 'effects', [row]);
    },
  },
  fail: {
    name: QUEUE,
    handle: (_task, ctx) => {
      if (ctx.attempt === 1) throw new Error('fails on attempt 1 (benchmark)');
    },
  },
};

const TABLE_STATS = `
  SELECT n_tup_upd::int AS upd, n_tup_hot_upd::int AS hot, n_dead_tup::int AS dead, n_live_tup::int AS live,
         autovacuum_count::int AS autovacuums, autoanalyze_count::int AS autoanalyzes, pg_relation_size(relid)::bigint AS heap_bytes
    FROM pg_stat_user_tables WHERE schemaname = 'metaspn' AND relname = 'task'`;
/** The task table's and its indexes' buffer reads: `hit` in shared buffers, `read` from the kernel (its page cache or the disk). */
const IO_STATS = `
  SELECT heap_blks_hit::bigint AS heap_hit, heap_blks_read::bigint AS heap_read, idx_blks_hit::bigint AS idx_hit, idx_blks_read::bigint AS idx_read
    FROM pg_statio_user_tables WHERE schemaname = 'metaspn' AND relname = 'task'`;
/** The cluster's WAL position and records written so far (pg_stat_wal: every database's, so run it on a server of its own). */
const WAL_STATS = `
  SELECT pg_current_wal_lsn() - '0/0'::pg_lsn AS lsn, wal_records::bigint AS records, wal_fpi::bigint AS fpi FROM pg_stat_wal`;
const INDEX_STATS = `
  SELECT s.indexrelname AS index, s.idx_scan::int AS scans, s.idx_tup_read::bigint AS read, s.idx_tup_fetch::bigint AS fetched,
         pg_relation_size(s.indexrelid)::bigint AS bytes
    FROM pg_stat_user_indexes s WHERE s.schemaname = 'metaspn' AND s.relname = 'task' ORDER BY s.indexrelname`;

/** The claim's selection (statements.ts `claim`, without locking or updating), explained. */
const EXPLAIN_CLAIM = `
  EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, FORMAT JSON)
  WITH due AS MATERIALIZED (
    SELECT id, t, seq FROM metaspn.task WHERE queue = $1 AND state = 1 AND t <= now() ORDER BY t, seq LIMIT 100),
  rdy AS MATERIALIZED (
    SELECT id, ready_seq FROM metaspn.task WHERE queue = $1 AND state = 0 ORDER BY ready_seq LIMIT greatest(0, 100 - (SELECT count(*) FROM due)))
  SELECT (SELECT count(*) FROM due) + (SELECT count(*) FROM rdy)`;

interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  'Actual Rows'?: number;
  'Shared Hit Blocks'?: number;
  'Shared Read Blocks'?: number;
  'Rows Removed by Filter'?: number;
  Plans?: PlanNode[];
}

function scans(n: PlanNode, out: string[] = []): string[] {
  if (n['Index Name']) out.push(`${n['Index Name']}: ${n['Actual Rows']} rows, ${(n['Shared Hit Blocks'] ?? 0) + (n['Shared Read Blocks'] ?? 0)} buffers`);
  for (const p of n.Plans ?? []) scans(p, out);
  return out;
}

async function main(): Promise<void> {
  const a = parse(process.argv.slice(2));
  const name = `metaspn_profile_${randomBytes(3).toString('hex')}`;
  await withClient(a.url, (c) => c.query(`CREATE DATABASE ${name}`));
  const u = new URL(a.url);
  u.pathname = `/${name}`;
  const url = u.toString();
  // The postmaster's pid: the first line of postmaster.pid in the data directory (the server is on this machine).
  const dataDir = await withClient(url, async (c) => (await c.query<{ d: string }>(`SELECT setting AS d FROM pg_settings WHERE name = 'data_directory'`)).rows[0]!.d);
  const pmPid = Number(readFileSync(`${dataDir}/postmaster.pid`, 'utf8').split('\n')[0]);
  try {
    const q = new PgQueue({ name: QUEUE, setting: { url, source: 'bench' }, ack_window_ms: policyWith({}).ack_window_ms, start_ahead: a.startAhead });
    try {
      await q.stats();
      if (a.vacuumed) await withClient(url, (c) => c.query('ALTER TABLE metaspn.task SET (autovacuum_enabled = off)'));
      const enqMs = await timedEnqueue(q, a.size);
      if (a.vacuumed) await withClient(url, (c) => c.query('VACUUM metaspn.task'));
      if (a.vacuumed && a.autovacuum) await withClient(url, (c) => c.query('ALTER TABLE metaspn.task RESET (autovacuum_enabled)'));
      await withClient(url, (c) => c.query('CHECKPOINT'));
      // The extension's functions live in each database that creates it: the profile's is new.
      const statsOn =
        a.statements &&
        (await withClient(url, (c) =>
          c
            .query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements')
            .then(() => c.query(`SELECT pg_stat_statements_reset()`))
            .then(
              () => true,
              (err: unknown) => {
                process.stderr.write(`--statements: none to print (${(err as Error).message})\n`);
                return false;
              },
            ),
        ));
      const before = await withClient(url, async (c) => ({
        xact: Number((await c.query<{ n: string }>(`SELECT xact_commit AS n FROM pg_stat_database WHERE datname = current_database()`)).rows[0]!.n),
        wal: (await c.query<Record<string, string>>(WAL_STATS)).rows[0]!,
        io: (await c.query<Record<string, string>>(IO_STATS)).rows[0]!,
      }));
      const explains: { ms: number; plan: string[] }[] = [];
      let probing = a.explainEveryMs > 0;
      const probe = (async () => {
        if (!probing) return;
        await withClient(url, async (c) => {
          while (probing) {
            await new Promise((r) => setTimeout(r, a.explainEveryMs));
            if (!probing) break;
            const r = await c.query<{ 'QUERY PLAN': [{ Plan: PlanNode; 'Execution Time': number }] }>(EXPLAIN_CLAIM, [QUEUE]);
            const top = r.rows[0]!['QUERY PLAN'][0];
            explains.push({ ms: top['Execution Time'], plan: scans(top.Plan) });
          }
        });
      })();
      const session = a.cpuprof || a.heapprof ? new Session() : null;
      session?.connect();
      if (session && a.cpuprof) {
        await session.post('Profiler.enable');
        await session.post('Profiler.setSamplingInterval', { interval: 200 });
        await session.post('Profiler.start');
      }
      if (session && a.heapprof) {
        await session.post('HeapProfiler.enable');
        await session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
      }
      const cpu0 = process.cpuUsage();
      const srv0 = serverCpuSeconds(pmPid);
      const policy = policyWith({ concurrency: 8, ...(a.workload === 'fail' ? { backoff_base_ms: 1 } : {}) });
      const t0 = nowMs();
      const summary = await drainOnce(q, workers[a.workload], policy, '/nonexistent-bench-workspace', { prefetch: a.workload === 'b500' ? 500 : 100, nextDue: () => q.nextDueAt() });
      const ms = nowMs() - t0;
      const cpu = process.cpuUsage(cpu0);
      const srv = serverCpuSeconds(pmPid) - srv0;
      if (session && a.cpuprof) writeFileSync(a.cpuprof, JSON.stringify((await session.post('Profiler.stop')).profile));
      if (session && a.heapprof) writeFileSync(a.heapprof, JSON.stringify((await session.post('HeapProfiler.stopSampling')).profile));
      session?.disconnect();
      probing = false;
      await probe;
      const wal1 = await withClient(url, async (c) => (await c.query<Record<string, string>>(WAL_STATS)).rows[0]!);
      // Statistics reach the shared counters within a second of the backend's last transaction (PostgreSQL 15).
      await withClient(url, (c) => c.query('SELECT pg_sleep(1.1)'));
      const after = await withClient(url, async (c) => ({
        io: (await c.query<Record<string, string>>(IO_STATS)).rows[0]!,
        xact: Number((await c.query<{ n: string }>(`SELECT xact_commit AS n FROM pg_stat_database WHERE datname = current_database()`)).rows[0]!.n),
        table: (await c.query(TABLE_STATS)).rows[0] as Record<string, unknown>,
        indexes: (await c.query(INDEX_STATS)).rows as Record<string, unknown>[],
        statements: statsOn
          ? (
              await c.query(
                `SELECT calls::int, round(total_exec_time)::int AS total_ms, round(mean_exec_time::numeric, 3)::float8 AS mean_ms, shared_blks_hit::bigint AS hit, rows::bigint,
                        left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS query
                   FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY total_exec_time DESC LIMIT 12`,
              )
            ).rows
          : [],
      }));
      const us = (s: number): string => ((s * 1e6) / a.size).toFixed(0);
      const per = (k: string, x: Record<string, string>, y: Record<string, string>): number => Math.round((Number(y[k]) - Number(x[k])) / a.size);
      const io = Object.fromEntries(Object.keys(after.io).map((k) => [k, per(k, before.io, after.io)]));
      const out = {
        workload: a.workload,
        size: a.size,
        ...(a.vacuumed ? { vacuumed: true, autovacuum: a.autovacuum } : {}),
        start_ahead: a.startAhead,
        completed: summary.completed,
        enqueue_per_s: Math.round(perSecond(a.size, enqMs)),
        tasks_per_s: Math.round(perSecond(a.size, ms)),
        node_us_per_task: us((cpu.user + cpu.system) / 1e6),
        server_us_per_task: us(srv),
        transactions: after.xact - before.xact,
        wal_bytes_per_task: per('lsn', before.wal, wal1),
        wal_records_per_task: (Number(wal1.records) - Number(before.wal.records)) / a.size,
        wal_fpi_per_task: (Number(wal1.fpi) - Number(before.wal.fpi)) / a.size,
        blocks_per_task: io,
        load: os.loadavg()[0]!.toFixed(1),
        table: after.table,
        indexes: after.indexes,
      };
      process.stdout.write(`${JSON.stringify(out)}\n`);
      if (explains.length) {
        explains.sort((x, y) => y.ms - x.ms);
        const med = explains.map((e) => e.ms).sort((x, y) => x - y)[Math.floor(explains.length / 2)]!;
        process.stdout.write(`claim selection explained ${explains.length}×: median ${med.toFixed(2)} ms; slowest ${explains[0]!.ms.toFixed(2)} ms: ${explains[0]!.plan.join('; ')}\n`);
        for (const e of explains.slice(0, 3)) process.stdout.write(`  ${e.ms.toFixed(2)} ms ${e.plan.join('; ')}\n`);
      }
      for (const s of after.statements) process.stdout.write(`  ${JSON.stringify(s)}\n`);
    } finally {
      await q.close();
    }
  } finally {
    await withClient(a.url, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
