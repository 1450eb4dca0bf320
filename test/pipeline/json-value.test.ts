import { describe, expect, it } from 'vitest';
import { jsonProblem, MAX_JSON_DEPTH } from '../../src/pipeline/json-value.js';
import { definePipeline, defineStep, defineWorker } from '../../src/pipeline/define.js';
import { planPartition } from '../../src/pipeline/plan.js';
import { runPartition } from '../../src/pipeline/runner.js';
import type { Json, PipelineDefinition } from '../../src/pipeline/types.js';
import { memoryDeps } from './harness.js';

describe('jsonProblem: what JSON.stringify would change or drop without a word', () => {
  it('accepts plain JSON, objects without a prototype included', () => {
    expect(jsonProblem({ a: [1, 'x', true, null, { b: -0.5 }], c: Object.assign(Object.create(null) as object, { d: 1 }) })).toBeNull();
  });

  it.each([
    [{ mean: Number.NaN }, 'mean: NaN is not a JSON number'],
    [{ a: { b: [1, Number.POSITIVE_INFINITY] } }, 'a.b[1]: Infinity is not a JSON number'],
    [{ n: 10n }, 'n: a BigInt (10n) is not JSON; pass it as a string'],
    [{ when: new Date(0) }, 'when: a Date is not plain JSON; pass it as an ISO-8601 string'],
    [{ m: new Map() }, 'm: a Map is not plain JSON'],
    [{ f: () => 1 }, 'f: a function is not JSON'],
    [{ u: undefined }, 'u: undefined is not JSON; omit the field or use null'],
    [{ s: Symbol('x') }, 's: a symbol is not JSON'],
    // eslint-disable-next-line no-sparse-arrays
    [{ h: [1, , 3] }, 'h[1]: an array hole is not JSON'],
  ])('%o: %s', (value, problem) => {
    expect(jsonProblem(value)).toBe(problem);
  });

  it('a cycle or a value nested too deep is reported, not a stack overflow', () => {
    const a: Record<string, unknown> = {};
    a.self = a;
    expect(jsonProblem(a)).toMatch(new RegExp(`nested more than ${MAX_JSON_DEPTH} levels deep \\(or a cycle\\)$`));
  });
});

const NOW = Date.UTC(2026, 5, 1);
const run = (def: PipelineDefinition, d = memoryDeps()) =>
  runPartition({ def, plan: planPartition(def, '2026-03-01', undefined, NOW), runId: 'r1', by: 'run r1', stop: new AbortController().signal }, d);
const oneStep = (handle: () => unknown, payload: unknown = {}, check?: () => unknown): PipelineDefinition =>
  definePipeline({
    name: 'jv',
    partition: 'date',
    steps: [defineStep({ name: 'only', plan: () => [{ key: '*', payload: payload as Json }], worker: defineWorker({ handle: handle as () => [] }) })],
    ...(check ? { checks: [{ name: 'c', run: check as never }] } : {}),
  });

describe('the runner refuses what is not JSON instead of storing something else', () => {
  it('a row with NaN or a BigInt: a contract error (20) naming the row and field; nothing published', async () => {
    const nan = await run(oneStep(() => [{ key: 'p1', mean: Number.NaN }]));
    expect(nan.exit_code).toBe(20);
    expect(nan.steps[0]!.error?.message).toMatch(/step only: rows are stored as JSON: row p1\.mean: NaN is not a JSON number/);
    expect(nan.status).not.toBe('published');
    const big = await run(oneStep(() => [{ key: 'p1', n: 3n }]));
    expect(big.exit_code).toBe(20);
    expect(big.steps[0]!.error?.message).toMatch(/row p1\.n: a BigInt \(3n\) is not JSON/);
  });

  it('a planned payload with a Date or a function: 64 naming the task; nothing enqueued', async () => {
    const d = memoryDeps();
    const r = await run(
      oneStep(() => [{ key: 'x' }], { at: new Date(0) }),
      d,
    );
    expect(r.exit_code).toBe(64);
    expect(r.steps[0]!.error?.message).toMatch(/step only: the task of key \*: tasks are stored as JSON: payload\.at: a Date is not plain JSON/);
    expect(d.queues.get('jv-only')).toBeUndefined();
  });

  it('a check that returns no observed/expected, or one that is not JSON, fails (60) saying so', async () => {
    const bare = await run(
      oneStep(
        () => [{ key: 'x' }],
        {},
        () => ({ status: 'pass' }),
      ),
    );
    expect(bare.exit_code).toBe(60);
    expect(bare.checks[0]).toMatchObject({
      name: 'c',
      status: 'fail',
      observed: { error: expect.stringMatching(/check c returned \{"status":"pass"\}, not \{status: 'pass'\|'fail', observed, expected\}/) },
    });
    const nan = await run(
      oneStep(
        () => [{ key: 'x' }],
        {},
        () => ({ status: 'pass', observed: Number.NaN, expected: 1 }),
      ),
    );
    expect(nan.exit_code).toBe(60);
    expect(nan.checks[0]!.observed).toEqual({ error: expect.stringMatching(/not JSON: observed: NaN is not a JSON number/) });
  });

  it('params that are not JSON break the definition (64)', () => {
    expect(() => oneStepWithParams({ at: new Date(0) })).toThrow(/pipeline jv: step only: params must be JSON: params\.at: a Date is not plain JSON/);
  });
});

function oneStepWithParams(params: unknown): PipelineDefinition {
  return definePipeline({ name: 'jv', partition: 'date', steps: [defineStep({ name: 'only', params: params as never, plan: () => [], worker: defineWorker({ handle: () => [] }) })] });
}
