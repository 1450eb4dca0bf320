/**
 * metaspn's public API: what a pipeline module imports (`import { definePipeline } from 'metaspn'`).
 * docs/PIPELINES.md teaches writing a pipeline with it.
 */
export { definePipeline, defineStep, defineWorker } from './pipeline/define.js';
export type {
  CheckDefinition,
  CheckResult,
  InputFile,
  Json,
  PartitionContext,
  PipelineDefinition,
  PlannedTask,
  StepDefinition,
  StepHandler,
  StepRow,
  StepTaskContext,
  StepTaskPayload,
  StepWorker,
  StoredRow,
} from './pipeline/types.js';
export { PipelineDefinitionError } from './pipeline/plan.js';
export { ContractError } from './runtime/worker-api.js';
export type { WorkerContext, WorkerDefinition, WorkerInitContext, WorkerTask } from './runtime/worker-api.js';
export { EXIT } from './guard/exit-codes.js';
