/**
 * The typed helpers a pipeline module uses: `definePipeline`, `defineStep`, `defineWorker`.
 * They add nothing at run time but the checks: their job is the types (a step's planner and
 * handler agree on the payload type) and an early, clear error for a definition that breaks a rule.
 */
import { validatePipeline } from './plan.js';
import type { Json, PipelineDefinition, StepDefinition, StepWorker } from './types.js';

/**
 * A pipeline definition, checked: names, unique steps and checks, known dependencies, no cycle.
 * @throws PipelineDefinitionError (exit 64) naming the pipeline and the rule it breaks.
 */
export function definePipeline(def: PipelineDefinition): PipelineDefinition {
  validatePipeline(def);
  return Object.freeze({ ...def });
}

/**
 * A step whose planner's payloads (`P`) are what its worker's handler gets.
 * Checked with the rest of the pipeline by `definePipeline`.
 */
export function defineStep<P = Json>(step: StepDefinition<P>): StepDefinition<unknown> {
  return step as unknown as StepDefinition<unknown>;
}

/** A step's worker: `handle(task, ctx)` returns the rows it produced ({key, ...fields}). */
export function defineWorker<P = Json>(worker: StepWorker<P>): StepWorker<P> {
  return worker;
}
