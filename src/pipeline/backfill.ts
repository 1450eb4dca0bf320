/**
 * A backfill: every partition of a range, each a run of its own (`<backfill id>.<date>`), up to
 * `maxParallel` at once. In a pipeline with a step that reads the previous partition's published
 * output, that step (and what follows it) waits for the previous partition to be published, while
 * the other steps run ahead; a partition that fails blocks the later ones (their output would
 * build on a gap). `--resume` skips partitions already published with the identity
 * a run would have now.
 */
import { join } from 'node:path';
import { EXIT, mostSevere } from '../guard/exit-codes.js';
import { writeAtomicSync } from '../storage/atomic.js';
import type { WorkspacePaths } from '../storage/paths.js';
import { dependsOnPrevious, type PartitionPlan } from './plan.js';
import { cancelLeftovers, runPartition, type PipelineRunReport, type RunnerDeps, type RunPartitionOptions } from './runner.js';
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
  const width = Math.max(1, o.maxParallel);
  let blockedBy: string | null = null;
  const queue = [...o.plans];
  // Each partition's outcome, as a promise: a step reading the previous partition waits for it.
  const settled = new Map<string, { promise: Promise<boolean>; resolve: (published: boolean) => void }>();
  for (const p of o.plans) {
    let resolve!: (v: boolean) => void;
    const promise = new Promise<boolean>((r) => (resolve = r));
    settled.set(p.partition, { promise, resolve });
  }
  const one = async (plan: PartitionPlan, i: number): Promise<void> => {
    const published = await oneInner(plan, i);
    settled.get(plan.partition)!.resolve(published);
  };
  const oneInner = async (plan: PartitionPlan, i: number): Promise<boolean> => {
    if (blockedBy !== null || o.stop.aborted) {
      settle({ date: plan.partition, status: 'blocked', run_id: null, exit_code: EXIT.BUSINESS_SKIP, duration_ms: 0, reason: o.stop.aborted ? 'stop requested before this partition ran' : `not run: ${blockedBy} failed, and this pipeline reads the previous partition; fix it and --resume` });
      return false;
    }
    if (o.resume) {
      const s = await staleness(o.def, plan, d);
      if (s.state === 'current') {
        await cancelLeftovers(o.def, plan.partition, s.run_id ?? 'unknown', d, o.by);
        settle({ date: plan.partition, status: 'skipped', run_id: s.run_id, exit_code: EXIT.SUCCESS, duration_ms: 0, reason: 'already published with the identity a run would have now' });
        return true;
      }
    }
    let r: PipelineRunReport;
    const runId = `${o.backfillId}.${plan.partition}`;
    try {
      // In a range, the partition before this one is the previous partition its previous: true steps read.
      const before = i > 0 ? settled.get(o.plans[i - 1]!.partition)!.promise : null;
      r = await runPartition({ ...o, plan, runId, ...(ordered && before ? { previousSettled: () => before } : {}) }, d);
    } catch (err) {
      settle({ date: plan.partition, status: 'failed', run_id: runId, exit_code: EXIT.INTERNAL_ERROR, duration_ms: 0, reason: (err as Error).message });
      if (ordered) blockedBy = plan.partition;
      return false;
    }
    const failed = r.steps.find((s) => s.status === 'failed');
    settle({
      date: plan.partition,
      status: r.status === 'published' ? 'published' : r.blocked ? 'blocked' : 'failed',
      run_id: r.run_id,
      exit_code: r.exit_code,
      duration_ms: r.duration_ms,
      ...(failed?.error
        ? { reason: `${failed.step}: ${failed.error.message}` }
        : r.publish_error
          ? { reason: r.publish_error }
          : r.blocked
            ? { reason: 'the previous partition was not published, and this pipeline reads it; fix it and --resume' }
            : {}),
    });
    if (r.status !== 'published' && ordered) blockedBy = plan.partition;
    return r.status === 'published';
  };
  try {
    await Promise.all(
      Array.from({ length: Math.min(width, queue.length) }, async () => {
        for (let p = queue.shift(); p; p = queue.shift()) await one(p, o.plans.indexOf(p));
      }),
    );
  } finally {
    report.finished_at = new Date().toISOString();
    save();
  }
  return report;
}
