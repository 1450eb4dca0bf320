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
import type { PipelineExecution } from './execution.js';
import type { PartitionPlan } from './plan.js';
import { cancelLeftovers, runExecution, type ExecutionOptions, type PipelineRunReport, type RunnerDeps } from './runner.js';
import { staleness } from './staleness.js';
import type { PipelineDefinition } from './types.js';
import { executionOf } from './user-steps.js';

export interface BackfillOptions extends Omit<ExecutionOptions, 'plan' | 'runId' | 'retryOf' | 'previousSettled' | 'sequence'> {
  backfillId: string;
  plans: readonly PartitionPlan[];
  /** Partitions run at once (steps reading the previous partition wait for it). 1 to 64; default 1. */
  maxParallel: number;
  resume: boolean;
  /** Where the summary is rewritten as partitions finish (file backend); none in memory. */
  ws?: WorkspacePaths;
  onPartition?: (r: PartitionResult, done: number, total: number) => void;
}

/** What `--resume` decided for a partition: skip it (published by `skip`, still current), or run it. */
export interface ResumeDecision {
  /** The run whose publish stays (the partition is skipped); null: it runs. */
  skip: string | null;
  /** Why a published partition runs again (its inputs or upstream changed since). */
  stale?: string;
  /** Why it is skipped, for the report; default: already published with the identity a run would have now. */
  reason?: string;
}

export interface PartitionResult {
  date: string;
  status: 'published' | 'failed' | 'skipped' | 'blocked';
  run_id: string | null;
  exit_code: number;
  duration_ms: number;
  reason?: string;
  /** With --resume: the partition was published, but stale (why); it ran again. */
  stale?: string;
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

/** A user's pipeline over a range (see {@link runExecutionBackfill}); `--resume` skips partitions whose identities are current. */
export async function runBackfill(o: BackfillOptions & { def: PipelineDefinition }, d: RunnerDeps): Promise<PipelineBackfillReport> {
  const { def, ...rest } = o;
  const exec = executionOf(def, d);
  return runExecutionBackfill(exec, rest, d, async (plans) => {
    const out = new Map<string, ResumeDecision>();
    for (const plan of plans) {
      const s = await staleness(def, plan, d);
      out.set(plan.partition, s.state === 'current' ? { skip: s.run_id ?? 'unknown' } : s.state === 'stale' ? { skip: null, stale: `changed since: ${s.changed.join(', ')}` } : { skip: null });
    }
    return out;
  });
}

/**
 * Runs the range; never throws for one partition's failure (it is in the report). With
 * `o.resume`, `decide` says which partitions are skipped, before anything runs; in a pipeline
 * with a step that reads the previous partition, every partition after the first that runs again
 * runs too (what it reads may change).
 */
/**
 * Whether a backfill's summary is written again once `r` settled: not for a blocked partition,
 * which did no work; it is saved with the next partition that did, or at the end (rewriting the
 * whole summary for each made a stopped 3660-date backfill quadratic). Every backfill summary
 * (this one's, Season 1's) follows it.
 */
export function summaryDue(r: PartitionResult): boolean {
  return r.status !== 'blocked';
}

export async function runExecutionBackfill(
  exec: PipelineExecution,
  o: BackfillOptions,
  d: RunnerDeps,
  decide: (plans: readonly PartitionPlan[]) => Promise<Map<string, ResumeDecision>>,
): Promise<PipelineBackfillReport> {
  const report: PipelineBackfillReport = {
    backfill_id: o.backfillId,
    pipeline: exec.name,
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
    report.exit_code = mostSevere([report.exit_code, r.exit_code]);
    if (summaryDue(r)) save();
    o.onPartition?.(r, ++done, o.plans.length);
  };
  save();
  const ordered = exec.steps.some((s) => s.previous);
  const width = Math.max(1, o.maxParallel);
  let blockedBy: string | null = null;
  const queue = [...o.plans];
  // Each partition's outcome, as a promise: a step reading the previous partition waits for it.
  const settled = o.plans.map(() => deferred<boolean>());
  // Steps that commit in partition order: partition i writes what it held once i-1 is past the
  // step, and passes it after every partition before it did (even when it gives its turn up early).
  const passes = new Map<string, { promise: Promise<void>; resolve: (v: void) => void; passed: boolean }[]>();
  const slot = (step: string, i: number) => {
    let row = passes.get(step);
    if (!row) passes.set(step, (row = o.plans.map(() => ({ ...deferred<void>(), passed: false }))));
    return row[i]!;
  };
  const turn = (step: string, i: number): Promise<void> => (i > 0 ? slot(step, i - 1).promise : Promise.resolve());
  const pass = (step: string, i: number): void => {
    const s = slot(step, i);
    if (s.passed) return;
    s.passed = true;
    void turn(step, i).then(() => s.resolve());
  };
  let decisions = new Map<string, ResumeDecision>();
  if (o.resume) {
    decisions = await decide(o.plans);
    let rerunning = false;
    for (const plan of o.plans) {
      const x = decisions.get(plan.partition);
      if (x?.stale) d.log.warn({ event: 'date_stale', date: plan.partition, reason: x.stale }, `${plan.partition} is stale: it runs again`);
      if (rerunning && x?.skip) decisions.set(plan.partition, { skip: null, ...(x.stale ? { stale: x.stale } : {}) });
      if (ordered && !decisions.get(plan.partition)?.skip) rerunning = true;
    }
  }
  const blockedReason = (by: string): string => exec.blockedReason?.(by) ?? `not run: ${by} failed, and this pipeline reads the previous partition; fix it and --resume`;
  const oneInner = async (plan: PartitionPlan, i: number): Promise<boolean> => {
    if (blockedBy !== null || o.stop.aborted) {
      settle({
        date: plan.partition,
        status: 'blocked',
        run_id: null,
        exit_code: EXIT.BUSINESS_SKIP,
        duration_ms: 0,
        reason: o.stop.aborted ? 'stop requested before this partition ran' : blockedReason(blockedBy!),
      });
      return false;
    }
    const decision = decisions.get(plan.partition);
    if (decision?.skip) {
      await cancelLeftovers(exec, plan.partition, decision.skip, d, o.by);
      settle({
        date: plan.partition,
        status: 'skipped',
        run_id: decision.skip,
        exit_code: EXIT.SUCCESS,
        duration_ms: 0,
        reason: decision.reason ?? 'already published with the identity a run would have now',
      });
      return true;
    }
    let r: PipelineRunReport;
    const runId = `${o.backfillId}.${plan.partition}`;
    const stale = decision?.stale ? { stale: decision.stale } : {};
    try {
      // In a range, the partition before this one is the previous partition its previous: true steps read.
      const before = i > 0 ? settled[i - 1]!.promise : null;
      r = await runExecution(
        exec,
        {
          ...o,
          plan,
          runId,
          ...(ordered && before ? { previousSettled: () => before } : {}),
          ...(width > 1 ? { sequence: { turn: (step: string) => turn(step, i), pass: (step: string) => pass(step, i) } } : {}),
        },
        d,
      );
    } catch (err) {
      settle({ date: plan.partition, status: 'failed', run_id: runId, exit_code: EXIT.INTERNAL_ERROR, duration_ms: 0, reason: (err as Error).message, ...stale });
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
      ...stale,
    });
    if (r.status !== 'published' && ordered) blockedBy = plan.partition;
    return r.status === 'published';
  };
  const one = async (plan: PartitionPlan, i: number): Promise<void> => {
    try {
      settled[i]!.resolve(await oneInner(plan, i));
    } catch (err) {
      settled[i]!.resolve(false);
      throw err;
    } finally {
      for (const s of exec.steps) if (s.commitsInOrder) pass(s.name, i);
    }
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

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
