/**
 * metaspn's public API: what a pipeline module or a worker module imports
 * (`import { definePipeline, defineWorker, ContractError } from 'metaspn'`). docs/PIPELINES.md
 * teaches writing a pipeline with it; README.md, "Your own workers", a worker.
 */
export { definePipeline, defineStep } from './pipeline/define.js';
export { defineWorker } from './runtime/define-worker.js';
export type {
  CheckDefinition,
  CheckResult,
  InputFile,
  Json,
  PageOptions,
  PartitionContext,
  PipelineDefinition,
  PlannedTask,
  StepDefinition,
  StepHandler,
  StepRow,
  StepRows,
  StepTaskContext,
  StepTaskPayload,
  StepWorker,
  StoredRow,
} from './pipeline/types.js';
export { PipelineDefinitionError } from './pipeline/plan.js';
export { ContractError } from './runtime/worker-api.js';
export type { WorkerContext, WorkerDefinition, WorkerInitContext, WorkerTask } from './runtime/worker-api.js';
export { EXIT } from './guard/exit-codes.js';
