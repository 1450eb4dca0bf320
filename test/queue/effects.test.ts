/**
 * The task-effects conformance suite on the backends without transactions (memory, files): effects
 * written to a sink, then the completion (at-least-once). The PostgreSQL run is pg-effects.test.ts.
 */
import pino from 'pino';
import { expect, it } from 'vitest';
import { resolvePolicy } from '../../src/config/policy.js';
import { FileQueue } from '../../src/queue/file/file-queue.js';
import { MemoryQueue } from '../../src/queue/memory.js';
import type { Queue } from '../../src/queue/types.js';
import { EffectBuffer, effectsThenComplete, memoryEffectSink } from '../../src/runtime/effects.js';
import { NoEffectSinkError, runWorker } from '../../src/runtime/runner.js';
import { workspacePaths } from '../../src/storage/paths.js';
import { tempDir } from '../temp.js';
import { describeEffectsBackend, type EffectsHarness } from './effects-conformance.js';

function harness(queue: Queue): EffectsHarness {
  const sink = memoryEffectSink();
  const commit = effectsThenComplete(queue, sink);
  return {
    queue,
    commit,
    runnerEffects: commit,
    rows: async (store) => new Map(sink.rows.get(store) ?? []),
    log: async (log) => sink.logged.filter((e) => e.log === log).map(({ task_id, fence, body }) => ({ task_id, fence, body })),
    close: () => queue.close(),
  };
}

describeEffectsBackend('memory', async (name) => harness(new MemoryQueue({ name })));
describeEffectsBackend('file', async (name) => harness(new FileQueue({ name, workspace: tempDir('metaspn-fx-') })));

it('a worker whose handler records effects on a backend that cannot commit them stops (exit 64) and gives the task back untouched', async () => {
  const queue = new MemoryQueue({ name: 'q' });
  await queue.enqueue([{ id: 'a', payload: null }]);
  const run = runWorker({
    queue,
    worker: { name: 'q', isolation: 'none', handle: (_t, ctx) => ctx.effects.append('log', 1) },
    owner: { id: 'w', pid: 1, host: 'h' },
    policy: resolvePolicy({}),
    once: true,
    init: { logger: pino({ level: 'silent' }), workspace: workspacePaths('/nonexistent'), env: {} },
    stop: new AbortController().signal,
    now: Date.now,
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    random: () => 0.5,
  });
  await expect(run).rejects.toBeInstanceOf(NoEffectSinkError);
  await expect(run).rejects.toMatchObject({ code: 'USAGE' });
  expect(await queue.getTask('a')).toMatchObject({ state: 'ready', task: { attempt_count: 0 } });
});

it('ctx.effects refuses a bad log name and a body JSON cannot carry, when the handler records them', () => {
  const b = new EffectBuffer();
  expect(() => b.append('bad name', 1)).toThrow(TypeError);
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  expect(() => b.append('log', cyclic)).toThrow(TypeError);
  b.rows('p', 's', []);
  expect(b.list).toEqual([]);
});
