import type { StatusLine } from '../log.js';
import type { OutcomeKind } from '../runtime/runner.js';
import { printErr } from './format.js';

/**
 * `worker run`'s live counter on a terminal: one line on stderr, redrawn in place at most every
 * 200 ms, with what the worker has done so far and its rate. Warnings printed meanwhile (a failed
 * attempt) clear it first (see StatusLine). Never used when stderr is not a terminal.
 */
export class LiveCounter implements StatusLine {
  private readonly counts: Record<string, number> = {};
  private drawn = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly t0 = Date.now();
  private stopped = false;

  constructor(
    private readonly name: string,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {}

  /** One more task ended this way. */
  add(kind: OutcomeKind): void {
    this.counts[kind] = (this.counts[kind] ?? 0) + 1;
    if (!this.timer && !this.stopped) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.redraw();
      }, 200);
      this.timer.unref();
    }
  }

  text(): string {
    const c = (k: OutcomeKind): number => this.counts[k] ?? 0;
    const done = Object.values(this.counts).reduce((a, b) => a + b, 0);
    const secs = Math.max(0.001, (Date.now() - this.t0) / 1000);
    const parts = [`${c('completed')} completed`];
    if (c('retry_scheduled')) parts.push(`${c('retry_scheduled')} retry scheduled`);
    if (c('dead') + c('dead_contract')) parts.push(`${c('dead') + c('dead_contract')} dead-lettered`);
    if (c('lease_lost')) parts.push(`${c('lease_lost')} lease lost`);
    return `worker ${this.name}: ${parts.join(', ')} · ${(done / secs).toFixed(done / secs < 10 ? 1 : 0)} tasks/s · ${Math.round(secs)}s`;
  }

  redraw(): void {
    if (this.stopped) return;
    const cols = this.out.columns || 100;
    const t = this.text();
    this.out.write(`\r\x1b[K${t.length > cols - 1 ? `${t.slice(0, cols - 2)}…` : t}`);
    this.drawn = true;
  }

  clear(): void {
    if (!this.drawn) return;
    this.out.write('\r\x1b[K');
    this.drawn = false;
  }

  /** Removes the line for good (the summary is printed after it). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.clear();
  }
}

/*
 * Progress of long work, line by line: one line per step as it ends (a run), one per partition
 * that did not publish (a backfill, above its bar), on stderr so stdout stays the report. Shown
 * when stderr is a terminal, or when METASPN_PROGRESS=1 (a CI log that wants it; 0 turns it off);
 * never with --json.
 */

/** Whether progress lines are wanted: not with `--json`; on a terminal, or METASPN_PROGRESS=1. */
export function progressWanted(json: boolean | undefined, env: NodeJS.ProcessEnv = process.env, stderrIsTTY = process.stderr.isTTY === true): boolean {
  if (json) return false;
  if (env.METASPN_PROGRESS === '0') return false;
  return stderrIsTTY || env.METASPN_PROGRESS === '1';
}

/** What a step's progress line says. */
export interface StepProgress {
  step: string;
  status: string;
  exit_code: number;
  duration_ms: number;
  tasks?: { total: number; completed: number; dead: number };
  error?: { message: string };
}

/** `  project_rewards  success  exit 0  0.4s  1/1 tasks` (and the error's first 200 characters when it failed). */
export function stepLine(date: string, s: StepProgress): string {
  const tasks = s.tasks ? `  ${s.tasks.completed}/${s.tasks.total} tasks${s.tasks.dead ? `, ${s.tasks.dead} dead` : ''}` : '';
  const why = s.error ? `  (${s.error.message.length > 200 ? `${s.error.message.slice(0, 199)}…` : s.error.message})` : '';
  return `${date}  ${s.step.padEnd(24)}  ${s.status.padEnd(7)}  exit ${s.exit_code}  ${(s.duration_ms / 1000).toFixed(1)}s${tasks}${why}`;
}

/** A progress printer for one command: `step(date, report)` writes its line when progress is wanted. */
export function stepProgress(json: boolean | undefined): ((date: string, s: StepProgress) => void) | undefined {
  if (!progressWanted(json)) return undefined;
  return (date, s) => void printErr(`${stepLine(date, s)}\n`);
}
