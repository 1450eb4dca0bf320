import { createHash } from 'node:crypto';
import stringify from 'fast-json-stable-stringify';
import * as z from '../../src/zod.js';
import { describePath, issueRule } from '../../src/config/issues.js';
import { LIMITS, rangeText } from '../../src/config/limits.js';
import { DataInvalidError } from '../../src/guard/errors.js';
import { isDateText } from './dates.js';

/**
 * The Season 1 configuration: the `season` and `attention` keys of `metaspn.config.json`.
 *
 * Every key is individually defaultable, so a file may set only `season.end`. One exception to
 * key-by-key merging: `attention.weights`, when present, REPLACES the default weight map
 * entirely. Its keys are the allowed signal kinds, so merging would keep kinds the operator
 * meant to drop.
 *
 * Unknown keys inside `season` and `attention` are rejected (a typo such as `half_life_day`
 * would otherwise be silently ignored); unknown top-level keys are left to other config
 * readers and dropped here.
 */

/** The default weight of each signal kind: view 1, like 3, reply 5, share 8, follow 10. */
export const DEFAULT_WEIGHTS: Readonly<Record<string, number>> = Object.freeze({
  view: 1,
  like: 3,
  reply: 5,
  share: 8,
  follow: 10,
});

// Ranges from the one table of limits (docs/LIMITS.md); the messages below predate it and stay.
const POOL = LIMITS['season.daily_pool_units'];
const HALF_LIFE = LIMITS['attention.half_life_days'];
const WINDOW = LIMITS['attention.window_days'];
const WEIGHT = LIMITS['attention.weight'];

const dateText = z.string().refine(isDateText, { error: 'must be a real calendar date YYYY-MM-DD' });

const seasonSchema = z
  .strictObject({
    id: z.string().min(1, { error: 'must be a non-empty string' }).default('s1'),
    start: dateText.default('2026-01-01'),
    end: dateText.default('2026-03-31'),
    daily_pool_units: z
      .number({ error: 'must be a number' })
      .int({ error: 'must be a non-negative safe integer' })
      .min(POOL.min, { error: 'must be a non-negative safe integer' })
      .max(POOL.max, { error: 'must be a non-negative safe integer' })
      .default(1_000_000),
  })
  .refine((s) => s.start <= s.end, { error: 'must not be before season.start', path: ['end'] });

const weightsSchema = z
  .record(
    z.string().min(1, { error: 'a kind must be a non-empty string' }),
    z
      .number({ error: 'must be a finite number >= 0' })
      .min(WEIGHT.min, { error: 'must be a finite number >= 0' })
      .max(WEIGHT.max, { error: `must be ${rangeText('attention.weight')}` }),
  )
  .refine((w) => Object.keys(w).length > 0, { error: 'must list at least one signal kind' });

const attentionSchema = z.strictObject({
  half_life_days: z
    .number({ error: 'must be a number' })
    .gt(HALF_LIFE.min, { error: 'must be > 0' })
    .max(HALF_LIFE.max, { error: `must be ${rangeText('attention.half_life_days')}` })
    .default(7),
  window_days: z
    .number({ error: 'must be a number' })
    .int({ error: 'must be an integer >= 1' })
    .min(WINDOW.min, { error: 'must be an integer >= 1' })
    .max(WINDOW.max, { error: `must be ${rangeText('attention.window_days')}` })
    .default(28),
  weights: weightsSchema.default(() => ({ ...DEFAULT_WEIGHTS })),
});

/**
 * Zod schema of the S1 config. Defaults: season `{id: "s1", start: "2026-01-01",
 * end: "2026-03-31", daily_pool_units: 1000000}`, attention `{half_life_days: 7,
 * window_days: 28, weights: {view: 1, like: 3, reply: 5, share: 8, follow: 10}}`.
 */
export const s1ConfigSchema = z.object({
  // prefault, not default: an absent section is parsed as `{}` so the inner defaults apply.
  season: seasonSchema.prefault({}),
  attention: attentionSchema.prefault({}),
});

/** The effective Season 1 configuration after defaults. */
export type S1Config = z.output<typeof s1ConfigSchema>;

/**
 * Validates a parsed config file and fills in the defaults. `raw` is `undefined` when there is no
 * config file (all defaults).
 * @param file the config path, named in errors.
 * @throws DataInvalidError `(file, null, "<path>: <rule>")` on the first broken rule.
 */
export function resolveS1Config(raw: unknown, file: string): S1Config {
  const input = raw === undefined ? {} : raw;
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new DataInvalidError(file, null, 'the config must be a JSON object', {
      hint: 'see docs for the shape of metaspn.config.json',
    });
  }
  const parsed = s1ConfigSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  // Unknown keys name the nearest known one; other rules keep their plain `<path>: <rule>` form.
  const rule = issue === undefined ? 'invalid config' : issue.code === 'unrecognized_keys' ? issueRule(issue, s1ConfigSchema, input) : `${describePath(issue.path)}: ${issue.message}`;
  throw new DataInvalidError(file, null, rule.replace(/[\r\n]+/g, ' '), {
    hint: `fix ${file}, or delete the key to use its default`,
    details: { file, issues: parsed.error.issues.map((i) => `${describePath(i.path)}: ${i.message}`) },
  });
}

/**
 * First 16 hex digits of sha256 over the stable stringification of the effective
 * `{season, attention}`; it goes into every stage's `params`.
 */
export function configHash(cfg: S1Config): string {
  const text = stringify({ season: cfg.season, attention: cfg.attention });
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/** Whether `date` lies in `[season.start, season.end]` (outside it a run is BUSINESS_REJECT). */
export function isInSeason(date: string, cfg: S1Config): boolean {
  return date >= cfg.season.start && date <= cfg.season.end;
}
