import * as z from '../../src/zod.js';
import type { ManifestCheck } from '../../src/storage/manifest.js';

/**
 * Anomaly guardrails: checks of a date's summary against the dates published before it, run
 * before publishing. A tripped guardrail halts the run (exit 60) and publishes nothing.
 */
export const guardrailsSchema = z
  .object({
    /** total_score against the mean of the last `window` published dates: halt beyond ×max_ratio either way. */
    total_score_ratio: z
      .object({ enabled: z.boolean().default(true), max_ratio: z.number().gt(1).default(10), window: z.number().int().min(1).default(7), min_history: z.number().int().min(1).default(3) })
      .strict()
      .prefault({}),
    /** subjects_scored against the same mean: halt when it dropped by more than max_drop (0.9 = 90%). */
    subjects_scored_drop: z
      .object({ enabled: z.boolean().default(true), max_drop: z.number().gt(0).max(1).default(0.9), window: z.number().int().min(1).default(7), min_history: z.number().int().min(1).default(3) })
      .strict()
      .prefault({}),
    /** The date's allocation must use the whole pool (or none of it when nobody scored). */
    pool_conserved: z
      .object({ enabled: z.boolean().default(true) })
      .strict()
      .prefault({}),
  })
  .strict();

export type Guardrails = z.output<typeof guardrailsSchema>;
export type GuardrailName = keyof Guardrails;
export const GUARDRAIL_NAMES = Object.keys(guardrailsSchema.shape) as GuardrailName[];

/**
 * The check built into Season 1 (S1-SPEC "Checks before publishing"), run before publishing with
 * the guardrails whatever the config and the history: `window_has_signals` halts (exit 60) a date
 * whose window holds no signal at all (an empty or truncated inputs file) instead of publishing
 * an all-zero day. Not configurable; `--skip-check window_has_signals --reason T` skips it.
 */
export const BUILTIN_CHECK_NAMES = ['window_has_signals'] as const;

/** Every name `--skip-check` takes: the built-in check first, then the guardrails. */
export const CHECK_NAMES: readonly string[] = [...BUILTIN_CHECK_NAMES, ...GUARDRAIL_NAMES];

/** What a guardrail looks at: the date's summary and the summaries of earlier published dates (newest first). */
export interface SummaryFacts {
  total_score: number;
  subjects_scored: number;
  pool_units: number;
  allocated_units: number;
}

export interface GuardrailCheck extends ManifestCheck {
  guardrail: true;
  threshold: unknown;
}

/** The window a date's scores read: its first and last UTC date and the as-of (exclusive). */
export interface SignalWindow {
  first: string;
  last: string;
  as_of: string;
}

/**
 * Pure: the built-in check `window_has_signals` as a manifest check. Fails when `signals` (the
 * number of signals with `ts < as_of` whose UTC date lies in the window) is 0; `skip` maps a
 * check name to the operator's reason.
 */
export function windowHasSignals(signals: number, window: SignalWindow, skip: ReadonlyMap<string, string>): GuardrailCheck {
  const reason = skip.get('window_has_signals');
  return {
    name: 'window_has_signals',
    guardrail: true,
    status: reason !== undefined ? 'skipped' : signals > 0 ? 'pass' : 'fail',
    observed: { signals, ...window },
    expected: 'at least one signal in the window',
    threshold: 'built in: signals > 0',
    ...(reason !== undefined ? { note: `skipped by operator: ${reason}` } : {}),
  };
}

const mean = (xs: number[]): number => xs.reduce((a, x) => a + x, 0) / xs.length;

/** Pure: every enabled guardrail as a manifest check; `skip` maps a name to the operator's reason. */
export function evaluateGuardrails(g: Guardrails, today: SummaryFacts, history: readonly SummaryFacts[], skip: ReadonlyMap<string, string>): GuardrailCheck[] {
  const out: GuardrailCheck[] = [];
  const add = (name: GuardrailName, ok: boolean, observed: unknown, expected: unknown, threshold: unknown): void => {
    const reason = skip.get(name);
    out.push({
      name,
      guardrail: true,
      status: reason !== undefined ? 'skipped' : ok ? 'pass' : 'fail',
      observed,
      expected,
      threshold,
      ...(reason !== undefined ? { note: `skipped by operator: ${reason}` } : {}),
    });
  };
  const t = g.total_score_ratio;
  if (t.enabled) {
    const window = history.slice(0, t.window);
    if (window.length >= t.min_history && mean(window.map((h) => h.total_score)) > 0) {
      const m = mean(window.map((h) => h.total_score));
      const ratio = today.total_score / m;
      add('total_score_ratio', ratio <= t.max_ratio && ratio >= 1 / t.max_ratio, { total_score: today.total_score, ratio }, { mean_of_last: window.length, mean: m }, { max_ratio: t.max_ratio });
    } else {
      add('total_score_ratio', true, { total_score: today.total_score }, `history of ${window.length} published date(s); needs ${t.min_history}`, { max_ratio: t.max_ratio });
    }
  }
  const d = g.subjects_scored_drop;
  if (d.enabled) {
    const window = history.slice(0, d.window);
    if (window.length >= d.min_history && mean(window.map((h) => h.subjects_scored)) > 0) {
      const m = mean(window.map((h) => h.subjects_scored));
      const drop = 1 - today.subjects_scored / m;
      add('subjects_scored_drop', drop <= d.max_drop, { subjects_scored: today.subjects_scored, drop }, { mean_of_last: window.length, mean: m }, { max_drop: d.max_drop });
    } else {
      add('subjects_scored_drop', true, { subjects_scored: today.subjects_scored }, `history of ${window.length} published date(s); needs ${d.min_history}`, { max_drop: d.max_drop });
    }
  }
  if (g.pool_conserved.enabled) {
    const expected = today.subjects_scored > 0 && today.total_score > 0 ? today.pool_units : 0;
    add('pool_conserved', today.allocated_units === expected, today.allocated_units, expected, 'allocated_units == pool_units when any score > 0, else 0');
  }
  return out;
}
