import * as z from '../zod.js';

/**
 * Every number metaspn takes from outside (flags, metaspn.config.json, METASPN_* variables, task
 * files, inputs) has one range, here. The CLI's option parsers and the zod config schemas read
 * this table; docs/LIMITS.md prints it. A value outside its range is refused where it comes in:
 * exit 64 for a flag, exit 20 for a file or a variable, naming the key and the range. Inside the
 * ranges, the arithmetic done on them stays finite and exact (timers are chunked, see
 * src/runtime/timers.ts).
 */
export interface Limit {
  /** Smallest value allowed (see `minExclusive`). */
  min: number;
  /** Largest value allowed. */
  max: number;
  /** The value must be greater than `min`, not equal to it. */
  minExclusive?: boolean;
  /** Whole numbers only. */
  integer: boolean;
  /** Unit of the value: ms, s, minutes, days, MiB, bytes, characters, a count… */
  unit: string;
  /** `max` in words, when the unit makes it hard to read (`30 days`). */
  maxText?: string;
  /** Where the value is set: flags, config keys, environment variables, fields. */
  where: readonly string[];
  /** One line: what it bounds. */
  what: string;
}

const DAY_MS = 86_400_000;

const q = (key: string, l: Omit<Limit, 'where'>, flags: readonly string[] = []): Limit => ({
  ...l,
  where: [...flags, `queues.<worker>.${key}`, `METASPN_QUEUE_${key.toUpperCase()}`],
});

export const LIMITS = {
  // Queue policy: queues.defaults / queues.<worker> in the config, METASPN_QUEUE_<KEY>, some flags.
  max_attempts: {
    ...q('max_attempts', { min: 1, max: 1000, integer: true, unit: 'tries', what: 'tries before the dead letters' }),
    where: ['queues.<worker>.max_attempts', 'METASPN_QUEUE_MAX_ATTEMPTS', 'task field max_attempts'],
  },
  backoff_base_ms: q('backoff_base_ms', { min: 0, max: 30 * DAY_MS, integer: true, unit: 'ms', maxText: '30 days', what: 'first retry delay' }),
  backoff_cap_ms: q('backoff_cap_ms', { min: 0, max: 30 * DAY_MS, integer: true, unit: 'ms', maxText: '30 days', what: 'largest retry delay' }),
  backoff_jitter: q('backoff_jitter', { min: 0, max: 1, integer: false, unit: 'fraction', what: 'retry delay spread (0.1 = ±10%)' }),
  lease_ms: q('lease_ms', { min: 100, max: DAY_MS, integer: true, unit: 'ms', maxText: '1 day', what: 'lease of a claimed task' }),
  timeout_ms: q('timeout_ms', { min: 1, max: 7 * DAY_MS, integer: true, unit: 'ms', maxText: '7 days', what: 'a task running longer is aborted' }),
  ack_window_ms: q('ack_window_ms', { min: 0, max: 1000, integer: true, unit: 'ms', what: 'group-commit window of acknowledgements' }),
  start_ahead: q('start_ahead', { min: 0, max: 4096, integer: true, unit: 'tasks', what: 'PostgreSQL: prefetched tasks marked started ahead of their turn (0: each before its handler)' }),
  concurrency: q('concurrency', { min: 1, max: 1024, integer: true, unit: 'tasks', what: 'tasks run at once by one worker' }, ['--concurrency']),
  poll_ms: q('poll_ms', { min: 1, max: DAY_MS, integer: true, unit: 'ms', maxText: '1 day', what: 'idle poll interval of `worker run`' }, ['--poll-ms']),
  max_queue_size: q('max_queue_size', { min: 0, max: 1_000_000_000, integer: true, unit: 'tasks', what: 'open tasks before enqueue is refused (0: no limit)' }),
  max_concurrent_tasks: q('max_concurrent_tasks', { min: 0, max: 1024, integer: true, unit: 'tasks', what: 'cap on --concurrency (0: no cap)' }),
  stop_failure_ratio: q('stop_failure_ratio', { min: 0, max: 1, integer: false, unit: 'fraction', what: 'failure share that pauses the queue (0: off)' }),
  stop_window: q('stop_window', { min: 1, max: 100_000, integer: true, unit: 'tasks', what: 'tasks the stop condition looks back over' }),

  // Flags of single commands.
  max_tasks: { min: 1, max: 1_000_000_000, integer: true, unit: 'tasks', where: ['--max-tasks'], what: '`worker run`: claim at most this many tasks' },
  max_parallel: { min: 1, max: 64, integer: true, unit: 'dates', where: ['--max-parallel'], what: '`s1 backfill`: dates run at once' },
  backfill_partitions: { min: 1, max: 3660, integer: true, unit: 'dates', maxText: '10 years', where: ['--start … --end'], what: '`s1 backfill`, `pipeline backfill`: dates one backfill covers' },
  rollback_steps: { min: 1, max: 1_000_000, integer: true, unit: 'publishes', where: ['--steps'], what: '`s1 rollback`: publishes to undo' },
  lock_wait_sec: { min: 0, max: 86_400, integer: true, unit: 's', maxText: '1 day', where: ['--lock-wait-sec'], what: 'wait for a held run lock' },
  lock_ttl_sec: { min: 1, max: 604_800, integer: true, unit: 's', maxText: '7 days', where: ['--lock-ttl-sec'], what: 'age after which a run lock may be taken over' },
  port: { min: 1, max: 65_535, integer: true, unit: 'port', where: ['--port'], what: '`serve`: TCP port' },
  min_free_mb: { min: 1, max: 16_777_216, integer: true, unit: 'MiB', maxText: '16 TiB', where: ['--min-free-mb'], what: '`serve`: readiness fails below this free disk' },
  alert_interval_sec: { min: 0, max: 86_400, integer: true, unit: 's', maxText: '1 day', where: ['--alert-interval-sec'], what: '`serve`: alert check interval (0: never)' },
  body_limit_mb: { min: 1, max: 256, integer: true, unit: 'MiB', where: ['--body-limit-mb'], what: '`serve`: largest task submission body' },
  request_timeout_sec: { min: 1, max: 3600, integer: true, unit: 's', maxText: '1 hour', where: ['--request-timeout-sec'], what: '`serve`: a request must arrive within this' },
  headers_timeout_sec: { min: 1, max: 3600, integer: true, unit: 's', maxText: '1 hour', where: ['--headers-timeout-sec'], what: '`serve`: request headers must arrive within this' },
  verify_timeout_ms: { min: 1, max: 600_000, integer: true, unit: 'ms', maxText: '10 min', where: ['--timeout-ms'], what: '`verify`: per request' },
  weekly_min_runs: { min: 0, max: 100_000, integer: true, unit: 'runs', where: ['--min-runs', 'reports.weekly_min_runs'], what: 'runs a weekly report needs' },
  weekly_min_tasks: { min: 0, max: 1_000_000_000, integer: true, unit: 'tasks', where: ['--min-tasks', 'reports.weekly_min_tasks'], what: 'completed tasks a weekly report needs' },
  baseline_runs: { min: 1, max: 100_000, integer: true, unit: 'runs', where: ['--runs', 'reports.baseline_runs'], what: '`baseline capture`: latest runs averaged' },

  // The `alerts` section and its variables.
  'alerts.oldest_ready_max_minutes': {
    min: 0,
    minExclusive: true,
    max: 525_600,
    integer: false,
    unit: 'minutes',
    maxText: '1 year',
    where: ['alerts.oldest_ready_max_minutes'],
    what: 'age of the oldest ready task that opens an alert',
  },
  'alerts.failure_ratio_max': { min: 0, minExclusive: true, max: 1, integer: false, unit: 'fraction', where: ['alerts.failure_ratio_max'], what: 'failure ratio that opens an alert' },
  'alerts.failure_window_minutes': {
    min: 0,
    minExclusive: true,
    max: 10_080,
    integer: false,
    unit: 'minutes',
    maxText: '7 days',
    where: ['alerts.failure_window_minutes'],
    what: 'window of the failure ratio',
  },
  'alerts.failure_min_attempts': { min: 1, max: 1_000_000, integer: true, unit: 'attempts', where: ['alerts.failure_min_attempts'], what: 'attempts before the failure ratio counts' },
  'alerts.cooldown_minutes': {
    min: 0,
    max: 525_600,
    integer: false,
    unit: 'minutes',
    maxText: '1 year',
    where: ['alerts.cooldown_minutes', 'METASPN_ALERT_COOLDOWN_MINUTES'],
    what: 'an open alert is sent again after this',
  },
  alert_timeout_ms: { min: 1, max: 600_000, integer: true, unit: 'ms', maxText: '10 min', where: ['METASPN_ALERT_TIMEOUT_MS'], what: 'one webhook delivery' },
  signature_tolerance_sec: {
    min: 0,
    minExclusive: true,
    max: 86_400,
    integer: false,
    unit: 's',
    maxText: '1 day',
    where: ['METASPN_SIGNATURE_TOLERANCE_SEC'],
    what: 'accepted clock skew of a signature',
  },

  // The `guardrails` section.
  'guardrails.total_score_ratio.max_ratio': {
    min: 1,
    minExclusive: true,
    max: 1_000_000,
    integer: false,
    unit: 'ratio',
    where: ['guardrails.total_score_ratio.max_ratio'],
    what: 'total_score against the recent mean',
  },
  'guardrails.subjects_scored_drop.max_drop': {
    min: 0,
    minExclusive: true,
    max: 1,
    integer: false,
    unit: 'fraction',
    where: ['guardrails.subjects_scored_drop.max_drop'],
    what: 'drop of subjects_scored that halts',
  },
  'guardrails.window': {
    min: 1,
    max: 1000,
    integer: true,
    unit: 'dates',
    where: ['guardrails.total_score_ratio.window', 'guardrails.subjects_scored_drop.window'],
    what: 'published dates a guardrail compares with',
  },
  'guardrails.min_history': {
    min: 1,
    max: 1000,
    integer: true,
    unit: 'dates',
    where: ['guardrails.total_score_ratio.min_history', 'guardrails.subjects_scored_drop.min_history'],
    what: 'published dates before a guardrail applies',
  },

  // The PostgreSQL backend (src/backend/pg/setting.ts).
  pool_max: { min: 1, max: 64, integer: true, unit: 'connections', where: ['backend.pool_max'], what: 'PostgreSQL: connections one process opens at most' },

  // The Season 1 sections (workers/s1/config.ts).
  'season.daily_pool_units': { min: 0, max: Number.MAX_SAFE_INTEGER, integer: true, unit: 'units', maxText: '2^53-1', where: ['season.daily_pool_units'], what: 'units split per date' },
  'attention.half_life_days': { min: 0, minExclusive: true, max: 36_500, integer: false, unit: 'days', maxText: '100 years', where: ['attention.half_life_days'], what: 'decay half-life' },
  'attention.window_days': { min: 1, max: 3660, integer: true, unit: 'days', maxText: '10 years', where: ['attention.window_days'], what: 'days of signals a score sums' },
  'attention.weight': { min: 0, max: 1_000_000, integer: false, unit: 'weight', where: ['attention.weights.<kind>'], what: 'weight of a signal kind' },
  /**
   * Rule "weighted sum overflows" of the signals reader: the sum of `weight × value` over the file
   * bounds every score and total. S1-SPEC multiplies a score by 1e6 (round6) and by
   * daily_pool_units (< 2^53, "multiply first") before dividing: both products must stay finite.
   */
  signal_weighted_sum: { min: 0, max: 1e290, integer: false, unit: 'weight × value', where: ['inputs/s1_signals.jsonl value'], what: 'sum of weight × value over the signals file' },

  // Every reader of outside data: task files and --payload, signals, the config file.
  json_depth: { min: 0, max: 64, integer: true, unit: 'levels', where: ['task lines, --payload, signal lines, metaspn.config.json'], what: 'nesting of arrays and objects' },
  json_line_chars: { min: 0, max: 2_097_152, integer: true, unit: 'characters', maxText: '2 Mi', where: ['task file lines, signal lines'], what: 'length of one JSONL line' },
  payload_bytes: { min: 0, max: 1_048_576, integer: true, unit: 'bytes', maxText: '1 MiB', where: ['task payload (--payload, task lines)'], what: 'one payload as JSON text' },
  task_file_bytes: { min: 0, max: 268_435_456, integer: true, unit: 'bytes', maxText: '256 MiB', where: ['queue enqueue --file'], what: 'size of one task file (split bigger ones)' },
  config_bytes: { min: 0, max: 1_048_576, integer: true, unit: 'bytes', maxText: '1 MiB', where: ['metaspn.config.json'], what: 'size of the config file' },
  json_integer: {
    min: -Number.MAX_SAFE_INTEGER,
    max: Number.MAX_SAFE_INTEGER,
    integer: true,
    unit: 'integer',
    maxText: '2^53-1',
    where: ['every JSON number written without fraction or exponent'],
    what: 'integer literals beyond it are refused unless they read back as themselves',
  },
} as const satisfies Record<string, Limit>;

export type LimitKey = keyof typeof LIMITS;

/** `from 1 to 86400000 ms (1 day)`, `above 0 up to 1`. */
export function rangeText(key: LimitKey): string {
  const l: Limit = LIMITS[key];
  const num = (n: number): string => String(n).replace('e+', 'e');
  const unit = ['fraction', 'ratio', 'weight', 'integer', 'port', 'weight × value'].includes(l.unit) ? '' : ` ${l.unit}`;
  const words = l.maxText ? ` (${l.maxText})` : '';
  const kind = l.integer ? 'a whole number' : 'a number';
  return l.minExclusive ? `${kind} above ${num(l.min)} and up to ${num(l.max)}${unit}${words}` : `${kind} from ${num(l.min)} to ${num(l.max)}${unit}${words}`;
}

/** null when `v` is in the range of `key`, else the rule it breaks: `must be a whole number from 1 to 1000 tries`. */
export function checkLimit(key: LimitKey, v: unknown): string | null {
  const l: Limit = LIMITS[key];
  const ok = typeof v === 'number' && Number.isFinite(v) && (!l.integer || Number.isInteger(v)) && (l.minExclusive ? v > l.min : v >= l.min) && v <= l.max;
  return ok ? null : `must be ${rangeText(key)}`;
}

/**
 * The number a METASPN_* variable holds: decimal text (a sign, digits, a fraction, an exponent;
 * spaces around it), else NaN, which no range holds. `Number()` alone would read `0x10` as 16,
 * `0b11` as 3 and a blank value as 0.
 */
export function envNumber(text: string): number {
  return /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/.test(text) ? Number(text) : Number.NaN;
}

/** A zod number schema of one limit; its message names the range. */
export function limitSchema(key: LimitKey): z.ZodNumber {
  const l: Limit = LIMITS[key];
  const error = `must be ${rangeText(key)}`;
  let s = z.number({ error });
  if (l.integer) s = s.int({ error });
  s = l.minExclusive ? s.gt(l.min, { error }) : s.min(l.min, { error });
  return s.max(l.max, { error });
}

/** The limit a command-line flag is checked against (`--poll-ms` → poll_ms). */
export function limitOfFlag(flag: string): LimitKey | undefined {
  for (const [key, l] of Object.entries(LIMITS) as [LimitKey, Limit][]) if (l.where.includes(flag)) return key;
  return undefined;
}

/** The limit of a config path such as `alerts.cooldown_minutes` or `guardrails.total_score_ratio.window`. */
export function limitOfConfigPath(path: string): LimitKey | undefined {
  const generic = path.replace(/^queues\.[^.]+\./, 'queues.<worker>.').replace(/^attention\.weights\.[^.]+$/, 'attention.weights.<kind>');
  for (const [key, l] of Object.entries(LIMITS) as [LimitKey, Limit][]) if (l.where.includes(generic)) return key;
  return undefined;
}
