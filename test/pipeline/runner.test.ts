import { describe, expect, it } from 'vitest';
import { ContractError } from '../../src/runtime/worker-api.js';
import { definePipeline, defineStep, defineWorker } from '../../src/pipeline/define.js';
import { runBackfill } from '../../src/pipeline/backfill.js';
import { planPartition, planRange } from '../../src/pipeline/plan.js';
import { runPartition } from '../../src/pipeline/runner.js';
import { staleness } from '../../src/pipeline/staleness.js';
import type { CheckDefinition, PipelineDefinition, StoredRow } from '../../src/pipeline/types.js';
import { thrownMetaspnError } from '../thrown.js';
import { memoryDeps } from './harness.js';

const NOW = Date.UTC(2026, 5, 1);
const events = (lines: [string, string, number][]): string => lines.map(([entity, date, minutes]) => JSON.stringify({ entity, date, minutes })).join('\n');
const EVENTS = events([
  ['e1', '2026-03-01', 30],
  ['e2', '2026-03-01', 20],
  ['e1', '2026-03-02', 10],
]);

interface Ev {
  entity: string;
  date: string;
  minutes: number;
}

/** A small seed-001-shaped DAG: ingest, two independent features, a fan-out, a fan-in, a check. */
function dailyPipeline(opts: { inFlight?: { now: number; max: number }; checks?: CheckDefinition[]; flaky?: Set<string>; previous?: boolean } = {}): PipelineDefinition {
  const gate = async (): Promise<void> => {
    if (!opts.inFlight) return;
    opts.inFlight.now++;
    opts.inFlight.max = Math.max(opts.inFlight.max, opts.inFlight.now);
    await new Promise((r) => setTimeout(r, 30));
    opts.inFlight.now--;
  };
  return definePipeline({
    name: 'dp',
    partition: 'date',
    steps: [
      defineStep<{ text: string; date: string }>({
        name: 'ingest',
        inputs: ['events.jsonl'],
        // Only the date's lines: another date's late event does not restate this one.
        digest: (ctx) =>
          ctx
            .input('events.jsonl')
            .text.split('\n')
            .filter((l) => l.includes(`"${ctx.partition}"`)),
        plan: (ctx) => [{ key: '*', payload: { text: ctx.input('events.jsonl').text, date: ctx.partition } }],
        worker: defineWorker({
          handle: (t) =>
            t.payload.text
              .split('\n')
              .filter(Boolean)
              .map((l) => JSON.parse(l) as Ev)
              .filter((e) => e.date === t.payload.date)
              .map((e) => ({ key: e.entity, minutes: e.minutes })),
        }),
      }),
      defineStep({ name: 'minutes', after: ['ingest'], plan: () => [{ key: '*', payload: {} }], worker: defineWorker({ handle: async () => (await gate(), [{ key: '*', kind: 'minutes' }]) }) }),
      defineStep({ name: 'rates', after: ['ingest'], plan: () => [{ key: '*', payload: {} }], worker: defineWorker({ handle: async () => (await gate(), [{ key: '*', kind: 'rates' }]) }) }),
      defineStep<{ minutes: number }>({
        name: 'sim',
        after: ['minutes', 'rates'],
        previous: opts.previous ?? false,
        plan: async (ctx) => (await ctx.upstream('ingest')).map((r) => ({ key: r.key, payload: { minutes: r.minutes as number } })),
        worker: defineWorker({
          handle: (t, ctx) => {
            if (opts.flaky?.has(ctx.step.key)) throw new ContractError(`bad entity ${ctx.step.key}`);
            return [{ key: ctx.step.key, projected: t.payload.minutes * 2 }];
          },
        }),
      }),
      defineStep({
        name: 'finalize',
        after: ['sim'],
        previous: opts.previous ?? false,
        plan: async (ctx) => {
          const sims = await ctx.upstream('sim');
          const prev = opts.previous ? (((await ctx.previous('finalize'))?.[0]?.total as number | undefined) ?? 0) : 0;
          return [{ key: '*', payload: { total: prev + sims.reduce((a, r) => a + (r.projected as number), 0) } }];
        },
        worker: defineWorker<{ total: number }>({ handle: (t) => [{ key: '*', total: t.payload.total }] }),
      }),
    ],
    ...(opts.checks ? { checks: opts.checks } : {}),
  });
}

const stop = new AbortController().signal;
const run = (def: PipelineDefinition, d: ReturnType<typeof memoryDeps>, date: string, runId: string, extra: { skipChecks?: Map<string, string> } = {}) =>
  runPartition({ def, plan: planPartition(def, date, undefined, NOW), runId, by: `run ${runId}`, stop, ...extra }, d);

const rowsOf = async (d: ReturnType<typeof memoryDeps>, step: string, date: string, identity: string): Promise<StoredRow[]> => d.stores.rows('dp', step).rows(date, identity);

describe('pipeline runner (memory backends)', () => {
  it('runs a DAG: fan-out, fan-in, independent steps at once; publishes with a ledger entry', async () => {
    const d = memoryDeps();
    d.inputs.set('events.jsonl', EVENTS);
    const inFlight = { now: 0, max: 0 };
    const r = await run(dailyPipeline({ inFlight }), d, '2026-03-01', 'r1');
    expect(r.exit_code).toBe(0);
    expect(r.status).toBe('published');
    expect(inFlight.max).toBe(2);
    expect(r.steps.map((s) => s.step).sort()).toEqual(['finalize', 'ingest', 'minutes', 'rates', 'sim']);
    const sim = r.steps.find((s) => s.step === 'sim')!;
    expect(sim.tasks).toMatchObject({ total: 2, completed: 2 });
    expect((await rowsOf(d, 'sim', '2026-03-01', sim.identity)).map((x) => [x.key, x.projected])).toEqual([
      ['e1', 60],
      ['e2', 40],
    ]);
    const fin = r.steps.find((s) => s.step === 'finalize')!;
    expect((await rowsOf(d, 'finalize', '2026-03-01', fin.identity))[0]).toMatchObject({ key: '*', total: 100, step: 'finalize', date: '2026-03-01' });
    const ptr = (await d.stores.pointers.read('dp', '2026-03-01')) as unknown as { run_id: string; steps: Record<string, string> };
    expect(ptr.run_id).toBe('r1');
    expect(ptr.steps.sim).toBe(sim.identity);
    expect(d.stores.entries.map((e) => [e.kind, e.run_id])).toEqual([['publish', 'r1']]);
    // The manifest of each step records what it read and wrote.
    const m = (await d.stores.manifests.list('dp', 'ingest', '2026-03-01'))[0]! as unknown as Record<string, unknown>;
    expect(m).toMatchObject({ run_id: 'r1', status: 'success', identity: r.steps.find((s) => s.step === 'ingest')!.identity, inputs: [{ path: 'inputs/events.jsonl', rows: 3 }] });
    const ms = (await d.stores.manifests.list('dp', 'sim', '2026-03-01'))[0]! as unknown as Record<string, unknown>;
    expect(ms.upstream).toEqual({ minutes: { run_id: 'r1', identity: expect.any(String) }, rates: { run_id: 'r1', identity: expect.any(String) } });
  });

  it('a replay writes nothing new; changed inputs restate only what they reach, old rows kept', async () => {
    const d = memoryDeps();
    d.inputs.set('events.jsonl', EVENTS);
    const def = dailyPipeline();
    const r1 = await run(def, d, '2026-03-01', 'r1');
    const r2 = await run(def, d, '2026-03-01', 'r2');
    expect(r2.exit_code).toBe(0);
    expect(r2.identity).toBe(r1.identity);
    expect(r2.steps.every((s) => s.outputs[0]!.rows_written === 0)).toBe(true);
    expect(r2.restatement_of).toBeNull();
    // A late event for another date: 2026-03-01's identities do not move.
    d.inputs.set('events.jsonl', `${EVENTS}\n${events([['e3', '2026-03-02', 5]])}`);
    const r3 = await run(def, d, '2026-03-01', 'r3');
    expect(r3.identity).toBe(r1.identity);
    // A corrected event of the date: every step downstream of ingest gets a new identity.
    d.inputs.set('events.jsonl', EVENTS.replace('"minutes":30', '"minutes":31'));
    const r4 = await run(def, d, '2026-03-01', 'r4');
    expect(r4.exit_code).toBe(0);
    expect(r4.restatement_of).toBe('r3');
    const before = new Map(r1.steps.map((s) => [s.step, s.identity]));
    for (const s of r4.steps) expect(s.identity).not.toBe(before.get(s.step));
    expect(d.stores.entries.at(-1)!.detail).toMatchObject({ restatement_of: 'r3' });
    // The old set stays, immutable, beside the new one.
    expect((await rowsOf(d, 'sim', '2026-03-01', before.get('sim')!)).find((x) => x.key === 'e1')?.projected).toBe(60);
    expect((await rowsOf(d, 'sim', '2026-03-01', r4.steps.find((s) => s.step === 'sim')!.identity)).find((x) => x.key === 'e1')?.projected).toBe(62);
  });

  it('a run id already used is refused with 64, nothing written', async () => {
    const d = memoryDeps();
    d.inputs.set('events.jsonl', EVENTS);
    await run(dailyPipeline(), d, '2026-03-01', 'r1');
    const n = d.stores.manifestList.length;
    for (const date of ['2026-03-01', '2026-03-02']) {
      // Of the same partition or another: a run id names one run.
      const e = await run(dailyPipeline(), d, date, 'r1').catch((err: unknown) => err);
      expect(
        thrownMetaspnError(() => {
          throw e;
        }).exitCode,
      ).toBe(64);
    }
    expect(d.stores.manifestList.length).toBe(n);
  });

  it('a failing check halts with 60 and publishes nothing; --skip-check publishes and says so', async () => {
    const d = memoryDeps();
    d.inputs.set('events.jsonl', EVENTS);
    const check: CheckDefinition = {
      name: 'total_bounded',
      run: async (ctx) => {
        const total = ((await ctx.upstream('finalize'))[0]?.total as number) ?? 0;
        return { status: total <= 50 ? 'pass' : 'fail', observed: total, expected: '<= 50' };
      },
    };
    const def = dailyPipeline({ checks: [check] });
    const r = await run(def, d, '2026-03-01', 'r1');
    expect(r.exit_code).toBe(60);
    expect(r.pointer).toBeNull();
    expect(await d.stores.pointers.read('dp', '2026-03-01')).toBeNull();
    expect(d.incidents).toEqual([{ kind: 'anomaly_halt', subject: '2026-03-01-total_bounded' }]);
    expect(r.checks).toEqual([{ name: 'total_bounded', status: 'fail', observed: 100, expected: '<= 50' }]);
    const last = (await d.stores.manifests.list('dp', r.steps.at(-1)!.step, '2026-03-01'))[0]!;
    expect(last).toMatchObject({ status: 'failed', exit_code: 60, error: { class: 'AnomalyHalt' } });
    const e = await run(def, d, '2026-03-01', 'r2', { skipChecks: new Map([['nope', 'x']]) }).catch((err: unknown) => err as Error);
    expect((e as Error).message).toMatch(/--skip-check nope: pipeline dp has no such check/);
    const r2 = await run(def, d, '2026-03-01', 'r3', { skipChecks: new Map([['total_bounded', 'known: launch day']]) });
    expect(r2.exit_code).toBe(0);
    expect(d.stores.entries.at(-1)!.detail).toMatchObject({ skipped_checks: [{ name: 'total_bounded', reason: 'known: launch day' }] });
  });

  it('a contract error in one fan-out task: exit 20, downstream never starts, nothing published', async () => {
    const d = memoryDeps();
    d.inputs.set('events.jsonl', EVENTS);
    const r = await run(dailyPipeline({ flaky: new Set(['e2']) }), d, '2026-03-01', 'r1');
    expect(r.exit_code).toBe(20);
    expect(r.steps.map((s) => s.step)).not.toContain('finalize');
    expect(r.steps.find((s) => s.step === 'sim')!.error?.message).toMatch(/1 task\(s\) of dp-sim in the dead letters .*bad entity e2\); fix the input or the step and re-run/);
    expect(await d.stores.pointers.read('dp', '2026-03-01')).toBeNull();
  });

  it('a step fixed after its tasks were dead-lettered: the same command runs them again and publishes (never stuck at a dead letter)', async () => {
    const d = memoryDeps();
    d.inputs.set('events.jsonl', EVENTS);
    expect((await run(dailyPipeline({ flaky: new Set(['e2']) }), d, '2026-03-01', 'r1')).exit_code).toBe(20);
    // The handler is fixed; nothing else changed, so the step's identity and its task ids are the same.
    const r = await run(dailyPipeline(), d, '2026-03-01', 'r2');
    expect(r.exit_code).toBe(0);
    expect(r.status).toBe('published');
    expect(r.steps.find((s) => s.step === 'sim')!.tasks).toMatchObject({ total: 2, completed: 2, rerun: 2, dead: 0 });
    expect((await d.queues.get('dp-sim')!.listDead()).length).toBe(0);
  });

  it('a step that is not deterministic: the same id with other content is a conflict (30), nothing overwritten', async () => {
    const d = memoryDeps();
    d.inputs.set('events.jsonl', EVENTS);
    let n = 0;
    const def = definePipeline({
      name: 'dp',
      partition: 'date',
      steps: [defineStep({ name: 'clock', plan: () => [{ key: '*', payload: {} }], worker: defineWorker({ handle: () => [{ key: '*', n: n++ }] }) })],
    });
    expect((await run(def, d, '2026-03-01', 'r1')).exit_code).toBe(0);
    const r = await run(def, d, '2026-03-01', 'r2');
    expect(r.exit_code).toBe(30);
    expect(d.incidents.map((i) => i.kind)).toEqual(['replay_conflict']);
    expect((await d.stores.rows('dp', 'clock').rows('2026-03-01', r.steps[0]!.identity))[0]!.n).toBe(0);
  });

  it("runs only its own tasks: another partition's open task waits; a superseded one is cancelled", async () => {
    const d = memoryDeps();
    d.inputs.set('events.jsonl', EVENTS);
    const def = dailyPipeline();
    // Leave a task of 2026-03-02 (from an older run) and one of an older run of 2026-03-01 in the sim queue.
    const { queue } = d.queue('dp-sim', {});
    await queue.enqueue([
      { id: 'other-partition', group: 'dp/2026-03-02', payload: { step: 'sim' } },
      { id: 'older-run', group: 'dp/2026-03-01', payload: { step: 'sim' } },
    ]);
    const r = await run(def, d, '2026-03-01', 'r1');
    expect(r.exit_code).toBe(0);
    expect(await queue.states(['other-partition', 'older-run'])).toEqual(['ready', 'cancelled']);
    expect((await queue.stats()).cancelled).toBe(1);
  });

  it('previous: true reads the previous partition as published; a backfill then runs in order', async () => {
    const d = memoryDeps();
    d.inputs.set('events.jsonl', EVENTS);
    const def = dailyPipeline({ previous: true });
    const plans = planRange(def, '2026-03-01', '2026-03-03', NOW);
    const rep = await runBackfill({ def, plans, backfillId: 'bf1', maxParallel: 3, resume: false, by: 'backfill bf1', stop }, d);
    expect(rep.exit_code).toBe(0);
    expect(Object.values(rep.partitions).map((p) => p.status)).toEqual(['published', 'published', 'published']);
    const totals: number[] = [];
    for (const date of ['2026-03-01', '2026-03-02', '2026-03-03']) {
      const ptr = (await d.stores.pointers.read('dp', date)) as unknown as { steps: Record<string, string> };
      totals.push((await rowsOf(d, 'finalize', date, ptr.steps.finalize!))[0]!.total as number);
    }
    expect(totals).toEqual([100, 120, 120]);
    // Resume: nothing changed, all skipped. Then 03-01 changes: it and every later partition are stale.
    const again = await runBackfill({ def, plans, backfillId: 'bf2', maxParallel: 1, resume: true, by: 'backfill bf2', stop }, d);
    expect(Object.values(again.partitions).map((p) => p.status)).toEqual(['skipped', 'skipped', 'skipped']);
    d.inputs.set('events.jsonl', EVENTS.replace('"minutes":30', '"minutes":40'));
    expect((await staleness(def, plans[0]!, d)).state).toBe('stale');
    const fixed = await runBackfill({ def, plans, backfillId: 'bf3', maxParallel: 1, resume: true, by: 'backfill bf3', stop }, d);
    expect(Object.values(fixed.partitions).map((p) => p.status)).toEqual(['published', 'published', 'published']);
  });

  it('a backfill of a pipeline that reads the previous partition: other steps run ahead, a failed partition blocks the later ones', async () => {
    const d = memoryDeps();
    d.inputs.set('events.jsonl', EVENTS);
    const inFlight = { now: 0, max: 0 };
    const def = dailyPipeline({ previous: true, inFlight, flaky: new Set(['e2']) });
    const plans = planRange(def, '2026-03-01', '2026-03-03', NOW);
    const rep = await runBackfill({ def, plans, backfillId: 'bf1', maxParallel: 3, resume: false, by: 'backfill bf1', stop }, d);
    // minutes and rates of three partitions overlapped (2 per partition at most when run one by one).
    expect(inFlight.max).toBeGreaterThan(2);
    expect(Object.values(rep.partitions).map((p) => p.status)).toEqual(['failed', 'blocked', 'blocked']);
    expect(rep.partitions['2026-03-02']!.reason).toMatch(/previous partition was not published/);
    expect(await d.stores.pointers.partitions('dp')).toEqual([]);
  });

  it('a backfill without previous-partition steps runs partitions in parallel; a failure does not block the others', async () => {
    const d = memoryDeps();
    d.inputs.set('events.jsonl', EVENTS);
    const def = dailyPipeline({ flaky: new Set(['e2']) });
    const plans = planRange(def, '2026-03-01', '2026-03-02', NOW);
    const rep = await runBackfill({ def, plans, backfillId: 'bf1', maxParallel: 2, resume: false, by: 'backfill bf1', stop }, d);
    expect(rep.partitions['2026-03-01']!.status).toBe('failed');
    expect(rep.partitions['2026-03-02']!.status).toBe('published');
    expect(rep.exit_code).toBe(20);
  });

  it('a handler reads what its planner reads (ctx.step.input, upstream, previous): a fan-in carries no rows; a retried task reads the same; an undeclared read is a contract error (20)', async () => {
    const d = memoryDeps();
    d.inputs.set('events.jsonl', EVENTS);
    d.inputs.set('bonus.txt', '7');
    let failedOnce = false;
    const fanIn = (reads: 'ok' | 'undeclared') =>
      definePipeline({
        name: 'dp',
        partition: 'date',
        steps: [
          defineStep({
            name: 'ingest',
            inputs: ['events.jsonl'],
            plan: () => [{ key: '*', payload: {} }],
            worker: defineWorker({
              // The input as the step's identity covered it, read by the handler, not carried.
              handle: (_t, ctx) =>
                ctx.step
                  .input('events.jsonl')
                  .text.split('\n')
                  .filter(Boolean)
                  .map((l) => JSON.parse(l) as Ev)
                  .filter((e) => e.date === ctx.step.partition)
                  .map((e) => ({ key: e.entity, minutes: e.minutes })),
            }),
          }),
          defineStep({
            name: 'total',
            after: ['ingest'],
            inputs: ['bonus.txt'],
            plan: () => [{ key: '*', payload: {} }],
            worker: defineWorker({
              handle: async (_t, ctx) => {
                if (reads === 'undeclared') await ctx.step.upstream('total');
                const rows = await ctx.step.upstream('ingest');
                if (!failedOnce) {
                  failedOnce = true;
                  throw new Error('transient');
                }
                return [{ key: '*', total: rows.reduce((a, r) => a + (r.minutes as number), 0) + Number(ctx.step.input('bonus.txt').text) }];
              },
            }),
          }),
        ],
      });
    const ok = await run(fanIn('ok'), d, '2026-03-01', 'r1');
    expect(ok.status, JSON.stringify(ok.steps.map((x) => x.error))).toBe('published');
    const total = ok.steps.find((x) => x.step === 'total')!;
    expect(total.tasks).toMatchObject({ total: 1, completed: 1, retried: 1 });
    expect((await rowsOf(d, 'total', '2026-03-01', total.identity))[0]!.total).toBe(57);
    const bad = await run(fanIn('undeclared'), d, '2026-03-02', 'r2');
    expect(bad.exit_code).toBe(20);
    expect(bad.steps.find((x) => x.step === 'total')!.error?.message).toMatch(/not upstream/);
  });
});
