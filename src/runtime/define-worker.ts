import { defineWorker as defineStepWorker } from '../pipeline/define.js';
import type { Json, StepWorker } from '../pipeline/types.js';
import type { WorkerDefinition } from './worker-api.js';

/**
 * Types a worker, for both kinds metaspn runs; at run time it returns its argument unchanged.
 *
 * - A pipeline step's worker ({@link StepWorker}): `handle(task, ctx)` returns the rows it produced
 *   (`[{ key, ...fields }]`), and `name` (its queue) is optional.
 * - A queue worker of your own ({@link WorkerDefinition}), run with
 *   `metaspn worker run ./worker.js:Export`: `name` is the queue it drains, `handle(task, ctx)`
 *   resolves when the task is done (its value is ignored).
 *
 * Either way, `payload` (a zod schema) types `task.payload` and refuses bad payloads as contract
 * errors; throwing retries with backoff, throwing a {@link ContractError} sends the task to the
 * dead letters at once.
 *
 * @example
 * ```ts
 * import { ContractError, defineWorker } from 'metaspn';
 * export const SendReceipt = defineWorker<{ to: string }>({
 *   name: 'receipts',
 *   async handle(task, ctx) {
 *     if (!task.payload.to.includes('@')) throw new ContractError(`not an address: ${task.payload.to}`);
 *     ctx.logger.info({ to: task.payload.to }, 'sending');
 *   },
 * });
 * ```
 */
export function defineWorker<P = Json>(worker: StepWorker<P>): StepWorker<P>;
export function defineWorker<P = unknown>(worker: WorkerDefinition<P>): WorkerDefinition<P>;
export function defineWorker<P>(worker: StepWorker<P> | WorkerDefinition<P>): StepWorker<P> | WorkerDefinition<P> {
  // One object either way: the pipeline's helper (which checks what both kinds share) returns it as it is.
  return defineStepWorker(worker as StepWorker<P>);
}
