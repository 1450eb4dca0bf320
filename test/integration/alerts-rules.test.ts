// The alert rules as pure functions: windows, thresholds and when an alert stays open.
import { describe, expect, it } from 'vitest';
import { ALERTS_DEFAULTS } from '../../src/config/alerts.js';
import { evaluate, type Observation, type WorkerMemory } from '../../src/ops/alerts/rules.js';
import type { QueueView } from '../../src/ops/workspace-view.js';
import { emptyStats } from '../../src/queue/file/stats-file.js';
import type { RunInfo } from '../../src/storage/runs.js';

const MIN = 60_000;

function view(queue: string, o: Partial<QueueView> & { failed?: number; dead_lettered?: number } = {}): QueueView {
  const { failed = 0, dead_lettered = 0, ...rest } = o;
  return {
    ...emptyStats(queue),
    totals: { failed, dead_lettered, retried: 0 },
    oldest_ready_age_s: null,
    ...rest,
  };
}

function obs(now: number, queues: QueueView[], latestRuns: RunInfo[] = []): Observation {
  return { now, queues, latestRuns, guardrailPauses: new Map() };
}

const none = { workers: {} as Record<string, WorkerMemory>, open: new Set<string>() };

describe('alert rules', () => {
  it('failure_ratio: over the trailing window, only with enough attempts, above the threshold (seed 004: > 0.10 over 10 min)', async () => {
    const t0 = 1_000_000_000_000;
    // First reading: nothing to compare with.
    let r = evaluate(obs(t0, [view('w', { completed: 100, failed: 0 })]), none, ALERTS_DEFAULTS);
    expect(r.alerts).toEqual([]);
    // 5 minutes later: 30 completions, 4 failures → 4/34 = 0.118 > 0.10 with 34 >= 20 attempts.
    r = evaluate(obs(t0 + 5 * MIN, [view('w', { completed: 130, failed: 4 })]), { workers: r.workers, open: new Set() }, ALERTS_DEFAULTS);
    expect(r.alerts.map((a) => a.fingerprint)).toEqual(['failure_ratio:w']);
    expect(r.alerts[0]!.details).toMatchObject({ failed: 4, attempts: 34, threshold: 0.1 });
    // 16 minutes in: the window base is the reading at 5 min (the newest one at or before now - 10 min); 50 more completions, no failure.
    r = evaluate(obs(t0 + 16 * MIN, [view('w', { completed: 180, failed: 4 })]), { workers: r.workers, open: new Set() }, ALERTS_DEFAULTS);
    expect(r.alerts).toEqual([]);
    // Few attempts never alert, whatever the ratio.
    const few = evaluate(
      obs(t0 + MIN, [view('x', { completed: 1, failed: 3 })]),
      { workers: { x: { dead_lettered: 0, dead: 0, samples: [{ at: t0, completed: 0, failed: 0 }] } }, open: new Set() },
      ALERTS_DEFAULTS,
    );
    expect(few.alerts).toEqual([]);
    // A counter that went backwards (a queue recreated) is not a negative ratio: the old readings are dropped.
    const reset = evaluate(
      obs(t0 + MIN, [view('y', { completed: 5, failed: 0 })]),
      { workers: { y: { dead_lettered: 0, dead: 0, samples: [{ at: t0, completed: 500, failed: 90 }] } }, open: new Set() },
      ALERTS_DEFAULTS,
    );
    expect(reset.alerts).toEqual([]);
    expect(reset.workers.y!.samples).toEqual([{ at: t0 + MIN, completed: 5, failed: 0 }]);
  });

  it('dead_letters_grew: opens on growth, stays open while dead letters wait, closes when they are retried', async () => {
    const mem = (dead_lettered: number, dead: number): Record<string, WorkerMemory> => ({ w: { dead_lettered, dead, samples: [] } });
    expect(evaluate(obs(1, [view('w', { dead: 2, dead_lettered: 2 })]), none, ALERTS_DEFAULTS).alerts.map((a) => a.details)).toEqual([{ dead: 2, new_since_last_check: 2, dead_lettered_total: 2 }]);
    // Old dead letters already alerted and no growth: only open if it was open.
    expect(evaluate(obs(2, [view('w', { dead: 2, dead_lettered: 2 })]), { workers: mem(2, 2), open: new Set() }, ALERTS_DEFAULTS).alerts).toEqual([]);
    expect(evaluate(obs(2, [view('w', { dead: 2, dead_lettered: 2 })]), { workers: mem(2, 2), open: new Set(['dead_letters_grew:w']) }, ALERTS_DEFAULTS).alerts).toHaveLength(1);
    expect(evaluate(obs(2, [view('w', { dead: 3, dead_lettered: 3 })]), { workers: mem(2, 2), open: new Set() }, ALERTS_DEFAULTS).alerts[0]!.message).toMatch(/1 new dead letter/);
    expect(evaluate(obs(2, [view('w', { dead: 0, dead_lettered: 3 })]), { workers: mem(3, 3), open: new Set(['dead_letters_grew:w']) }, ALERTS_DEFAULTS).alerts).toEqual([]);
  });

  it('oldest_ready_age over 30 min; run_failed for exit codes other than 0, 10, 11; disabled rules stay silent', async () => {
    const run = (exit_code: number): RunInfo => ({
      run_id: `r${exit_code}`,
      pipeline: `p${exit_code}`,
      date: '2026-01-15',
      as_of: '',
      retry_of_run_id: null,
      started_at: '',
      finished_at: '',
      duration_ms: 1,
      status: exit_code === 0 ? 'success' : 'failed',
      current: false,
      exit_code,
      failure: null,
      steps: [],
    });
    const r = evaluate(
      obs(1, [view('old', { ready: 1, oldest_ready_age_s: 31 * 60 }), view('young', { ready: 1, oldest_ready_age_s: 29 * 60 })], [0, 10, 11, 20, 50, 60].map(run)),
      none,
      ALERTS_DEFAULTS,
    );
    expect(r.alerts.map((a) => a.fingerprint)).toEqual(['oldest_ready_age:old', 'run_failed:p20:r20', 'run_failed:p50:r50', 'run_failed:p60:r60']);
    expect(r.alerts.find((a) => a.subject === 'p60')!.message).toMatch(/halted by a guardrail: exit 60/);
    const off = evaluate(obs(1, [view('old', { ready: 1, oldest_ready_age_s: 31 * 60 })], [run(50)]), none, { ...ALERTS_DEFAULTS, disabled: ['run_failed', 'oldest_ready_age'] });
    expect(off.alerts).toEqual([]);
  });
});
