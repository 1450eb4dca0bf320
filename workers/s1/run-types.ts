import type { PipelineRunReport, StepReport } from '../../src/pipeline/runner.js';
import type { StageName } from './context.js';
import type { StageParams } from './ids.js';

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

/** The run report of `s1 run-local` from the runner's. */
export function reportOf(r: PipelineRunReport, params: StageParams | null): RunReport {
  return {
    pipeline: 's1',
    run_id: r.run_id,
    ...(r.retry_of_run_id ? { retry_of_run_id: r.retry_of_run_id } : {}),
    date: r.date,
    as_of: r.as_of,
    provisional: r.provisional,
    params: params ?? ({} as StageParams),
    status: r.status,
    exit_code: r.exit_code,
    stages: r.steps.map(({ identity: _identity, ...s }) => ({ ...s, step: s.step as StageName })),
    pointer: r.pointer,
    ...(r.restatement_of ? { restatement_of: r.restatement_of } : {}),
    ...(r.publish_error ? { publish_error: r.publish_error } : {}),
    duration_ms: r.duration_ms,
  };
}
