import type { Logger } from 'pino';
import type { WorkspaceConfig } from '../../src/config/load.js';
import type { RunLockFence } from '../../src/guard/run-lock.js';
import type { Owner } from '../../src/queue/types.js';
import type { StepReport } from '../../src/pipeline/runner.js';
import type { Ledger } from '../../src/storage/ledger.js';
import type { WorkspacePaths } from '../../src/storage/paths.js';
import type { Counted, S1Context, StageName } from './context.js';
import type { CountedParams, Params, StageParams } from './ids.js';
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
  /** The inputs file as the first stage read it: its path, sha256 and signal count. */
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
  /** Called as each stage of a date ends, with its report (progress on a terminal). */
  onStage?: (date: string, r: StageReport) => void;
}

/** One thing a step read, as its manifest lists it (src/storage/manifest.ts `inputs`, with S1's extra keys). */
export interface S1ManifestInput {
  /** Relative to the workspace root. */
  path: string;
  /** sha256 of the file's bytes, or of the step's rows read (in id order, as ArtifactStore.digest). */
  sha256: string;
  rows: number;
  /** The inputs digest of the date (the signals file of stage 1). */
  digest?: string;
  /** The step whose rows were read, their date and the run that wrote them. */
  step?: string;
  date?: string;
  run_id?: string;
}

/** How one stage ended: the core's step report, without an identity (S1's is its params). */
export type StageReport = Omit<StepReport, 'step' | 'identity'> & { step: StageName };

/** One date's run, as the stages go. */
export interface DateRun {
  plan: RunPlan;
  /** The params of stages 1 and 2: as-of, config hash, the date's inputs digest. */
  params: Params;
  /** How many signals the date's window holds (the built-in check window_has_signals). */
  windowSignals: number;
  /** What stage 3 counts, planned once stage 2 finished; null before. */
  counted: Counted | null;
  /** The params of stages 3 and 4 (with the counted digest); null until stage 2 finished. */
  countedParams: CountedParams | null;
  runId: string;
  retryOf?: string;
  subjects: string[];
  log: Logger;
  stages: StageReport[];
  exit_code: number;
  failed: boolean;
  started: number;
  pointer: string | null;
  /** The run this publish replaced with other content (a restatement), when it did. */
  restates?: string;
  /** Why publishing failed after every stage passed (a ledger that does not verify, a lost lock). */
  publishError?: string;
}

export interface RunReport {
  pipeline: 's1';
  run_id: string;
  retry_of_run_id?: string;
  date: string;
  as_of: string;
  /** The date was not over when it ran (an --as-of on an open day): what it published may change. */
  provisional: boolean;
  /** The params of the run's last stages (stages 3–4 once planned, else stages 1–2). */
  params: StageParams;
  status: 'published' | 'failed';
  exit_code: number;
  stages: StageReport[];
  pointer: string | null;
  /** The run whose publish of the date this one replaced with other content (the ledger's restatement_of). */
  restatement_of?: string;
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
    provisional: r.plan.provisional,
    params: r.countedParams ?? r.params,
    status: r.pointer ? 'published' : 'failed',
    exit_code: r.exit_code,
    stages: r.stages,
    pointer: r.pointer,
    ...(r.restates ? { restatement_of: r.restates } : {}),
    ...(r.publishError ? { publish_error: r.publishError } : {}),
    duration_ms: Date.now() - r.started,
  };
}
