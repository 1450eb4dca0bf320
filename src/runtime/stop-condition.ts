import type { QueuePolicy } from '../config/policy.js';
import type { TaskOutcome } from './runner.js';

const FAILED = new Set(['retry_scheduled', 'dead', 'dead_contract']);

/**
 * The worker's stop condition, pure: over the last `stop_window` outcomes, the share that failed.
 * Returns a reason once the window is full and the share reaches `stop_failure_ratio` (0: never).
 */
export function failureRatioGuard(policy: Pick<QueuePolicy, 'stop_failure_ratio' | 'stop_window'>): (o: TaskOutcome) => string | null {
  const window: boolean[] = [];
  let failures = 0;
  return (o) => {
    if (policy.stop_failure_ratio <= 0) return null;
    const failed = FAILED.has(o.kind);
    window.push(failed);
    if (failed) failures++;
    if (window.length > policy.stop_window && window.shift()) failures--;
    if (window.length < policy.stop_window) return null;
    const ratio = failures / window.length;
    return ratio >= policy.stop_failure_ratio ? `${failures} of the last ${window.length} tasks failed (ratio ${ratio.toFixed(2)} >= stop_failure_ratio ${policy.stop_failure_ratio})` : null;
  };
}
