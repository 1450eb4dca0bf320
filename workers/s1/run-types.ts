import type { Logger } from 'pino';
import type { WorkspaceConfig } from '../../src/config/load.js';
import type { RunLockFence } from '../../src/guard/run-lock.js';
import type { Owner } from '../../src/queue/types.js';
import type { Manifest, ManifestCheck } from '../../src/storage/manifest.js';
import type { Ledger } from '../../src/storage/ledger.js';
import type { WorkspacePaths } from '../../src/storage/paths.js';
import type { S1Context, StageName } from './context.js';
import type { RunPlan } from './plan.js';

/** What every date of a run-local or a backfill shares. */
export interface S1Env {
  ws: WorkspacePaths;
  cfg: WorkspaceConfig;
  log: Logger;
  s1: S1Context;
  ledger: Ledger;
  owner: Owner;
  /** Recorded on tasks that run again: the run (or backfill) that asked. */
  by: string;
  /** The inputs file as the first stage read it. */
  input: { path: string; sha256: string; rows: number };
  /** Guardrails the operator skipped, with the reason (`--skip-check NAME --reason TEXT`). */
  skipChecks: ReadonlyMap<string, string>;
  stop: AbortSignal;
  force?: AbortSignal;
  /**
   * The run lock: called, true when it was lost (then nothing is published); `whileHeld` fences the
   * publish (the ledger entry and the pointer move). Without it (tests, no lock) nothing is fenced.
   */
  lockLost?: RunLockFence;
}

export interface StageReport {
  step: StageName;
  status: 'success' | 'failed';
  exit_code: number;
  manifest: string;
  duration_ms: number;
  tasks: Manifest['tasks'];
  outputs: Manifest['outputs'];
  checks: ManifestCheck[];
  error?: { class: string; message: string };
}

/** One date's run, as the stages go. */
export interface DateRun {
  plan: RunPlan;
  runId: string;
  retryOf?: string;
  subjects: string[];
  log: Logger;
  stages: StageReport[];
  exit_code: number;
  failed: boolean;
  started: number;
  pointer: string | null;
  /** Why publishing failed after every stage passed (a ledger that does not verify, a lost lock). */
  publishError?: string;
}

export interface RunReport {
  pipeline: 's1';
  run_id: string;
  retry_of_run_id?: string;
  date: string;
  as_of: string;
  params: RunPlan['params'];
  status: 'published' | 'failed';
  exit_code: number;
  stages: StageReport[];
  pointer: string | null;
  publish_error?: string;
  duration_ms: number;
}

export function reportOf(r: DateRun): RunReport {
  return {
    pipeline: 's1',
    run_id: r.runId,
    ...(r.retryOf ? { retry_of_run_id: r.retryOf } : {}),
    date: r.plan.date,
    as_of: r.plan.as_of,
    params: r.plan.params,
    status: r.pointer ? 'published' : 'failed',
    exit_code: r.exit_code,
    stages: r.stages,
    pointer: r.pointer,
    ...(r.publishError ? { publish_error: r.publishError } : {}),
    duration_ms: Date.now() - r.started,
  };
}
