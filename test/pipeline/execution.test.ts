import { describe, expect, it } from 'vitest';
import { runExecutionBackfill, type ResumeDecision } from '../../src/pipeline/backfill.js';
import type { PipelineExecution, StepExecution } from '../../src/pipeline/execution.js';
import { planRange } from '../../src/pipeline/plan.js';
import { runExecution } from '../../src/pipeline/runner.js';
import type { WorkerDefinition } from '../../src/runtime/worker-api.js';
import { memoryDeps } from './harness.js';

const NOW = Date.UTC(2026, 5, 1);
const stop = new AbortController().signal;
const DATES = ['2026-03-01', '2026-03-02', '2026-03-03', '2026-03-04', '2026-03-05', '2026-03-06'];

/**
 * A pipeline whose one step owns its ids and holds its writes back (as Season 1's stages do):
 * each partition's tasks take less time than the one before, so without the sequence later
 * partitions would commit first.
 */
function heldPipeline(o: { failIdentify?: string; previous?: boolean } = {}) {
  const committed: string[] = [];
  const inFlight = { now: 0, max: 0 };
  const held = new Map<string, string[]>();
  const step: StepExecution = {
    name: 'only',
    after: [],
    previous: o.previous ?? false,
    commitsInOrder: true,
    queue: 'held-only',
    defaults: { concurrency: 4 },
    identify: (run) => {
      if (run.partition === o.failIdentify) return Promise.reject(new Error(`cannot read ${run.partition}`));
      return Promise.resolve({ identity: `id-${run.partition}`, params: { as_of: run.as_of }, inputs: [] });
    },
    tasks: (run) => Promise.resolve([0, 1, 2].map((i) => ({ id: `t-${run.partition}-${i}`, payload: { date: run.partition, i } }))),
    worker: (run, _id, { held: isHeld }) => {
      held.set(run.run_id, []);
      const worker: WorkerDefinition<{ date: string; i: number }> = {
        name: 'held-only',
        isolation: 'none',
        async handle(t) {
          inFlight.now++;
          inFlight.max = Math.max(inFlight.max, inFlight.now);
          // Later dates finish sooner.
          await new Promise((r) => setTimeout(r, 5 + (DATES.length - DATES.indexOf(t.payload.date)) * 8));
          inFlight.now--;
          const row = `${t.payload.date}#${t.payload.i}`;
          if (isHeld) held.get(run.run_id)!.push(row);
          else committed.push(row);
        },
      };
      return { worker: worker as WorkerDefinition, init: { logger: run.log, workspace: memoryDeps().ws, env: {} } };
    },
    outputs: (run) => {
      committed.push(...(held.get(run.run_id) ?? []).sort());
      held.delete(run.run_id);
      return Promise.resolve([{ path: 'memory', rows_written: 3, rows_present: 0, sha256: run.partition }]);
    },
  };
  const exec: PipelineExecution = {
    name: 'held',
    steps: [step],
    checkNames: [],
    checks: () => Promise.resolve([]),
    publishes: (run) => Promise.resolve({ summary_id: `sum-${run.partition}`, params: { as_of: run.as_of, config_hash: 'h' } }),
  };
  return { exec, committed, inFlight };
}

describe('the runner over executions (memory backends)', () => {
  it('a parallel backfill commits held writes in partition order, while the drains overlap', async () => {
    const d = memoryDeps(() => NOW);
    const { exec, committed, inFlight } = heldPipeline();
    const plans = planRange({ name: 'held', partition: 'date', steps: [] } as never, DATES[0]!, DATES[5]!, NOW);
    const rep = await runExecutionBackfill(exec, { backfillId: 'bf', plans, maxParallel: 4, resume: false, by: 'backfill bf', stop }, d, () => Promise.resolve(new Map()));
    expect(Object.values(rep.partitions).map((p) => p.status)).toEqual(DATES.map(() => 'published'));
    expect(committed.map((r) => r.slice(0, 10))).toEqual(DATES.flatMap((x) => [x, x, x]));
    expect(inFlight.max).toBeGreaterThan(3);
    expect(await d.stores.pointers.partitions('held')).toEqual(DATES);
  });

  it('a partition that fails before its turn gives it up: the later ones still commit, in order', async () => {
    const d = memoryDeps(() => NOW);
    const { exec, committed } = heldPipeline({ failIdentify: '2026-03-03' });
    const plans = planRange({ name: 'held', partition: 'date', steps: [] } as never, DATES[0]!, DATES[5]!, NOW);
    const rep = await runExecutionBackfill(exec, { backfillId: 'bf', plans, maxParallel: 3, resume: false, by: 'backfill bf', stop }, d, () => Promise.resolve(new Map()));
    expect(rep.partitions['2026-03-03']).toMatchObject({ status: 'failed', reason: expect.stringMatching(/cannot read 2026-03-03/) });
    const others = DATES.filter((x) => x !== '2026-03-03');
    for (const x of others) expect(rep.partitions[x]!.status, x).toBe('published');
    expect(committed.map((r) => r.slice(0, 10))).toEqual(others.flatMap((x) => [x, x, x]));
  });

  it('--resume: in a pipeline that reads the previous partition, every partition after the first that runs again runs too', async () => {
    const decide = (): Promise<Map<string, ResumeDecision>> =>
      Promise.resolve(
        new Map<string, ResumeDecision>([
          ['2026-03-01', { skip: 'old-1' }],
          ['2026-03-02', { skip: null, stale: 'inputs changed' }],
          ['2026-03-03', { skip: 'old-3' }],
        ]),
      );
    const plans = planRange({ name: 'held', partition: 'date', steps: [] } as never, DATES[0]!, DATES[2]!, NOW);
    const ordered = heldPipeline({ previous: true });
    const a = await runExecutionBackfill(
      ordered.exec,
      { backfillId: 'bf', plans, maxParallel: 1, resume: true, by: 'backfill bf', stop },
      memoryDeps(() => NOW),
      decide,
    );
    expect(Object.values(a.partitions).map((p) => [p.status, p.stale ?? null])).toEqual([
      ['skipped', null],
      ['published', 'inputs changed'],
      ['published', null],
    ]);
    // Without a step reading the previous partition, each partition stands alone.
    const free = heldPipeline();
    const b = await runExecutionBackfill(
      free.exec,
      { backfillId: 'bf', plans, maxParallel: 1, resume: true, by: 'backfill bf', stop },
      memoryDeps(() => NOW),
      decide,
    );
    expect(Object.values(b.partitions).map((p) => p.status)).toEqual(['skipped', 'published', 'skipped']);
  });

  it('runExecution alone holds nothing: writes land as tasks complete, the pointer moves once', async () => {
    const d = memoryDeps(() => NOW);
    const { exec, committed } = heldPipeline();
    const r = await runExecution(exec, { plan: { partition: '2026-03-01', as_of: '2026-03-02T00:00:00.000Z', provisional: false }, runId: 'r1', by: 'run r1', stop }, d);
    expect(r).toMatchObject({ status: 'published', exit_code: 0, identity: 'sum-2026-03-01' });
    expect(committed).toHaveLength(3);
    expect((await d.stores.pointers.read('held', '2026-03-01'))?.run_id).toBe('r1');
  });
});
