/**
 * Chaos for Season 1 on PostgreSQL: `s1 run-local` of three dates against a fresh database while
 * two `metaspn worker run` processes act as other hosts (each in a pid and hostname namespace of
 * its own, `unshare --pid --uts`, where the machine allows: both are pid 1, on hosts `host-a` and
 * `host-b`), one draining stage 1, the other each stage in turn. The run-local and the workers are
 * SIGKILLed: at fixed fractions of a stage's progress (so the suite always kills mid-stage, not
 * only by chance) and at random; killed workers are started again, as a supervisor would, and a
 * date's run-local is run again until it exits 0. Then the store exported in order must equal a
 * clean run's byte for byte (the file backend's, which pg-s1.test.ts shows equal to a clean run on
 * the database), with no id twice, every queue drained and doctor clean.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alive, chaosWorkspace, duplicateIds, kill, report, Rng, run, runIn, scale, sleep, start, STAGES, STORE_FILES, type DoctorFinding, type Proc, type Run } from '../../chaos/lib.js';
import { generateSignals } from '../../scripts/gen-signals.js';
import { BIN, cliEnv } from '../integration/cli.js';
import { createTestDatabase, pgAvailable, type TestDatabase } from '../queue/pg-db.js';

const up = await pgAvailable();
const s = scale();
const DATES = s.full ? ['2026-01-13', '2026-01-14', '2026-01-15', '2026-01-16', '2026-01-17', '2026-01-18'] : ['2026-01-15', '2026-01-16', '2026-01-17'];
const WORKER_SPEC = (stage: string): string => `metaspn_ops.workers.s1:${stage.replace(/(^|_)(\w)/g, (_, _u: string, c: string) => c.toUpperCase())}Worker`;

/** Whether workers can get pid and hostname namespaces of their own here (root, util-linux unshare). */
function namespacesUsable(): string | null {
  if (process.getuid?.() !== 0) return 'not root';
  const r = spawnSync('unshare', ['--pid', '--uts', '--fork', '--kill-child=SIGKILL', 'sh', '-c', 'hostname host-probe && test "$(hostname)" = host-probe && test $$ = 1'], { encoding: 'utf8' });
  return r.status === 0 ? null : `unshare --pid --uts failed (${(r.stderr || r.error?.message || `exit ${r.status}`).trim().slice(0, 200)})`;
}
const noNamespaces = namespacesUsable();
if (up && noNamespaces) process.stderr.write(`pg-s1 chaos: workers run WITHOUT pid/hostname namespaces: ${noNamespaces}\n`);

let db: TestDatabase;

const sql = <R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<R[]> => db.query<R>(text, values);

/**
 * `metaspn worker run` as another host: pid 1 of a pid namespace, hostname `host` in a UTS
 * namespace. SIGKILL to the process `unshare` (the one returned) kills the worker with it
 * (`--kill-child`).
 */
function hostWorker(host: string, args: string[], env: NodeJS.ProcessEnv): Proc {
  const t0 = performance.now();
  const argv = [process.execPath, BIN, ...args];
  const child = noNamespaces
    ? spawn(process.execPath, [BIN, ...args], { env: cliEnv(env), stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn('unshare', ['--pid', '--uts', '--fork', '--kill-child=SIGKILL', 'sh', '-c', 'hostname "$0" && exec "$@"', host, ...argv], { env: cliEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<Run>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, ms: performance.now() - t0 })));
  return { child, exited };
}

/** Processes whose command line names `ws` (the workers inside their namespaces included). */
function processesOf(ws: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').includes(ws)) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

interface Kill {
  date: string;
  attempt: number;
  who: string;
  /** Why: a fixed fraction of a stage's progress, or random. */
  why: string;
  /** Stage-1 rows of the date committed when it was killed, of how many. */
  rows: number;
  of: number;
}

describe.skipIf(!up)('chaos: Season 1 on PostgreSQL, run-local and two worker hosts SIGKILLed', () => {
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it(`three dates (six with CHAOS_FULL) re-run until they exit 0: the exported store equals a clean run's, no id twice, queues drained, doctor clean (seed ${s.seed})`, async () => {
    const t0 = performance.now();
    const rng = new Rng(s.seed);
    // 150 subjects (20 signals each over 20 days): 150 stage-1 tasks a date.
    const signals = `${generateSignals({ subjects: 150, perSubject: 20, start: '2026-01-01', days: 20, seed: s.seed % 1000 }).join('\n')}\n`;

    // The clean run: the same dates on files, once each.
    const clean = chaosWorkspace({ signals });
    const rowsOf = new Map<string, number>();
    const cleanMs: number[] = [];
    for (const date of DATES) {
      const r = await run(['s1', 'run-local', '--workspace', clean, '--date', date, '--json'], { env: { METASPN_DATABASE_URL: '' } });
      expect(r.code, r.stderr).toBe(0);
      cleanMs.push(r.ms);
      rowsOf.set(date, (JSON.parse(r.stdout) as { stages: { outputs: { rows_written: number }[] }[] }).stages[0]!.outputs[0]!.rows_written);
    }

    const ws = chaosWorkspace({ signals });
    const env = {
      METASPN_DATABASE_URL: db.url,
      // Small slots: a stage takes long enough to be killed in the middle of it.
      METASPN_QUEUE_CONCURRENCY: '4',
      // Kills charge attempts to the tasks they catch: none may run out of them.
      METASPN_QUEUE_MAX_ATTEMPTS: '1000',
      METASPN_QUEUE_LEASE_MS: '5000',
    };
    const kills: Kill[] = [];
    const exits: Record<string, number> = {};
    const oddWorkerExits: string[] = [];
    let stopping = false;
    const hosts: { name: string; stage: () => string; proc: Proc | null; starts: number }[] = [
      { name: 'host-a', stage: () => 'update_attention_scores', proc: null, starts: 0 },
      // Host b drains each stage in turn, one per start: stages 2–4 run on another host too.
      { name: 'host-b', stage: () => STAGES[(hosts[1]!.starts - 1) % STAGES.length]!, proc: null, starts: 0 },
    ];
    const launch = (h: (typeof hosts)[number]): void => {
      h.starts++;
      const p = hostWorker(h.name, ['worker', 'run', WORKER_SPEC(h.stage()), '--workspace', ws, '--poll-ms', '50', '--quiet'], env);
      h.proc = p;
      void p.exited.then((r) => {
        if (!r.signal && !stopping) oddWorkerExits.push(`${h.name} exit ${r.code}: ${r.stderr.slice(-600)}`);
        if (stopping || h.proc !== p) return;
        // The supervisor starts it again after a moment.
        setTimeout(() => !stopping && h.proc === p && launch(h), rng.int(50, 400));
      });
    };
    // One connection for the progress polls (a connection per poll would load the 2-core machine more than the run).
    const poll = new pg.Client({ connectionString: db.url });
    poll.on('error', () => undefined);
    await poll.connect();
    const stageRows = async (date: string): Promise<number> =>
      (await poll.query<{ n: number }>(`SELECT count(*)::int AS n FROM metaspn.artifact WHERE store = 's1.update_attention_scores' AND date = $1`, [date])).rows[0]!.n;
    /** SIGKILLs `p` once `cond` holds (and the run is still going), recording the kill; resolves when done or the run ended. */
    const killWhen = async (date: string, attempt: number, who: string, why: string, victim: () => Proc | null, rl: Proc, cond: (rows: number) => boolean): Promise<void> => {
      while (alive(rl)) {
        const rows = await stageRows(date);
        const p = victim();
        if (p && alive(p) && cond(rows)) {
          await kill(p);
          kills.push({ date, attempt, who, why, rows, of: rowsOf.get(date)! });
          return;
        }
        await sleep(20);
      }
    };

    // The steps around the chaos run in this process (runIn): what is killed stays a process of its own.
    const migrated = await runIn(['db', 'migrate'], { env });
    expect(migrated.code, migrated.stderr).toBe(0);
    for (const h of hosts) launch(h);
    const attemptsOf: Record<string, number> = {};
    const attemptMs: number[] = [];
    try {
      for (const [i, date] of DATES.entries()) {
        const total = rowsOf.get(date)!;
        for (let attempt = 1; ; attempt++) {
          if (attempt > 30) throw new Error(`${date}: not published after 30 attempts; kills ${JSON.stringify(kills)}`);
          const rl = start(['s1', 'run-local', '--workspace', ws, '--date', date, '--json'], { env });
          const faults: Promise<void>[] = [];
          // Fixed kills: the run-local at a third of the first date's stage 1, host a's worker at two
          // thirds of its re-run, the run-local of the second date once its stage 1 is done.
          if (i === 0 && attempt === 1)
            faults.push(
              killWhen(
                date,
                attempt,
                'run-local',
                'stage 1 at 1/3',
                () => rl,
                rl,
                (n) => n >= total / 3,
              ),
            );
          if (i === 0 && attempt === 2)
            faults.push(
              killWhen(
                date,
                attempt,
                'host-a',
                'stage 1 at 2/3',
                () => hosts[0]!.proc,
                rl,
                (n) => n >= (2 * total) / 3,
              ),
            );
          if (i === 1 && attempt === 1)
            faults.push(
              killWhen(
                date,
                attempt,
                'run-local',
                'stage 1 done',
                () => rl,
                rl,
                (n) => n >= total,
              ),
            );
          // Random kills (in attempts without a fixed one): one of the three, after a random part of a clean run's time.
          if (faults.length === 0 && rng.float() < 0.7) {
            const delay = rng.int(0, Math.round(cleanMs[i]! * 1.5));
            const who = rng.pick(['run-local', 'host-a', 'host-b']);
            faults.push(
              sleep(delay).then(async () => {
                const p = who === 'run-local' ? rl : hosts[who === 'host-a' ? 0 : 1]!.proc;
                if (!alive(rl) || !p || !alive(p)) return;
                const rows = await stageRows(date);
                await kill(p);
                kills.push({ date, attempt, who, why: `random after ${delay} ms`, rows, of: total });
              }),
            );
          }
          const r = await rl.exited;
          await Promise.all(faults);
          attemptMs.push(Math.round(r.ms));
          const k = r.signal ?? String(r.code);
          exits[k] = (exits[k] ?? 0) + 1;
          if (r.code === 0) {
            attemptsOf[date] = attempt;
            break;
          }
          // Killed, or 11 (a task still held by a worker that was killed: its lease is handed out again).
          if (r.signal !== 'SIGKILL' && r.code !== 11) throw new Error(`${date} attempt ${attempt}: run-local exited ${r.code}: ${r.stdout}\n${r.stderr}`);
        }
      }
    } finally {
      stopping = true;
      await Promise.all(hosts.map((h) => (h.proc ? kill(h.proc) : null)));
      await poll.end();
    }
    // Every process of this workspace is gone (the workers inside their namespaces too).
    for (let n = 0; processesOf(ws).length && n < 200; n++) await sleep(20);
    expect(processesOf(ws)).toEqual([]);

    const out = chaosWorkspace({ signals: '' });
    const x = await runIn(['store', 'export', '--workspace', ws, '--out', out], { env });
    expect(x.code, x.stderr).toBe(0);
    const identical = STORE_FILES.map((f) => readFileSync(join(out, 'store', f), 'utf8') === readFileSync(join(clean, 'store', f), 'utf8'));
    const dupes = duplicateIds(out);
    const undrained: unknown[] = [];
    for (const q of STAGES) {
      const st = await runIn(['queue', 'stats', q, '--workspace', ws, '--json'], { env });
      expect(st.code, st.stderr).toBe(0);
      const v = JSON.parse(st.stdout) as { ready: number; scheduled: number; leased: number; dead: number };
      if (v.ready || v.scheduled || v.leased || v.dead) undrained.push(v);
    }
    const doc = await runIn(['doctor', '--workspace', ws, '--json'], { env });
    const problems = (JSON.parse(doc.stdout) as { findings: DoctorFinding[] }).findings.filter((f) => f.severity !== 'info' && !f.repaired);
    // Who the workers were to the database: pid and host of their presence.
    const presence = await sql<{ pid: number; host: string }>(`SELECT DISTINCT pid, host FROM metaspn.worker WHERE host LIKE 'host-%' ORDER BY host`);
    const figures = {
      seed: s.seed,
      dates: DATES,
      namespaces: noNamespaces ?? 'pid+uts',
      attempts: attemptsOf,
      clean_ms: cleanMs.map(Math.round),
      attempt_ms: attemptMs,
      kills: kills.length,
      kills_mid_stage: kills.filter((k) => k.rows > 0 && k.rows < k.of).length,
      kill_list: kills,
      run_local_exits: exits,
      worker_starts: Object.fromEntries(hosts.map((h) => [h.name, h.starts])),
      presence,
      store_identical: identical.every(Boolean),
      duplicate_ids: Object.values(dupes).flat().length,
      undrained,
      doctor: { code: doc.code, problems },
      duration_ms: Math.round(performance.now() - t0),
    };
    report('pg-s1', figures);
    expect(identical).toEqual([true, true, true, true]);
    expect(dupes).toEqual(Object.fromEntries(STORE_FILES.map((f) => [f, []])));
    expect(undrained).toEqual([]);
    expect(figures.doctor).toEqual({ code: 0, problems: [] });
    expect(oddWorkerExits).toEqual([]);
    // The chaos happened: the fixed kills, at least two of them in the middle of a stage.
    expect(kills.filter((k) => !k.why.startsWith('random')).map((k) => [k.date, k.who, k.why])).toEqual([
      [DATES[0], 'run-local', 'stage 1 at 1/3'],
      [DATES[0], 'host-a', 'stage 1 at 2/3'],
      [DATES[1], 'run-local', 'stage 1 done'],
    ]);
    expect(figures.kills_mid_stage).toBeGreaterThanOrEqual(2);
    if (!noNamespaces)
      expect(presence.map((p) => [p.pid, p.host])).toEqual(
        expect.arrayContaining([
          [1, 'host-a'],
          [1, 'host-b'],
        ]),
      );
  }, 600_000);
});
