/**
 * The pipeline plan, pure: which steps run in which order, what a step's identity covers, and the
 * ids of its tasks and rows. No I/O here: the runner feeds it what it read.
 */
import { createHash } from 'node:crypto';
import stringify from 'fast-json-stable-stringify';
import { MetaspnError, UsageError } from '../guard/errors.js';
import { asOfInstantMs, checkBackfillSpan, dayStartMs, defaultAsOf, parseDate, resolveAsOf } from './dates.js';
import { jsonProblem } from './json-value.js';
import { QUEUE_NAME } from '../queue/record.js';
import type { Json, PipelineDefinition, StepDefinition } from './types.js';

const PIPELINE_NAME = /^[a-z][a-z0-9_-]{0,63}$/;
const STEP_NAME = /^[a-z][a-z0-9_]{0,63}$/;
/** Folders under manifests/ that hold metaspn's own files (pointers, backfill summaries): no step may write its manifests there. */
const RESERVED_STEP_NAMES = new Set(['current', 'backfills']);

/** A definition that breaks a rule: names the pipeline module and the rule (exit 64). */
export class PipelineDefinitionError extends UsageError {
  constructor(pipeline: string, rule: string) {
    super(`pipeline ${pipeline}: ${rule}`);
    this.name = 'PipelineDefinitionError';
  }
}

/** The queue a step's tasks go to: its worker's `name`, else `<pipeline>-<step>`. */
export function queueOf(p: Pick<PipelineDefinition, 'name'>, s: Pick<StepDefinition<unknown>, 'name' | 'worker'>): string {
  return s.worker.name ?? `${p.name}-${s.name}`;
}

/**
 * Checks a definition and returns its steps in a topological order (a step after every step it
 * depends on; among independent steps, the declared order).
 * @throws PipelineDefinitionError (64) for a bad name, a duplicate step or check, an unknown
 *   dependency, a cycle, or a step without `plan` or `worker.handle`.
 */
export function validatePipeline(p: PipelineDefinition): StepDefinition<unknown>[] {
  const name = typeof p?.name === 'string' ? p.name : '(unnamed)';
  const fail = (rule: string): never => {
    throw new PipelineDefinitionError(name, rule);
  };
  if (!PIPELINE_NAME.test(name)) fail('name must match [a-z][a-z0-9_-]{0,63}');
  if (p.partition !== 'date') fail(`partition must be "date", got ${JSON.stringify(p.partition)}`);
  if (!Array.isArray(p.steps) || p.steps.length === 0) fail('steps must be a non-empty array');
  for (const b of ['start', 'end'] as const) {
    const v = p.partitions?.[b];
    if (v !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(v)) fail(`partitions.${b} must be YYYY-MM-DD`);
  }
  const byName = new Map<string, StepDefinition<unknown>>();
  const queues = new Map<string, string>();
  for (const s of p.steps) {
    if (!STEP_NAME.test(s?.name ?? '')) fail(`step name ${JSON.stringify(s?.name)} must match [a-z][a-z0-9_]{0,63}`);
    if (RESERVED_STEP_NAMES.has(s.name)) fail(`step name ${JSON.stringify(s.name)} is reserved (manifests/${s.name}/ holds metaspn's own files)`);
    if (byName.has(s.name)) fail(`step ${s.name} is declared twice`);
    if (typeof s.plan !== 'function') fail(`step ${s.name} has no plan(ctx) function`);
    if (typeof s.worker?.handle !== 'function') fail(`step ${s.name} has no worker.handle function`);
    const q = queueOf(p, s);
    if (!QUEUE_NAME.test(q)) fail(`step ${s.name}: queue name ${JSON.stringify(q)} must match ${QUEUE_NAME.source.slice(1, -1)}`);
    if (queues.has(q)) fail(`steps ${queues.get(q)} and ${s.name} share the queue ${q}`);
    queues.set(q, s.name);
    const badParams = s.params === undefined ? null : jsonProblem(s.params, 'params');
    if (badParams) fail(`step ${s.name}: params must be JSON: ${badParams}`);
    for (const f of s.inputs ?? []) {
      if (typeof f !== 'string' || f === '' || f.split(/[\\/]/).some((part) => part === '..' || part === '') || f.startsWith('/')) {
        fail(`step ${s.name}: input ${JSON.stringify(f)} must be a relative path under inputs/ without ..`);
      }
    }
    byName.set(s.name, s);
  }
  for (const s of p.steps) for (const d of s.after ?? []) if (!byName.has(d)) fail(`step ${s.name} depends on unknown step ${d}`);
  const checks = new Set<string>();
  for (const c of p.checks ?? []) {
    if (!/^[a-z][a-z0-9_]{0,63}$/.test(c?.name ?? '')) fail(`check name ${JSON.stringify(c?.name)} must match [a-z][a-z0-9_]{0,63}`);
    if (checks.has(c.name)) fail(`check ${c.name} is declared twice`);
    if (typeof c.run !== 'function') fail(`check ${c.name} has no run(ctx) function`);
    for (const r of c.reads ?? []) if (!byName.has(r)) fail(`check ${c.name} reads unknown step ${r}`);
    checks.add(c.name);
  }
  // Kahn's algorithm, taking the first ready step in declared order: deterministic.
  const order: StepDefinition<unknown>[] = [];
  const done = new Set<string>();
  while (order.length < p.steps.length) {
    const next = p.steps.find((s) => !done.has(s.name) && (s.after ?? []).every((d) => done.has(d)));
    if (!next)
      fail(
        `steps ${p.steps
          .filter((s) => !done.has(s.name))
          .map((s) => s.name)
          .join(', ')} form a cycle`,
      );
    order.push(next!);
    done.add(next!.name);
  }
  return order;
}

/** Every step that `step` reads from, directly or not. */
export function ancestors(p: PipelineDefinition, step: string): Set<string> {
  const byName = new Map(p.steps.map((s) => [s.name, s]));
  const out = new Set<string>();
  const walk = (n: string): void => {
    for (const d of byName.get(n)?.after ?? []) {
      if (!out.has(d)) {
        out.add(d);
        walk(d);
      }
    }
  };
  walk(step);
  return out;
}

/** Whether any step of the pipeline reads the previous partition's published output. */
export function dependsOnPrevious(p: PipelineDefinition): boolean {
  return p.steps.some((s) => s.previous === true);
}

function sha(text: string, hex: number): string {
  return createHash('sha256').update(text).digest('hex').slice(0, hex);
}

/** What a step's identity covers. */
export interface IdentityMaterial {
  pipeline: string;
  step: string;
  partition: string;
  as_of: string;
  params: Json;
  /** The step's input digests: `digest(ctx)` when it has one, else {name: sha256} of each declared input. */
  inputs: Json;
  /** Identity of each upstream step in this run, by name. */
  upstream: Record<string, string>;
  /**
   * With `previous: true`: the identity of the run published as current for the previous
   * partition (its pointer's `summary_id`), or null. Not its run id: a replay of that partition
   * publishes the same identity under a new run id, and must not restate this one.
   */
  previous: string | null;
}

/**
 * A step's identity: the first 16 hex digits of sha256 over the stable stringification of
 * everything its output depends on. Same inputs, same identity (a replay writes nothing); any
 * change gives a new identity, so new task and row ids beside the old ones.
 */
export function stepIdentity(m: IdentityMaterial): string {
  return sha(stringify(m), 16);
}

/** A step task's id: `task_` + 24 hex digits over {pipeline, step, partition, key, identity}. */
export function taskId(pipeline: string, step: string, partition: string, key: string, identity: string): string {
  return `task_${sha(stringify({ pipeline, step, partition, key, identity }), 24)}`;
}

/** A stored row's id: `row_` + 24 hex digits over {pipeline, step, partition, key, identity}. */
export function rowId(pipeline: string, step: string, partition: string, key: string, identity: string): string {
  return `row_${sha(stringify({ pipeline, step, partition, key, identity }), 24)}`;
}

/**
 * The identity of a whole run of a partition (what its current pointer names): over the steps'
 * identities. Two runs with the same identity wrote the same rows.
 */
export function runIdentity(steps: Record<string, string>): string {
  return sha(stringify(steps), 16);
}

/** A partition and the instant it is read as of. */
export interface PartitionPlan {
  partition: string;
  as_of: string;
  /** The partition was not over at `now`: run with an explicit, earlier `--as-of`. */
  provisional: boolean;
}

/**
 * Checks a partition against the pipeline's bounds and the clock.
 * - A partition not over yet (its default as-of, the next midnight UTC, later than `nowMs`) is
 *   refused with exit 10 unless `--as-of` names an instant not later than `nowMs`; such a run is
 *   provisional.
 * - An `--as-of` later than `nowMs` is refused with exit 10: the data it names cannot exist yet.
 * @throws UsageError (64) for a malformed date or as-of, or an as-of after the default;
 *   MetaspnError BUSINESS_REJECT (10) outside the bounds or not over yet.
 */
export function planPartition(p: Pick<PipelineDefinition, 'name' | 'partitions'>, dateText: string, asOfText: string | undefined, nowMs: number, flag = '--date'): PartitionPlan {
  const partition = parseDate(dateText, flag);
  // An --as-of later than the clock names data that cannot exist yet: 10, before any other rule about it.
  const given = asOfText === undefined ? null : asOfInstantMs(asOfText);
  if (given !== null && given > nowMs) {
    throw new MetaspnError('BUSINESS_REJECT', `--as-of ${new Date(given).toISOString()} is later than the clock (${new Date(nowMs).toISOString()}); nothing was run`, {
      hint: 'give an --as-of not later than now',
    });
  }
  const as_of = resolveAsOf(partition, asOfText);
  const { start, end } = p.partitions ?? {};
  if ((start !== undefined && partition < start) || (end !== undefined && partition > end)) {
    throw new MetaspnError('BUSINESS_REJECT', `${flag} ${partition} is outside pipeline ${p.name}'s partitions (${start ?? 'any'} to ${end ?? 'any'}); nothing to do`, {
      hint: 'pick a partition inside the bounds',
    });
  }
  const asOfMs = asOfInstantMs(as_of)!;
  if (asOfMs > nowMs) {
    const open = Date.parse(defaultAsOf(partition)) > nowMs;
    throw new MetaspnError(
      'BUSINESS_REJECT',
      asOfText === undefined
        ? `${flag} ${partition} is not over yet (it ends ${defaultAsOf(partition)}); nothing was run`
        : `--as-of ${as_of} is later than the clock (${new Date(nowMs).toISOString()}); nothing was run`,
      { hint: open ? 'run it once it is over, or give --as-of an instant not later than now for a provisional run' : 'give an --as-of not later than now' },
    );
  }
  return { partition, as_of, provisional: Date.parse(defaultAsOf(partition)) > nowMs };
}

/** Partitions of a backfill, each checked as `planPartition` does. @throws as planPartition; UsageError when start > end. */
export function planRange(p: Pick<PipelineDefinition, 'name' | 'partitions'>, startText: string, endText: string, nowMs: number): PartitionPlan[] {
  const start = parseDate(startText, '--start');
  const end = parseDate(endText, '--end');
  if (start > end) throw new UsageError(`--start ${start} is after --end ${end}`);
  // A backfill has no --as-of: a range reaching a date not over yet is refused as a whole, naming
  // the range's own end and the last date that is over.
  if (Date.parse(defaultAsOf(end)) > nowMs) {
    const lastOver = new Date(dayStartMs(new Date(nowMs).toISOString().slice(0, 10)) - 86_400_000).toISOString().slice(0, 10);
    throw new MetaspnError('BUSINESS_REJECT', `--end ${end} is not over yet (the last date that is over is ${lastOver}); nothing was run`, {
      hint:
        start <= lastOver
          ? `end the range at ${lastOver}; a date not over yet runs alone, provisionally: pipeline run --date D --as-of T`
          : 'a date not over yet runs alone, provisionally: pipeline run --date D --as-of T',
    });
  }
  checkBackfillSpan(start, end);
  const out: PartitionPlan[] = [];
  for (let ms = dayStartMs(start); ms <= dayStartMs(end); ms += 86_400_000) {
    const d = new Date(ms).toISOString().slice(0, 10);
    out.push(planPartition(p, d, undefined, nowMs, d === start ? '--start' : '--end'));
  }
  return out;
}
