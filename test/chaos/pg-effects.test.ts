/**
 * Chaos on a private PostgreSQL cluster this suite starts itself (pg-cluster.ts): 4 `metaspn worker
 * run` processes drain one queue whose handler writes one effect per task (an entry of the
 * un-keyed log `chaos` and an artifact row) with ctx.effects, while the suite SIGKILLs workers at
 * random (a supervisor starts them again), terminates their database sessions
 * (`pg_terminate_backend`), and crashes the server twice (`pg_ctl stop -m immediate`, then crash
 * recovery). Each kind of fault also comes at fixed fractions of the tasks completed (kills at 10,
 * 60 and 80 %, terminated sessions at 15, 35 and 70 %, the crashes at 25 and 50 %), so that a fast
 * drain cannot finish before the chaos has happened. Every task must complete, every effect exist
 * exactly once, written by the lease that completed the task, and the counters equal count(*).
 *
 * The NEGATIVE CONTROL runs the same chaos with a handler that commits its effect in a transaction
 * of its own before the acknowledgement: it must show duplicates, or the suite has no teeth.
 * Skipped, saying why, when no server binaries are installed (or root cannot run them as postgres).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chaosWorkspace, kill, report, Rng, runIn, scale, sleep, start, type DoctorFinding, type Proc } from '../../chaos/lib.js';
import { clusterUnavailable, startCluster, type Cluster } from './pg-cluster.js';

const why = clusterUnavailable();
if (why) process.stderr.write(`PostgreSQL chaos suite SKIPPED: ${why}\n`);

const s = scale();
const TASKS = s.full ? 20_000 : 1_000;
/** How long the drain may take (the long run: a loaded 2-core machine drains about 30-200 tasks/s under this chaos). */
const DRAIN_MS = s.full ? 1_200_000 : 150_000;
const QUEUE = 'pgchaos';
const FIXTURE = join(import.meta.dirname, 'pg-workers.mjs');

let cluster: Cluster;

/** One statement on a connection of its own (the server may be restarting: null then). */
async function sql<R extends pg.QueryResultRow>(url: string, text: string, values: unknown[] = []): Promise<R[] | null> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return (await c.query<R>(text, values)).rows;
  } catch {
    return null;
  } finally {
    await c.end().catch(() => undefined);
  }
}

type Fault = 'worker_kill' | 'session_terminate' | 'server_restart';

interface Findings {
  tasks: number;
  worker_kills: number;
  sessions_terminated: number;
  server_restarts: number;
  /** The faults planned at fractions of the tasks: their kind and how many tasks were completed when each took effect. */
  planned: { kind: Fault; at_completed: number }[];
  worker_exits: Record<string, number>;
  duration_ms: number;
  stats: Record<string, unknown>;
  /** count(*) by state, as the counters name them. */
  counted: Record<string, number>;
  effects: number;
  distinct_effect_tasks: number;
  duplicated_tasks: string[];
  missing_tasks: string[];
  /** Effects not written by the lease that completed the task (a fenced-off holder's). */
  stale_effects: number;
  /** Worker exits that were neither a kill nor 11 (the database went away), with their stderr. */
  odd_exits: string[];
  artifacts: number;
  /** `metaspn doctor --json` on the workspace with the database's URL: exit code and findings that are not info. */
  doctor: { code: number | null; problems: DoctorFinding[] };
}

/**
 * Runs the chaos against a fresh database of the cluster with worker `exportName` of
 * pg-workers.mjs, until every task completed and the server was crashed twice.
 */
async function chaos(exportName: 'Effects' | 'EffectFirst', seed: number): Promise<Findings> {
  const rng = new Rng(seed);
  const db = `chaos_${exportName.toLowerCase()}`;
  expect(await sql(cluster.url('postgres'), `CREATE DATABASE ${db}`)).not.toBeNull();
  const url = cluster.url(db);
  const ws = chaosWorkspace();
  const env = {
    METASPN_DATABASE_URL: url,
    // Many kills charge attempts to the tasks they catch: none may run out of them.
    METASPN_QUEUE_MAX_ATTEMPTS: '1000',
    METASPN_QUEUE_LEASE_MS: '5000',
    METASPN_QUEUE_BACKOFF_BASE_MS: '10',
    METASPN_QUEUE_BACKOFF_CAP_MS: '200',
  };
  const file = join(ws, 'tasks.jsonl');
  writeFileSync(file, Array.from({ length: TASKS }, (_, i) => `${JSON.stringify({ id: `t${i}`, payload: { n: i, ms: rng.int(2, 8) } })}\n`).join(''));
  const enq = await runIn(['queue', 'enqueue', QUEUE, '--workspace', ws, '--file', file], { env });
  expect(enq.code, enq.stderr).toBe(0);

  const t0 = performance.now();
  const f = {
    worker_kills: 0,
    sessions_terminated: 0,
    server_restarts: 0,
    planned: [] as { kind: Fault; at_completed: number }[],
    worker_exits: {} as Record<string, number>,
    odd_exits: [] as string[],
  };
  let stopping = false;
  const procs: (Proc | null)[] = [null, null, null, null];
  /** Starts worker `i`; when it ends by itself (the database went away: 11), it is started again, as a supervisor would. */
  const launch = (i: number): void => {
    const p = start(['worker', 'run', `${FIXTURE}:${exportName}`, '--workspace', ws, '--concurrency', '8', '--poll-ms', '20', '--quiet'], { env });
    procs[i] = p;
    void p.exited.then((r) => {
      const k = r.signal ?? String(r.code);
      f.worker_exits[k] = (f.worker_exits[k] ?? 0) + 1;
      // Expected: killed, or 11 (the database went away); anything else is kept for the report.
      if (!r.signal && r.code !== 11 && !stopping) f.odd_exits.push(`exit ${r.code}: ${r.stderr.slice(-600)}`);
      if (procs[i] !== p || stopping) return;
      // A worker that found no server exits at once: start it again a moment later.
      setTimeout(() => !stopping && procs[i] === p && launch(i), r.signal ? 0 : 100);
    });
  };

  /**
   * Tasks completed now, on a connection kept between looks (a connection per look took longer
   * than the drain's last fifth once acknowledgements got faster: a planned fault then found the
   * drain over); null while the server is away, reconnecting at the next look.
   */
  let poll: pg.Client | null = null;
  const completed = async (): Promise<number | null> => {
    try {
      if (!poll) {
        const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
        c.on('error', () => undefined);
        poll = c;
        await c.connect();
      }
      const r = await poll.query<{ n: number }>(`SELECT count(*)::int AS n FROM metaspn.task WHERE queue = $1 AND state = 3`, [QUEUE]);
      return r.rows[0]!.n;
    } catch {
      const c = poll;
      poll = null;
      await c?.end().catch(() => undefined);
      return null;
    }
  };
  const aliveWorkers = (): Proc[] => procs.filter((p): p is Proc => p !== null && p.child.exitCode === null && p.child.signalCode === null);
  /** SIGKILLs one running worker (the supervisor, launch, starts it again once it is gone); false when none runs. */
  const killWorker = async (): Promise<boolean> => {
    const alive = aliveWorkers();
    if (!alive.length) return false;
    f.worker_kills++;
    await kill(rng.pick(alive));
    return true;
  };
  const terminateSessions = async (): Promise<boolean> => {
    const n = await cluster.terminate(db, 'metaspn', rng.int(1, 2)).catch(() => 0);
    f.sessions_terminated += n;
    return n > 0;
  };
  const restartServer = async (): Promise<boolean> => {
    await cluster.crash();
    await sleep(rng.int(100, 600));
    await cluster.start();
    f.server_restarts++;
    return true;
  };
  /**
   * Each kind of fault at fixed fractions of the tasks completed, so that every run has each of
   * them while tasks are in flight however fast the workers drain (a random supervisor alone once
   * let 1,000 tasks finish before it terminated a session); the random faults come on top.
   */
  const planned: { at: number; kind: Fault; run: () => Promise<boolean> }[] = (
    [
      [0.1, 'worker_kill', killWorker],
      [0.15, 'session_terminate', terminateSessions],
      [0.25, 'server_restart', restartServer],
      [0.35, 'session_terminate', terminateSessions],
      [0.5, 'server_restart', restartServer],
      [0.6, 'worker_kill', killWorker],
      [0.7, 'session_terminate', terminateSessions],
      [0.8, 'worker_kill', killWorker],
    ] as const
  ).map(([fraction, kind, run]) => ({ at: Math.floor(TASKS * fraction), kind, run }));
  /** Tasks completed at the last look of the drive loop. */
  let latest = 0;
  /**
   * Random faults, every 0.4-1.2 s, until the drain ends; one only once the tasks moved since the
   * last (a worker needs about a second to start on a loaded 2-core machine, several under heavy
   * load: faults faster than that starved the drain).
   */
  async function randomFaults(): Promise<void> {
    let seen = -1;
    while (!stopping) {
      await sleep(rng.int(400, 1200));
      if (stopping) return;
      if (latest === seen) continue;
      seen = latest;
      if (rng.float() < 0.5) await killWorker();
      else await terminateSessions();
    }
  }
  async function drive(): Promise<void> {
    const random = randomFaults();
    try {
      for (;;) {
        const done = await completed();
        if (done !== null) latest = done;
        if (done === TASKS && planned.length === 0) break;
        if (performance.now() - t0 > DRAIN_MS) throw new Error(`not drained within ${DRAIN_MS / 1000} s: ${done} of ${TASKS} completed, ${JSON.stringify(f)}`);
        const next = planned[0];
        if (next && done !== null && done >= next.at) {
          // Done only once it took effect (no worker alive, no session to end: tried again).
          if (await next.run()) {
            f.planned.push({ kind: next.kind, at_completed: done });
            planned.shift();
          }
          continue;
        }
        // Polled often: a fault planned at a fraction lands near it, not after the drain.
        await sleep(10);
      }
    } finally {
      stopping = true;
      await random;
    }
  }
  for (let i = 0; i < 4; i++) launch(i);
  try {
    await drive();
  } finally {
    stopping = true;
    await Promise.all(procs.map((p) => (p ? kill(p) : null)));
    await (poll as pg.Client | null)?.end().catch(() => undefined);
  }
  const duration_ms = Math.round(performance.now() - t0);

  const stats = await runIn(['queue', 'stats', QUEUE, '--workspace', ws, '--json'], { env });
  expect(stats.code, stats.stderr).toBe(0);
  const counted = Object.fromEntries(
    (await sql<{ state: string; n: number }>(
      url,
      `SELECT (ARRAY['ready','scheduled','leased','completed','dead','cancelled'])[state + 1] AS state, count(*)::int AS n FROM metaspn.task WHERE queue = $1 GROUP BY state`,
      [QUEUE],
    ))!.map((r) => [r.state, r.n]),
  );
  const effects = (await sql<{ task_id: string; n: number }>(url, `SELECT task_id, count(*)::int AS n FROM metaspn.effect_log WHERE log = 'chaos' GROUP BY task_id`))!;
  const byTask = new Map(effects.map((e) => [e.task_id, e.n]));
  const stale = (await sql<{ n: number }>(
    url,
    `SELECT count(*)::int AS n FROM metaspn.effect_log e JOIN metaspn.task k ON k.queue = e.queue AND k.id = e.task_id WHERE e.log = 'chaos' AND e.fence <> k.fence`,
  ))![0]!.n;
  const artifacts = (await sql<{ n: number }>(url, `SELECT count(*)::int AS n FROM metaspn.artifact WHERE store = 'chaos.effects'`))![0]!.n;
  const ids = Array.from({ length: TASKS }, (_, i) => `t${i}`);
  const doc = await runIn(['doctor', '--workspace', ws, '--json'], { env });
  const findings = (JSON.parse(doc.stdout) as { findings: DoctorFinding[] }).findings;
  return {
    tasks: TASKS,
    ...f,
    duration_ms,
    stats: JSON.parse(stats.stdout) as Record<string, unknown>,
    counted,
    effects: effects.reduce((a, e) => a + e.n, 0),
    distinct_effect_tasks: byTask.size,
    duplicated_tasks: [...byTask].filter(([, n]) => n > 1).map(([id]) => id),
    missing_tasks: ids.filter((id) => !byTask.has(id)),
    stale_effects: stale,
    artifacts,
    doctor: { code: doc.code, problems: findings.filter((x) => x.severity !== 'info' && !x.repaired) },
  };
}

/** Every planned fault took effect, in order, before the last task completed; the random ones came on top. */
function expectPlannedChaos(f: Findings): void {
  expect(f.planned.map((p) => p.kind)).toEqual(['worker_kill', 'session_terminate', 'server_restart', 'session_terminate', 'server_restart', 'worker_kill', 'session_terminate', 'worker_kill']);
  expect(f.planned.filter((p) => p.at_completed >= TASKS)).toEqual([]);
  expect(f.worker_kills).toBeGreaterThanOrEqual(3);
  expect(f.sessions_terminated).toBeGreaterThanOrEqual(3);
  expect(f.server_restarts).toBe(2);
}

describe.skipIf(why !== null)('chaos: PostgreSQL, effects committed with the acknowledgement', () => {
  beforeAll(async () => {
    cluster = await startCluster();
  }, 120_000);
  afterAll(async () => {
    await cluster?.destroy();
  });

  it(
    `4 workers SIGKILLed and their sessions terminated at set points and at random, the server crashed twice, ${TASKS} tasks: every task completed, every effect exactly once, counters exact (seed ${s.seed})`,
    async () => {
      const f = await chaos('Effects', s.seed);
      report('pg-effects', { ...f, duplicated_tasks: f.duplicated_tasks.length, missing_tasks: f.missing_tasks.length });
      expect(f.stats).toMatchObject({ ready: 0, scheduled: 0, leased: 0, dead: 0, cancelled: 0, completed: TASKS });
      // The counters `queue stats` reads equal count(*).
      expect(f.counted).toEqual({ completed: TASKS });
      expect(f.missing_tasks).toEqual([]);
      expect(f.duplicated_tasks).toEqual([]);
      expect(f.effects).toBe(TASKS);
      expect(f.stale_effects).toBe(0);
      expect(f.odd_exits).toEqual([]);
      expect(f.artifacts).toBe(TASKS);
      // The chaos happened, each kind of it while tasks were still in flight.
      expectPlannedChaos(f);
      expect(f.doctor).toEqual({ code: 0, problems: [] });
    },
    DRAIN_MS + 60_000,
  );

  it(
    `NEGATIVE CONTROL: the same chaos with the effect committed before the acknowledgement duplicates effects (seed ${s.seed})`,
    async () => {
      const f = await chaos('EffectFirst', s.seed + 1);
      report('pg-effects-negative-control', { ...f, duplicated_tasks: f.duplicated_tasks.length, missing_tasks: f.missing_tasks.length });
      expect(f.stats).toMatchObject({ completed: TASKS, leased: 0 });
      expect(f.missing_tasks).toEqual([]);
      expectPlannedChaos(f);
      // The faults above do produce duplicates when effect and acknowledgement are separate.
      expect(f.duplicated_tasks.length).toBeGreaterThan(0);
      expect(f.effects).toBeGreaterThan(TASKS);
    },
    DRAIN_MS + 60_000,
  );
});
