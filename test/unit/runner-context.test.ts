import { expect, it } from 'vitest';
import { runWorker } from '../../src/runtime/runner.js';
import type { WorkerContext } from '../../src/runtime/worker-api.js';
import { setup } from './runner-setup.js';

/** What a handler sees of its context: own keys in order, what a spread copy keeps, the signal on first use. */
function look(ctx: WorkerContext) {
  const copy = { ...ctx } as WorkerContext & Record<string, unknown>;
  return {
    keys: Object.keys(ctx),
    attempt: ctx.attempt,
    heartbeat: typeof ctx.heartbeat,
    signalOwn: Object.getOwnPropertyDescriptor(ctx, 'signal')?.enumerable === true,
    copyKeys: Object.keys(copy),
    copySignal: copy.signal instanceof AbortSignal && copy.signal === ctx.signal,
    env: copy.env,
  };
}

/** What `look` sees of the context of a first attempt whose own keys are `keys`: the copy has the same ones. */
function seenAs(keys: string[], env: Readonly<Record<string, unknown>>): ReturnType<typeof look> {
  return { keys, attempt: 1, heartbeat: 'function', signalOwn: true, copyKeys: keys, copySignal: true, env };
}

it("a task's context holds the init's fields and the attempt's own, as own properties; a spread copy keeps them all, signal too", async () => {
  const seen: ReturnType<typeof look>[] = [];
  const { queue, deps } = setup({ name: 'q', handle: (_t, ctx) => void seen.push(look(ctx)) });
  await queue.enqueue([
    { id: 'a', payload: null },
    { id: 'b', payload: null },
  ]);
  const sum = await runWorker({ ...deps, init: { ...deps.init, env: { k: 1 } } });
  expect(sum.completed).toBe(2);
  expect(seen).toEqual([
    seenAs(['attempt', 'effects', 'heartbeat', 'signal', 'logger', 'workspace', 'env'], { k: 1 }),
    seenAs(['attempt', 'effects', 'heartbeat', 'signal', 'logger', 'workspace', 'env'], { k: 1 }),
  ]);
});

it("an init field named like one of the attempt's gives way to it, keeping the init's key order", async () => {
  const seen: ReturnType<typeof look>[] = [];
  const { queue, deps } = setup({ name: 'q', handle: (_t, ctx) => void seen.push(look(ctx)) });
  await queue.enqueue([{ id: 'a', payload: null }]);
  const init = { ...deps.init, attempt: 99, signal: 'not a signal' } as unknown as typeof deps.init;
  const sum = await runWorker({ ...deps, init });
  expect(sum.completed).toBe(1);
  expect(seen).toEqual([seenAs(['logger', 'workspace', 'env', 'attempt', 'signal', 'effects', 'heartbeat'], {})]);
});
