import { join } from 'node:path';
import { writeAtomicSync } from './atomic.js';
import { Mutex } from './mutex.js';
import type { WorkspacePaths } from './paths.js';
import { safeMkdir, safeReaddir } from './safe-path.js';
import { readStateJson, shape, StateFileError } from './state-file.js';

/** Upper bounds of the task-duration buckets, in seconds (+Inf is implied). */
export const DURATION_BUCKETS_S: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

/** How an attempt whose handler ran ended: done, or failed (retried or dead-lettered). */
export type DurationOutcome = 'completed' | 'failed';

/** One histogram: counts per bucket (not cumulative; the last one is +Inf), their sum in seconds, and the count. */
export interface DurationHistogram {
  counts: number[];
  sum: number;
  count: number;
}

/** Minutes of throughput kept: a day. */
export const THROUGHPUT_MINUTES = 1440;

/**
 * ops/task-durations/<queue>.json: the histograms, cumulative since the file was created, by
 * outcome; and `per_minute`, attempts ended per UTC minute (epoch minute → [completed, failed]) over
 * the last day, for the /ops page's throughput chart.
 */
export interface DurationFile {
  schema_version: 1;
  buckets: number[];
  outcomes: Partial<Record<DurationOutcome, DurationHistogram>>;
  per_minute?: Record<string, [number, number]>;
}

function dirOf(ws: WorkspacePaths): string {
  return join(ws.root, 'ops', 'task-durations');
}

const emptyHistogram = (): DurationHistogram => ({ counts: DURATION_BUCKETS_S.map(() => 0).concat(0), sum: 0, count: 0 });

/** The histograms of one queue, or null when none was recorded (or the file is from other buckets). */
export function readDurations(ws: WorkspacePaths, queue: string): DurationFile | null {
  const f = readStateJson<DurationFile>(
    join(dirOf(ws), `${queue}.json`),
    shape({ buckets: 'array', outcomes: 'object' }),
    'it is rewritten at the next worker run; delete it to start the histogram afresh',
  );
  if (!f || f.buckets.length !== DURATION_BUCKETS_S.length || f.buckets.some((b, i) => b !== DURATION_BUCKETS_S[i])) return null;
  return f;
}

/**
 * Attempts ended per minute over the last `minutes` minutes up to `now`, summed over every queue
 * (oldest first, one entry per minute, zeros included): the /ops page's throughput chart.
 */
export function throughput(ws: WorkspacePaths, now: number, minutes = 60): { minute: number; completed: number; failed: number }[] {
  const last = Math.floor(now / 60_000);
  const out = Array.from({ length: minutes }, (_, i) => ({ minute: last - minutes + 1 + i, completed: 0, failed: 0 }));
  for (const q of durationQueues(ws)) {
    let f: DurationFile | null = null;
    try {
      f = readDurations(ws, q);
    } catch {
      continue;
    }
    for (const [k, v] of Object.entries(f?.per_minute ?? {})) {
      const i = Number(k) - out[0]!.minute;
      if (i < 0 || i >= minutes || !Array.isArray(v)) continue;
      out[i]!.completed += Number(v[0]) || 0;
      out[i]!.failed += Number(v[1]) || 0;
    }
  }
  return out;
}

/** Queues with a durations file. */
export function durationQueues(ws: WorkspacePaths): string[] {
  return safeReaddir(dirOf(ws))
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -5))
    .sort();
}

/**
 * Collects the durations of one queue's attempts in a worker process and adds them to the
 * queue's file now and then (`flush`), under a lock: the worker processes of a queue, on cron or
 * at once, add up in one histogram that `/metrics` serves as metaspn_task_duration_seconds. What a
 * process observed since its last flush is lost if it is killed; the queue's tasks are not affected.
 */
export class DurationRecorder {
  private pending: Partial<Record<DurationOutcome, DurationHistogram>> = {};
  private minutes = new Map<number, [number, number]>();
  private observed = 0;

  constructor(
    private readonly ws: WorkspacePaths,
    private readonly queue: string,
    private readonly now: () => number = Date.now,
  ) {}

  observe(seconds: number, outcome: DurationOutcome): void {
    if (!Number.isFinite(seconds) || seconds < 0) return;
    const minute = Math.floor(this.now() / 60_000);
    const m = this.minutes.get(minute) ?? this.minutes.set(minute, [0, 0]).get(minute)!;
    m[outcome === 'completed' ? 0 : 1] += 1;
    const h = (this.pending[outcome] ??= emptyHistogram());
    const i = DURATION_BUCKETS_S.findIndex((b) => seconds <= b);
    h.counts[i < 0 ? DURATION_BUCKETS_S.length : i]! += 1;
    h.sum += seconds;
    h.count += 1;
    this.observed++;
  }

  /** Adds what was observed since the last flush to the file (nothing to add: nothing is written). */
  async flush(): Promise<void> {
    if (this.observed === 0) return;
    const add = this.pending;
    const minutes = this.minutes;
    this.pending = {};
    this.minutes = new Map();
    this.observed = 0;
    const dir = dirOf(this.ws);
    safeMkdir(dir);
    const mutex = new Mutex(join(dir, '.mutex'), 'the task durations');
    await mutex.acquire();
    try {
      let file: DurationFile | null = null;
      try {
        file = readDurations(this.ws, this.queue);
      } catch (err) {
        // A damaged file is replaced: durations are statistics, not state.
        if (!(err instanceof StateFileError)) throw err;
      }
      const out: DurationFile = file ?? { schema_version: 1, buckets: [...DURATION_BUCKETS_S], outcomes: {} };
      for (const [k, h] of Object.entries(add) as [DurationOutcome, DurationHistogram][]) {
        const into = (out.outcomes[k] ??= emptyHistogram());
        h.counts.forEach((c, i) => (into.counts[i] = (into.counts[i] ?? 0) + c));
        into.sum += h.sum;
        into.count += h.count;
      }
      const per = out.per_minute ?? {};
      for (const [minute, [done, failed]] of minutes) {
        const was = per[String(minute)] ?? [0, 0];
        per[String(minute)] = [was[0] + done, was[1] + failed];
      }
      const oldest = Math.floor(this.now() / 60_000) - THROUGHPUT_MINUTES;
      for (const k of Object.keys(per)) if (Number(k) <= oldest) delete per[k];
      out.per_minute = per;
      writeAtomicSync(join(dir, `${this.queue}.json`), `${JSON.stringify(out)}\n`);
    } finally {
      mutex.close();
    }
  }
}
