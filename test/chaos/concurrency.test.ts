// Concurrency suite, short: 5k tasks, a worker killed every 1-3 s (npm run chaos: 50k, every 0.5-2.5 s).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHAOS_WORKER, concurrencySuite } from '../../chaos/concurrency.js';
import { chaosWorkspace, doctor, lines, problems, report, run, runIn, scale } from '../../chaos/lib.js';

const s = scale();
const tasks = s.full ? 50_000 : 5_000;

describe('chaos: concurrency', () => {
  it(
    `4 workers SIGKILLed and restarted at random, 1 enqueuer, 1 retry loop, ${tasks} tasks: all completed, artifacts exactly once (seed ${s.seed})`,
    async () => {
      const f = await concurrencySuite({
        tasks,
        seed: s.seed,
        batch: s.full ? 2_500 : 500,
        killMinMs: s.full ? 500 : 1_000,
        killMaxMs: s.full ? 2_500 : 3_000,
        // A hang detector: 5,000 tasks drain in about a minute on a quiet 2-core machine, took over 110 s at load 10-15.
        timeoutMs: s.full ? 1_500_000 : 300_000,
      });
      report('concurrency', { ...f });
      expect(f.anomalies).toEqual([]);
      expect(f.final_stats).toMatchObject({ ready: 0, scheduled: 0, leased: 0, dead: 0, completed: tasks });
      expect(f.completed_without_execution).toEqual([]);
      expect(f.missing_artifacts).toEqual([]);
      expect(f.duplicate_artifacts).toEqual([]);
      expect(f.artifacts).toBe(tasks);
      expect(f.worker_kills).toBeGreaterThan(0);
      expect(f.retried_from_dead_letters).toBeGreaterThanOrEqual(f.poison);
      // Last: a derived-index problem must not hide the checks above.
      expect(f.doctor_problems).toEqual([]);
      expect(f.doctor_exit).toBe(0);
    },
    // The drain may take 300 s, then four workers stop and doctor reads.
    s.full ? 1_800_000 : 420_000,
  );

  // Found by the suite above: with several processes appending to one store file, each process
  // re-indexed the rows the others had already indexed (ArtifactStore.catchUp started from its own
  // stale `covered`, never the shared one), so store/.index/<store>/date=*.jsonl held every row
  // several times and doctor warned that the index was not in step. No crash involved. The index
  // now keeps its shared coverage in meta.json.
  it('two worker processes writing through one store leave its per-date index in step (no kill)', async () => {
    const ws = chaosWorkspace();
    const file = join(ws, 'tasks.jsonl');
    writeFileSync(file, Array.from({ length: 3000 }, (_, i) => `${JSON.stringify({ id: `t${i}`, payload: { n: i } })}\n`).join(''));
    expect((await runIn(['queue', 'enqueue', 'chaos', '--workspace', ws, '--file', file])).code).toBe(0);
    const args = ['worker', 'run', CHAOS_WORKER, '--workspace', ws, '--once', '--concurrency', '8'];
    const [a, b] = await Promise.all([run(args), run(args)]);
    expect([a.code, b.code]).toEqual([0, 0]);
    const rows = lines(join(ws, 'store', 'chaos_artifacts.jsonl')).length;
    const indexed = lines(join(ws, 'store', '.index', 'chaos_artifacts', 'date=2026-01-01.jsonl')).length;
    expect(rows).toBe(3000);
    expect({ rows, indexed }).toEqual({ rows: 3000, indexed: 3000 });
    expect(problems(await doctor(ws))).toEqual([]);
  }, 60_000);
});
