import { describe, expect, it } from 'vitest';
import { definePipeline, defineStep, defineWorker } from '../../src/pipeline/define.js';
import { planPartition } from '../../src/pipeline/plan.js';
import { runPartition } from '../../src/pipeline/runner.js';
import { rowPages } from '../../src/pipeline/stores.js';
import type { PipelineDefinition, StepRow, StoredRow } from '../../src/pipeline/types.js';
import { memoryDeps } from './harness.js';

/**
 * Paged reads (`upstreamPages`, `previousPages`) and handlers that hand their rows over as a
 * generator: a step of many rows, read and written a page at a time.
 */
const NOW = Date.UTC(2026, 5, 1);
const stop = new AbortController().signal;
const run = (def: PipelineDefinition, d: ReturnType<typeof memoryDeps>, date: string, runId: string) =>
  runPartition({ def, plan: planPartition(def, date, undefined, NOW), runId, by: `run ${runId}`, stop }, d);
const rowsOf = (d: ReturnType<typeof memoryDeps>, step: string, date: string, identity: string): Promise<StoredRow[]> => d.stores.rows('pg', step).rows(date, identity);

/** 10,000 keys, yielded out of key order (the store gives them back in key order). */
const N = 10_000;
const keyOf = (i: number): string => `k${String((i * 7919) % N).padStart(5, '0')}`;

/** load yields N rows from a generator; total reads them in pages of `size` and records each page's length; a check reads pages too. */
function paged(o: { size?: number; bad?: 'duplicate' | 'not-upstream' | 'page-size' | 'not-an-object'; seen?: number[]; checked?: number[] } = {}): PipelineDefinition {
  return definePipeline({
    name: 'pg',
    partition: 'date',
    steps: [
      defineStep({
        name: 'load',
        plan: () => [{ key: '*', payload: {} }],
        worker: defineWorker({
          async *handle() {
            for (let i = 0; i < N; i++) {
              if (o.bad === 'duplicate' && i === 5000) yield { key: keyOf(0), v: -1 };
              if (o.bad === 'not-an-object' && i === 4500) yield 7 as unknown as StepRow;
              yield { key: keyOf(i), v: i };
            }
          },
        }),
      }),
      defineStep({
        name: 'total',
        after: ['load'],
        previous: true,
        plan: () => [{ key: '*', payload: {} }],
        worker: defineWorker({
          async handle(_t, ctx) {
            let [sum, rows, last, ordered] = [0, 0, '', true];
            const pages = o.bad === 'not-upstream' ? ctx.step.upstreamPages('total') : ctx.step.upstreamPages('load', o.bad === 'page-size' ? { size: 0 } : o.size ? { size: o.size } : {});
            for await (const page of pages) {
              o.seen?.push(page.length);
              for (const r of page) {
                ordered &&= r.key > last;
                last = r.key;
                sum += r.v as number;
                rows++;
              }
            }
            let before: number | null = null;
            for await (const page of ctx.step.previousPages('total')) before = page[0]!.sum as number;
            return [{ key: '*', sum, rows, before, ordered }];
          },
        }),
      }),
    ],
    checks: [
      {
        name: 'all_loaded',
        reads: ['load'],
        async run(ctx) {
          let rows = 0;
          for await (const page of ctx.upstreamPages('load', { size: 4000 })) {
            o.checked?.push(page.length);
            rows += page.length;
          }
          return rows === N ? { status: 'pass', observed: rows, expected: N } : { status: 'fail', observed: rows, expected: N };
        },
      },
    ],
  });
}

describe('paged reads and rows from a generator', () => {
  it('a generator of 10,000 rows is stored whole; upstreamPages reads it in key order, a page at a time; previousPages reads the previous date', async () => {
    const d = memoryDeps();
    const seen: number[] = [];
    const checked: number[] = [];
    const first = await run(paged({ size: 3000, seen, checked }), d, '2026-03-01', 'r1');
    expect(first.status, JSON.stringify(first.steps.map((x) => x.error))).toBe('published');
    const load = first.steps.find((x) => x.step === 'load')!;
    expect(load.outputs[0]).toMatchObject({ rows_written: N, rows_present: 0 });
    const stored = await rowsOf(d, 'load', '2026-03-01', load.identity);
    expect(stored).toHaveLength(N);
    expect(stored.map((r) => r.key)).toEqual(Array.from({ length: N }, (_, i) => `k${String(i).padStart(5, '0')}`));
    expect(seen).toEqual([3000, 3000, 3000, 1000]);
    expect(checked).toEqual([4000, 4000, 2000]);
    const total = first.steps.find((x) => x.step === 'total')!;
    expect(await rowsOf(d, 'total', '2026-03-01', total.identity)).toMatchObject([{ key: '*', sum: (N * (N - 1)) / 2, rows: N, before: null, ordered: true }]);

    // The next date reads the first one's published total through previousPages; default pages of 1,000.
    const next: number[] = [];
    const second = await run(paged({ seen: next }), d, '2026-03-02', 'r2');
    expect(second.status).toBe('published');
    expect(next).toEqual(Array.from({ length: 10 }, () => 1000));
    const t2 = second.steps.find((x) => x.step === 'total')!;
    expect(await rowsOf(d, 'total', '2026-03-02', t2.identity)).toMatchObject([{ key: '*', sum: (N * (N - 1)) / 2, rows: N, before: (N * (N - 1)) / 2, ordered: true }]);

    // A replay: the generator's rows are all present, none written.
    const again = await run(paged(), d, '2026-03-01', 'r3');
    expect(again.steps.find((x) => x.step === 'load')!.outputs[0]).toMatchObject({ rows_written: 0, rows_present: N });
  });

  it('a key yielded twice (in a later page), or a row that is not an object: a contract error (20), nothing published', async () => {
    for (const bad of ['duplicate', 'not-an-object'] as const) {
      const d = memoryDeps();
      const r = await run(paged({ bad }), d, '2026-03-01', 'r1');
      expect(r.exit_code, bad).toBe(20);
      expect(r.status).not.toBe('published');
      const load = r.steps.find((x) => x.step === 'load')!;
      expect(load.error?.message).toMatch(bad === 'duplicate' ? /row key k00000 returned twice/ : /every row must be an object, got 7/);
      expect(r.steps.map((x) => x.step)).toEqual(['load']);
      expect(d.stores.pointerMap.size).toBe(0);
    }
  });

  it('upstreamPages of a step that is not upstream, or a page size out of 1-100,000: a contract error in a handler (20)', async () => {
    for (const [bad, message] of [
      ['not-upstream', /reads step total, which is not upstream of it/],
      ['page-size', /a page size must be an integer from 1 to 100000, got 0/],
    ] as const) {
      const d = memoryDeps();
      const r = await run(paged({ bad }), d, '2026-03-01', 'r1');
      expect(r.exit_code, bad).toBe(20);
      expect(r.steps.find((x) => x.step === 'total')!.error?.message).toMatch(message);
    }
  });

  it('previousPages in a step without previous: true is refused when called; in a planner that is a usage error (64)', async () => {
    const d = memoryDeps();
    const def = definePipeline({
      name: 'pg',
      partition: 'date',
      steps: [
        defineStep({
          name: 'a',
          plan: (ctx) => {
            ctx.previousPages('a');
            return [];
          },
          worker: defineWorker({ handle: () => [] }),
        }),
      ],
    });
    const r = await run(def, d, '2026-03-01', 'r1');
    expect(r.exit_code).toBe(64);
    expect(r.steps[0]!.error?.message).toMatch(/reads the previous partition; declare previous: true/);
  });

  it('rowPages hands each page after the first over on a new macrotask (timers such as lease renewals run between pages)', async () => {
    const d = memoryDeps();
    const store = d.stores.rows('pg', 's');
    await store.put(Array.from({ length: 5 }, (_, i) => ({ key: `k${i}`, id: `row_${i}`, step: 's', date: '2026-03-01', identity: 'i' })));
    const order: string[] = [];
    for await (const page of rowPages(store, '2026-03-01', 'i', 2)) {
      order.push(`page ${page.map((r) => r.key).join(',')}`);
      setImmediate(() => order.push('timer'));
    }
    expect(order).toEqual(['page k0,k1', 'timer', 'page k2,k3', 'timer', 'page k4']);
  });
  it('an input is let go once the steps declaring it drained; a check reading it again reads the same bytes, or fails naming the change', async () => {
    for (const change of [false, true]) {
      const d = memoryDeps();
      d.inputs.set('x.txt', 'abc');
      const def = definePipeline({
        name: 'pg',
        partition: 'date',
        steps: [
          defineStep({
            name: 'a',
            inputs: ['x.txt'],
            plan: () => [{ key: '*', payload: {} }],
            worker: defineWorker({
              handle: (_t, ctx) => {
                const text = ctx.step.input('x.txt').text;
                // Someone edits the file while the run goes on.
                if (change) d.inputs.set('x.txt', 'abd');
                return [{ key: '*', text }];
              },
            }),
          }),
          defineStep({ name: 'b', after: ['a'], plan: () => [{ key: '*', payload: {} }], worker: defineWorker({ handle: () => [{ key: '*' }] }) }),
        ],
        checks: [
          {
            name: 'same_text',
            run: (ctx) => ({ status: ctx.input('x.txt').text === 'abc' ? 'pass' : 'fail', observed: ctx.input('x.txt').text, expected: 'abc' }),
          },
        ],
      });
      const r = await run(def, d, '2026-03-01', 'r1');
      if (!change) {
        expect(r.status).toBe('published');
        expect(r.checks).toMatchObject([{ name: 'same_text', status: 'pass', observed: 'abc' }]);
      } else {
        expect(r.exit_code).toBe(60);
        expect(r.checks[0]).toMatchObject({ name: 'same_text', status: 'fail', observed: { error: expect.stringMatching(/inputs\/x\.txt: changed while pipeline pg ran for 2026-03-01/) as unknown } });
      }
    }
  });
});
