/**
 * A backfill: every partition of a range, each a run of its own (`<backfill id>.<date>`), up to
 * `maxParallel` at once. A pipeline with a step that reads the previous partition's published
 * output runs its partitions in order, and a partition that fails blocks the later ones (their
 * output would build on a gap). `--resume` skips partitions already published with the identity
 * a run would have now.
 */
import { join } from 'node:path';
import { EXIT, mostSevere } from '../guard/exit-codes.js';
import { writeAtomicSync } from '../storage/atomic.js';
import type { WorkspacePaths } from '../storage/paths.js';
import { dependsOnPrevious, type PartitionPlan } from './plan.js';
import { runPartition, type PipelineRunReport, type RunnerDeps, type RunPartitionOptions } from './runner.js';
import { staleness } from './staleness.js';

export interface BackfillOptions extends Omit<RunPartitionOptions, 'plan' | 'runId' | 'retryOf'> {
  backfillId: string;
  plans: readonly PartitionPlan[];
  /** Partitions run at once (when no step reads the previous partition). 1 to 64; default 1. */
  maxParallel: number;
  resume: boolean;
  /** Where the summary is rewritten as partitions finish (file backend); none in memory. */
  ws?: WorkspacePaths;
  onPartition?: (r: PartitionResult, done: number, total: number) => void;
}

export interface PartitionResult {
  date: string;
  status: 'published' | 'failed' | 'skipped' | 'blocked';
  run_id: string | null;
  exit_code: number;
  duration_ms: number;
  reason?: string;
}

export interface PipelineBackfillReport {
  backfill_id: string;
  pipeline: string;
  start: string;
  end: string;
  max_parallel: number;
  resume: boolean;
  started_at: string;
  finished_at: string | null;
  exit_code: number;
  partitions: Record<string, PartitionResult>;
}

/** Runs the range; never throws for one partition's failure (it is in the report). */
export async function runBackfill(o: BackfillOptions, d: RunnerDeps): Promise<PipelineBackfillReport> {
  const report: PipelineBackfillReport = {
    backfill_id: o.backfillId,
    pipeline: o.def.name,
    start: o.plans[0]!.partition,
    end: o.plans[o.plans.length - 1]!.partition,
    max_parallel: o.maxParallel,
    resume: o.resume,
    started_at: new Date().toISOString(),
    finished_at: null,
    exit_code: EXIT.SUCCESS,
    partitions: {},
  };
  const summary = o.ws ? join(o.ws.manifests, 'backfills', o.backfillId, 'summary.json') : null;
  const save = (): void => {
    if (summary) writeAtomicSync(summary, `${JSON.stringify(report, null, 2)}\n`);
  };
  let done = 0;
  const settle = (r: PartitionResult): void => {
    report.partitions[r.date] = r;
    report.exit_code = mostSevere(Object.values(report.partitions).map((x) => x.exit_code));
    save();
    o.onPartition?.(r, ++done, o.plans.length);
  };
  save();
  const ordered = dependsOnPrevious(o.def);
  const width = ordered ? 1 : Math.max(1, o.maxParallel);
  let blockedBy: string | null = null;
  const queue = [...o.plans];
  const one = async (plan: PartitionPlan): Promise<void> => {
    if (blockedBy !== null || o.stop.aborted) {
      settle({ date: plan.partition, status: 'blocked', run_id: null, exit_code: EXIT.BUSINESS_SKIP, duration_ms: 0, reason: o.stop.aborted ? 'stop requested before this partition ran' : `not run: ${blockedBy} failed, and this pipeline reads the previous partition; fix it and --resume` });
      return;
    }
    if (o.resume) {
      const s = await staleness(o.def, plan, d);
      if (s.state === 'current') {
        settle({ date: plan.partition, status: 'skipped', run_id: s.run_id, exit_code: EXIT.SUCCESS, duration_ms: 0, reason: 'already published with the identity a run would have now' });
        return;
      }
    }
    let r: PipelineRunReport;
    const runId = `${o.backfillId}.${plan.partition}`;
    try {
      r = await runPartition({ ...o, plan, runId }, d);
    } catch (err) {
      settle({ date: plan.partition, status: 'failed', run_id: runId, exit_code: EXIT.INTERNAL_ERROR, duration_ms: 0, reason: (err as Error).message });
      if (ordered) blockedBy = plan.partition;
      return;
    }
    const failed = r.steps.find((s) => s.status === 'failed');
    settle({
      date: plan.partition,
      status: r.status === 'published' ? 'published' : 'failed',
      run_id: r.run_id,
      exit_code: r.exit_code,
      duration_ms: r.duration_ms,
      ...(failed?.error ? { reason: `${failed.step}: ${failed.error.message}` } : r.publish_error ? { reason: r.publish_error } : {}),
    });
    if (r.status !== 'published' && ordered) blockedBy = plan.partition;
  };
  try {
    await Promise.all(
      Array.from({ length: Math.min(width, queue.length) }, async () => {
        for (let p = queue.shift(); p; p = queue.shift()) await one(p);
      }),
    );
  } finally {
    report.finished_at = new Date().toISOString();
    save();
  }
  return report;
}
