/**
 * How a step's drain ended, as the run reports it: pure, shared by every pipeline's runner
 * (the pipeline runner and Season 1's).
 */
import { EXIT, mostSevere } from '../guard/exit-codes.js';
import type { DeadLetter } from '../queue/types.js';
import type { StageDrain } from '../runtime/stage.js';

/** A failed step: the error its manifest records and the exit code the run ends with. */
export interface DrainFailure {
  error: { class: string; message: string };
  exit: number;
}

/**
 * Why a step's tasks did not all complete (`queue`: the queue they are in), and the exit code that
 * says it: dead letters (30, 20 or 50 by their cause), a paused queue (11), tasks cancelled (a
 * newer run superseded them, or an operator discarded them from the dead letters: 11), tasks not
 * finished (11: stopped, or held by another worker). null: all completed.
 */
export function drainFailure(queue: string, d: StageDrain, stopped: boolean): DrainFailure | null {
  if (d.dead.length > 0) {
    const exit = mostSevere(d.dead.map(deadExit));
    const first = d.dead[0]!;
    const reason = first.reason ? `${first.reason.class}: ${first.reason.message}` : 'unknown';
    const what = `${d.dead.length} task(s) of ${queue} in the dead letters (first ${first.task.id}: ${reason})`;
    return {
      error: {
        class: first.reason?.class ?? 'DeadLetter',
        // A contract error will fail the same way if retried as it was: fixed inputs give new tasks.
        message:
          first.reason?.kind === 'contract'
            ? `${what}; fix the input or the step and re-run (changed inputs give new tasks; retrying these would run them as they were)`
            : `${what}; fix the cause and re-run (a run takes its own dead tasks back with fresh attempts)`,
      },
      exit,
    };
  }
  if (d.paused) return { error: { class: 'QueuePaused', message: `queue ${queue} is paused: ${d.unsettled} task(s) wait; \`metaspn queue resume ${queue}\` and re-run` }, exit: EXIT.BUSINESS_SKIP };
  if (d.cancelled) {
    return {
      error: {
        class: 'Cancelled',
        message: `${d.cancelled} task(s) of ${queue} were cancelled before they finished (superseded by a newer run, or discarded from the dead letters); re-run to continue`,
      },
      exit: EXIT.BUSINESS_SKIP,
    };
  }
  if (d.unsettled > 0) {
    return {
      error: { class: stopped ? 'Stopped' : 'Unsettled', message: `${d.unsettled} task(s) of ${queue} not finished${stopped ? ' (stop requested)' : ' (held by another worker)'}; re-run to continue` },
      exit: EXIT.BUSINESS_SKIP,
    };
  }
  return null;
}

/** A dead letter's exit code: 30 inconsistent state, 20 a contract error, 50 anything else. */
export function deadExit(d: DeadLetter): number {
  if (d.reason?.code === 'STATE_CORRUPT') return EXIT.STATE_CORRUPT;
  if (d.reason?.kind === 'contract') return EXIT.DATA_INVALID;
  return EXIT.INTERNAL_ERROR;
}
