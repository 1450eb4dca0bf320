import * as z from '../../src/zod.js';
import { MetaspnError } from '../../src/guard/errors.js';
import type { WorkerContext, WorkerDefinition, WorkerInitContext, WorkerTask } from '../../src/runtime/worker-api.js';
import type { WorkspaceConfig } from '../../src/config/load.js';
import { loadConfig } from '../../src/config/load.js';
import { PgStores } from '../../src/backend/pg/stores.js';
import type { PgSetting } from '../../src/backend/pg/setting.js';
import type { TaskEffects } from '../../src/runtime/effects.js';
import { asOfInstantMs, isDateText } from './dates.js';
import { S1Context, type DatePayload, type StageName, type StoredProjection } from './context.js';
import type { CountedParams, Params } from './ids.js';
import type { SubjectGroups } from './signal-table.js';
import {
  attentionForColumns,
  attentionRowMaker,
  type AttentionConfig,
  type Projection,
  projectionRowMaker,
  projectRewards,
  type RowIdText,
  settlementRowMaker,
  type SubjectScore,
  summaryRow,
} from './math.js';

/**
 * `check` answering again for the text it was last asked about without running: the hundred
 * thousand payloads of a stage carry one date and one as-of, each checked per task.
 */
function sameAsLast(check: (text: string) => boolean): (text: string) => boolean {
  let last: string | undefined;
  let verdict = false;
  return (text) => {
    if (text !== last) {
      verdict = check(text);
      last = text;
    }
    return verdict;
  };
}

/** A digest as ids carry it (S1-SPEC "Digests"): its first 16 hex digits. */
const DIGEST_TEXT = /^[0-9a-f]{16}$/;
const digest = z.string().regex(DIGEST_TEXT, 'must be 16 hex digits');
const datePayload = z.strictObject({
  date: z.string().refine(sameAsLast(isDateText), 'must be a YYYY-MM-DD date'),
  as_of: z.string().refine(
    sameAsLast((t) => asOfInstantMs(t) !== null),
    'must be an ISO-8601 instant',
  ),
  config_hash: digest,
  inputs: digest,
});
const countedPayload = datePayload.extend({ counted: digest });

const SUBJECT_KEYS = ['date', 'as_of', 'config_hash', 'inputs', 'subject_ref'] as const;
const isDigest = (v: unknown): boolean => typeof v === 'string' && DIGEST_TEXT.test(v);
const plainDate = sameAsLast(isDateText);
const plainAsOf = sameAsLast((t) => asOfInstantMs(t) !== null);

/**
 * A stage-1 payload as the plan writes it: a plain object of exactly the schema's five keys in
 * its order, each valid. The schema would accept it and give back an equal object.
 */
function isPlainSubjectPayload(x: unknown): x is SubjectPayload {
  if (typeof x !== 'object' || x === null || Object.getPrototypeOf(x) !== Object.prototype) return false;
  let i = 0;
  for (const k in x) if (k !== SUBJECT_KEYS[i++]) return false;
  if (i !== SUBJECT_KEYS.length) return false;
  const o = x as Record<string, unknown>;
  const { date, as_of, subject_ref } = o;
  return (
    typeof date === 'string' &&
    plainDate(date) &&
    typeof as_of === 'string' &&
    plainAsOf(as_of) &&
    isDigest(o.config_hash) &&
    isDigest(o.inputs) &&
    typeof subject_ref === 'string' &&
    subject_ref.length > 0
  );
}

/**
 * `schema` whose `safeParse` takes a payload `plain` accepts as it is, and leaves any other to the
 * schema (its verdict and messages): stage 1 checks a hundred thousand payloads of one shape, and
 * zod's parse made a copy and a result object per field of each.
 */
function plainFirst<P>(schema: z.ZodType<P>, plain: (x: unknown) => x is P): z.ZodType<P> {
  const fast = Object.create(schema) as z.ZodType<P>;
  const slow = schema.safeParse.bind(schema);
  fast.safeParse = ((data: unknown, params?: z.core.ParseContext<z.core.$ZodIssue>) => (plain(data) ? { success: true, data } : slow(data, params))) as typeof schema.safeParse;
  return fast;
}

type SubjectPayload = z.infer<typeof subjectSchema>;
const subjectSchema = datePayload.extend({ subject_ref: z.string().min(1) });
const subjectPayload = plainFirst(subjectSchema, isPlainSubjectPayload);
type CountedPayload = z.infer<typeof countedPayload>;

/**
 * The shared shell: a pure step per stage, the S1 context (stores, signals) set up once.
 * The pipeline passes its context in `env.s1`; a standalone worker builds and closes its own: on
 * the workspace's files, or on the database `env.backend` names (`worker run` on PostgreSQL),
 * where its rows commit with its tasks' acknowledgements, as the pipeline's do.
 */
abstract class S1Worker<P extends DatePayload> implements WorkerDefinition<P> {
  abstract readonly name: StageName;
  abstract readonly payload: z.ZodType<P>;
  // Pure, fast steps of ours that share one S1 context in process; a thread per slot would cost more than the step.
  readonly isolation = 'none' as const;
  protected s1: S1Context | null = null;
  private owned = false;

  init(ctx: WorkerInitContext): void {
    const shared = ctx.env.s1;
    if (shared instanceof S1Context) {
      this.s1 = shared;
      return;
    }
    const cfg = (ctx.env.config as WorkspaceConfig | undefined) ?? loadConfig(ctx.workspace);
    const pg = ctx.env.backend as PgSetting | undefined;
    this.s1 = new S1Context(ctx.workspace, cfg.s1, ctx.logger, pg ? { stores: new PgStores({ setting: pg }), atomic: true, ownsStores: true } : {});
    this.owned = true;
  }

  async close(): Promise<void> {
    if (this.owned) await this.s1?.close();
  }

  async handle(task: WorkerTask<P>, ctx: WorkerContext): Promise<void> {
    if (!this.s1) this.init(ctx);
    // A worker of its own does not see the publishes since its last task: what settlement counted may be stale.
    if (this.owned) this.s1!.pointersMoved();
    await this.run(this.s1!, task.payload, ctx.effects);
  }

  protected abstract run(s1: S1Context, p: P, effects: TaskEffects): Promise<void>;
}

/** Stage 1, one task per subject: the subject's attention score on the date. */
export class UpdateAttentionScoresWorker extends S1Worker<SubjectPayload> {
  readonly name = 'update_attention_scores';
  readonly payload = subjectPayload;
  // Tiny tasks whose cost is the store's fsync: many at once make each fsync cover many rows.
  readonly defaults = { concurrency: 256 };

  /** The row maker the last task used, with what it was made for: the next task of the stage takes it without a lookup. */
  private last: { s1: S1Context; date: string; params: Params; render: (s: SubjectScore) => RowIdText } | null = null;

  protected async run(s1: S1Context, p: SubjectPayload, effects: TaskEffects): Promise<void> {
    const params = (await s1.params(this.name, p)) as Params;
    const score = scoreOf(await s1.signals(), p, s1.cfg.attention);
    // No counted signal: nothing to score (the pipeline does not enqueue such subjects).
    if (!score) return;
    let last = this.last;
    if (last === null || last.s1 !== s1 || last.params !== params || last.date !== p.date) {
      const date = p.date;
      last = this.last = { s1, date, params, render: s1.rowMaker(this.name, date, params, () => attentionRowMaker(date, params)) };
    }
    await s1.putEach(this.name, p.date, params, [score], last.render, effects);
  }
}

/** The subject's score, or null when none of its signals counts (its signals are not held while the row is stored). */
function scoreOf(groups: SubjectGroups, p: SubjectPayload, attention: AttentionConfig): SubjectScore | null {
  const score = attentionForColumns(groups.table, groups.membersOf(p.subject_ref) ?? [], p.date, Date.parse(p.as_of), attention);
  return score ? { subject_ref: p.subject_ref, ...score } : null;
}

/** Stage 2, one task per date: the daily pool split by largest remainder. */
export class ProjectRewardsWorker extends S1Worker<DatePayload> {
  readonly name = 'project_rewards';
  readonly payload = datePayload;

  protected async run(s1: S1Context, p: DatePayload, effects: TaskEffects): Promise<void> {
    const params = (await s1.params(this.name, p)) as Params;
    const projections = projectRewards(await s1.scores(p.date, params), s1.cfg.season.daily_pool_units);
    // Each projection is rendered once, in order: its id is kept for stage 3's counted digest.
    const make = projectionRowMaker(p.date, params);
    const ids: string[] = [];
    const render = (x: Projection): RowIdText => {
      const r = make(x);
      ids.push(r.id);
      return r;
    };
    await s1.putEach(this.name, p.date, params, projections, render, effects);
    // Rows that commit with the acknowledgement are not stored yet: the next stages read them back.
    if (!s1.atomic)
      s1.remember(
        this.name,
        p.date,
        params,
        projections.map((x, i): StoredProjection => ({ subject_ref: x.subject_ref, projected_units: x.projected_units, id: ids[i]! })),
      );
  }
}

/**
 * Stage 3, one task per date: units settled so far, from the published runs of earlier dates.
 * Every worker first checks the task's identity against the workspace (S1Context.params): a task
 * whose inputs or counted runs changed since it was planned is a contract error, never a row.
 */
export class SettleSeasonWorker extends S1Worker<CountedPayload> {
  readonly name = 'settle_season';
  readonly payload = countedPayload;

  protected async run(s1: S1Context, p: CountedPayload, effects: TaskEffects): Promise<void> {
    const params = (await s1.params(this.name, p)) as CountedParams;
    const settlement = await s1.settlement(p.date, params);
    if (!settlement.conservation.ok) {
      throw new MetaspnError('STATE_CORRUPT', `settlement does not conserve units: settled ${settlement.conservation.settled_units}, projected ${settlement.conservation.projected_units}`);
    }
    await s1.putEach(this.name, p.date, params, settlement.rows, settlementRowMaker(p.date, s1.cfg.season, params), effects);
  }
}

/** Stage 4, one task per date: the date's summary row. Publishing the pointer is the pipeline's step. */
export class PublishSeasonSummaryWorker extends S1Worker<CountedPayload> {
  readonly name = 'publish_season_summary';
  readonly payload = countedPayload;

  protected async run(s1: S1Context, p: CountedPayload, effects: TaskEffects): Promise<void> {
    const params = (await s1.params(this.name, p)) as CountedParams;
    const scores = await s1.scores(p.date, params);
    const projections = await s1.projections(p.date, params);
    const settlement = await s1.settlement(p.date, params);
    await s1.put(this.name, p.date, params, [summaryRow({ date: p.date, season: s1.cfg.season, params, scores, projections, settlement })], effects);
  }
}
