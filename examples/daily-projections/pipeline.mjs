// @ts-check
/**
 * daily-projections: a nightly player-projection pipeline, one run per date (a UTC day).
 *
 *   ingest ──┬── minutes ──┬── sim (one task per player) ── ownership ── finalize
 *            └── rates ────┘                                 (reads the previous date's)
 *
 * ingest    the box scores of the date and the two days before it, checked against the roster
 * minutes   projected minutes of each player's next game, from ingest and the date's injury report
 * rates     per-minute rates shrunk toward position priors, from ingest (runs beside minutes)
 * sim       simulates each player's game 1000 times (seeded by date and player): fantasy points
 * ownership projected ownership from value, blended with the previous date's published ownership
 * finalize  one row per roster player: minutes, projection, percentiles, ownership, value
 *
 * Checks before publish: team_minutes (each team's projected minutes are plausible) and
 * projections_complete (every roster player has a row, someone plays, no projection is absurd).
 *
 * Planners decide the tasks (one per player for sim, one `*` task elsewhere) and pass each what
 * is its own (a player's minutes and rates); handlers read the rest through `ctx.step` (the inputs
 * the step's identity covers, upstream rows, the previous date's output), never the files, the
 * clock or Math.random. That is what lets a retried task, or a replay, write the very same rows,
 * and keeps payloads small at 100k players. The one-task steps read upstream rows a page at a
 * time (`upstreamPages`, in key order, joined by key) and hand their rows over as a generator, so
 * at 100k players no step holds every player's rows, and they yield between pages (the worker
 * renews their lease: the default one is enough). docs/PIPELINES.md walks through this file.
 */
import { createHash } from 'node:crypto';
import { ContractError, definePipeline, defineStep, defineWorker } from 'metaspn';
import {
  InputLineError,
  linesOf,
  linesWithin,
  ownershipOf,
  ownershipWeight,
  parseBoxScores,
  parseRoster,
  parseStatus,
  projectMinutes,
  projectRates,
  simulate,
  teamMinutes,
  windowOf,
} from './model.mjs';

/** @typedef {import('metaspn').PartitionContext} PartitionContext */
/** @typedef {Pick<PartitionContext, 'partition' | 'input' | 'upstream' | 'previous' | 'upstreamPages' | 'previousPages'>} Reads what planners and handlers (`ctx.step`) both read */
/** @typedef {{line: number, text: string}} Line */
/** @typedef {{date: string, minutes: number, points: number, rebounds: number, assists: number}} Game */
/** @typedef {{key: string, name: string, team: string, position: 'G'|'F'|'C', salary: number, games: Game[]}} IngestRow */
/** @typedef {{key: string, team: string, minutes: number, status: string}} MinutesRow */
/** @typedef {{key: string, pts: number, reb: number, ast: number}} RatesRow */
/** @typedef {{key: string, mean: number, p10: number, p50: number, p90: number}} SimRow */
/** @typedef {{key: string, ownership: number, raw: number, carried: boolean}} OwnershipRow */
/** @typedef {{key: string, name: string, team: string, position: string, salary: number, minutes: number, mean: number, p10: number, p50: number, p90: number, ownership: number, value: number}} FinalRow */
/** @typedef {{ingest: IngestRow, minutes: MinutesRow, rates: RatesRow, sim: SimRow, ownership: OwnershipRow, finalize: FinalRow}} Rows */

/**
 * The rows a step wrote in this run, typed (`ctx.upstreamPages` pages untyped JSON rows), one at a
 * time in key order, read a page at a time.
 * @template {keyof Rows} S
 * @param {Reads} ctx
 * @param {S} step
 * @returns {AsyncGenerator<Rows[S]>}
 */
async function* rowsOf(ctx, step) {
  for await (const page of ctx.upstreamPages(step)) yield* /** @type {any[]} */ (page);
}

/**
 * The rows of pages one at a time.
 * @param {AsyncIterable<import('metaspn').StoredRow[]>} pages
 */
async function* pagedRows(pages) {
  for await (const page of pages) yield* page;
}

/**
 * Rows of a step looked up by key, for keys asked in ascending order: a merge join over rows in
 * key order (as `upstreamPages` reads them), holding one page, not a Map of every row.
 * @template {{key: string}} R
 * @param {AsyncIterable<R>} rows in key order
 * @returns {(key: string) => Promise<R | undefined>}
 */
function lookup(rows) {
  const it = rows[Symbol.asyncIterator]();
  /** @type {R | undefined} */
  let head;
  let done = false;
  return async (key) => {
    while (!done && (head === undefined || head.key < key)) {
      const next = await it.next();
      done = next.done === true;
      head = next.done ? undefined : next.value;
    }
    return head?.key === key ? head : undefined;
  };
}

/** sha256 of the lines' texts joined by newlines, hashed line by line (no copy of them all in one string). */
function linesSha256(/** @type {Line[]} */ lines) {
  const h = createHash('sha256');
  lines.forEach((l, i) => h.update(i === 0 ? l.text : `\n${l.text}`));
  return h.digest('hex');
}

/**
 * Bad input is a contract error: retrying cannot fix it, so the task goes to the dead letters at
 * once and the run exits 20, naming the file, the line and the rule.
 * @template T
 * @param {() => T} fn
 * @returns {T}
 */
function contract(fn) {
  try {
    return fn();
  } catch (err) {
    if (err instanceof InputLineError) throw new ContractError(err.message);
    throw err;
  }
}

/** The box score lines a partition reads: its window, and nothing of the other dates. */
function boxScoreWindow(/** @type {Reads} */ ctx) {
  const { from, to } = windowOf(ctx.partition);
  return { from, to, lines: linesWithin(ctx.input('boxscores.jsonl').text, from, to) };
}

/** The injury report of the partition's date. */
function statusOfDate(/** @type {Reads} */ ctx) {
  return linesWithin(ctx.input('status.jsonl').text, ctx.partition, ctx.partition);
}

const ingest = defineStep({
  name: 'ingest',
  description: 'box scores of the date and the two days before it, checked against the roster',
  inputs: ['boxscores.jsonl', 'players.jsonl'],
  // A late line for another date must not restate this one: the identity covers the lines of the
  // window (and the whole roster), not the whole files, which is what it covers without this hook.
  digest(ctx) {
    const w = boxScoreWindow(ctx);
    return { boxscores: { from: w.from, to: w.to, lines: w.lines.length, sha256: linesSha256(w.lines) }, players: ctx.input('players.jsonl').sha256 };
  },
  // One task. Its handler reads the inputs through ctx.step: the very bytes the identity covers.
  plan: () => [{ key: '*', payload: {} }],
  worker: defineWorker({
    // A generator: its rows are stored a page at a time as it yields them.
    /** @returns {AsyncGenerator<IngestRow>} */
    async *handle(_task, ctx) {
      const roster = contract(() => parseRoster(linesOf(ctx.step.input('players.jsonl').text)));
      const games = contract(() => parseBoxScores(boxScoreWindow(ctx.step).lines, roster));
      // Each player's games, grouped in one pass (a filter per player is quadratic at 100k players).
      /** @type {Map<string, Game[]>} */
      const byPlayer = new Map();
      for (const { player, ...g } of games) {
        const list = byPlayer.get(player);
        if (list) list.push(g);
        else byPlayer.set(player, [g]);
      }
      for (const { player, ...r } of roster.values()) {
        yield { key: player, ...r, games: (byPlayer.get(player) ?? []).sort((a, b) => (a.date < b.date ? -1 : 1)) };
      }
    },
  }),
});

const minutes = defineStep({
  name: 'minutes',
  description: "projected minutes of each player's next game (0 when out)",
  after: ['ingest'],
  inputs: ['status.jsonl'],
  // Only the date's own injury report counts: a report filed for another date does not restate this one.
  digest: (ctx) => ({ status: { date: ctx.partition, sha256: linesSha256(statusOfDate(ctx)) } }),
  plan: () => [{ key: '*', payload: {} }],
  worker: defineWorker({
    /** @returns {AsyncGenerator<MinutesRow>} */
    async *handle(_task, ctx) {
      const status = contract(() => parseStatus(statusOfDate(ctx.step)));
      for await (const x of rowsOf(ctx.step, 'ingest')) yield { key: x.key, team: x.team, minutes: projectMinutes(x.games, status.get(x.key)), status: status.get(x.key) ?? 'available' };
    },
  }),
});

const RATES = { prior_minutes: 40 };

const rates = defineStep({
  name: 'rates',
  description: 'per-minute points, rebounds and assists, shrunk toward position priors',
  after: ['ingest'],
  // A model parameter: changing it gives this step (and every step after it) a new identity.
  params: RATES,
  plan: () => [{ key: '*', payload: {} }],
  worker: defineWorker({
    /** @returns {AsyncGenerator<RatesRow>} */
    async *handle(_task, ctx) {
      for await (const x of rowsOf(ctx.step, 'ingest')) yield { key: x.key, ...projectRates(x.games, x.position, RATES.prior_minutes) };
    },
  }),
});

/** @typedef {{minutes: number, rates: {pts: number, reb: number, ast: number}, worlds: number, seed: string}} SimPayload */

const SIM = { worlds: 1000 };

const sim = defineStep({
  name: 'sim',
  description: "simulates each player's game (one task per player, seeded by date and player)",
  after: ['minutes', 'rates'],
  params: SIM,
  // Fan-out: one task per player projected to play. The seed comes from the date and the player,
  // never from the clock: the same task always draws the same worlds.
  async plan(ctx) {
    const rate = lookup(rowsOf(ctx, 'rates'));
    /** @type {import('metaspn').PlannedTask<SimPayload>[]} */
    const tasks = [];
    for await (const m of rowsOf(ctx, 'minutes')) {
      if (m.minutes <= 0) continue;
      const { pts, reb, ast } = /** @type {RatesRow} */ (await rate(m.key));
      tasks.push({ key: m.key, payload: { minutes: m.minutes, rates: { pts, reb, ast }, worlds: SIM.worlds, seed: `${ctx.partition}/${m.key}` } });
    }
    return tasks;
  },
  worker: defineWorker({
    // The tasks are independent and short: many at once, so one fsync of the store and one of the
    // queue cover many of them (group commit).
    defaults: { concurrency: 64 },
    /** @param {import('metaspn').WorkerTask<SimPayload>} task @returns {SimRow[]} */
    handle(task, ctx) {
      return [{ key: ctx.step.key, ...simulate(task.payload) }];
    },
  }),
});

const OWNERSHIP = { slots: 8, carry: 0.3 };

const ownership = defineStep({
  name: 'ownership',
  description: "projected ownership from value, blended with the previous date's published ownership",
  after: ['sim'],
  // It reads the previous date's published output: its identity covers that output, and a
  // backfill runs the dates in order.
  previous: true,
  params: OWNERSHIP,
  plan: () => [{ key: '*', payload: {} }],
  worker: defineWorker({
    /** @returns {AsyncGenerator<OwnershipRow>} */
    async *handle(_task, ctx) {
      // Every simulated player with his salary, in key order: read twice, once for the field's
      // total weight (summed in key order, as projectOwnership sums it) and once for the rows.
      const field = async function* () {
        const roster = lookup(rowsOf(ctx.step, 'ingest'));
        for await (const s of rowsOf(ctx.step, 'sim')) yield { player: s.key, mean: s.mean, salary: /** @type {IngestRow} */ (await roster(s.key)).salary };
      };
      let total = 0;
      for await (const p of field()) total += ownershipWeight(p);
      const before = lookup(/** @type {AsyncIterable<OwnershipRow>} */ (pagedRows(ctx.step.previousPages('ownership'))));
      for await (const p of field()) {
        const { player, ...o } = ownershipOf(p, total, (await before(p.player))?.ownership, OWNERSHIP);
        yield { key: player, ...o };
      }
    },
  }),
});

const finalize = defineStep({
  name: 'finalize',
  description: 'one row per roster player: minutes, projection, percentiles, ownership, value',
  // Fan-in: one task over every player's simulation, and the ownership; its handler reads them
  // side by side in key order, a page of each at a time.
  after: ['sim', 'ownership'],
  plan: () => [{ key: '*', payload: {} }],
  worker: defineWorker({
    /** @returns {AsyncGenerator<FinalRow>} */
    async *handle(_task, ctx) {
      const p = { minutes: lookup(rowsOf(ctx.step, 'minutes')), sims: lookup(rowsOf(ctx.step, 'sim')), owns: lookup(rowsOf(ctx.step, 'ownership')) };
      for await (const r of rowsOf(ctx.step, 'ingest')) {
        const s = (await p.sims(r.key)) ?? { mean: 0, p10: 0, p50: 0, p90: 0 };
        yield {
          key: r.key,
          name: r.name,
          team: r.team,
          position: r.position,
          salary: r.salary,
          minutes: (await p.minutes(r.key))?.minutes ?? 0,
          mean: s.mean,
          p10: s.p10,
          p50: s.p50,
          p90: s.p90,
          ownership: (await p.owns(r.key))?.ownership ?? 0,
          value: Number((s.mean / (r.salary / 1000)).toFixed(2)),
        };
      }
    },
  }),
});

/** A team that played in the window projects 200 to 265 minutes (5 x 48 = 240, give or take). */
export const TEAM_MINUTES = { min: 200, max: 265 };
/** A projection above this many fantasy points is a data error, not a great night. */
export const MAX_PROJECTION = 80;

export default definePipeline({
  name: 'daily-projections',
  description: 'nightly player projections: minutes, rates, simulation, ownership',
  partition: 'date',
  partitions: { start: '2026-03-01' },
  steps: [ingest, minutes, rates, sim, ownership, finalize],
  checks: [
    {
      name: 'team_minutes',
      description: `every team that played in the window projects ${TEAM_MINUTES.min} to ${TEAM_MINUTES.max} minutes (minutes of players out are not redistributed)`,
      reads: ['minutes'],
      async run(ctx) {
        /** @type {Record<string, number>} */
        const totals = {};
        for await (const page of ctx.upstreamPages('minutes')) teamMinutes(/** @type {any[]} */ (page), totals);
        const off = Object.fromEntries(Object.entries(totals).filter(([, m]) => m > 0 && (m < TEAM_MINUTES.min || m > TEAM_MINUTES.max)));
        return Object.keys(off).length
          ? { status: 'fail', observed: off, expected: TEAM_MINUTES, message: `teams outside ${TEAM_MINUTES.min}-${TEAM_MINUTES.max} projected minutes: ${Object.keys(off).join(', ')}` }
          : { status: 'pass', observed: totals, expected: TEAM_MINUTES };
      },
    },
    {
      name: 'projections_complete',
      description: `every roster player has a finalized row, someone is projected to play, and no projection is above ${MAX_PROJECTION} points`,
      reads: ['ingest', 'finalize'],
      async run(ctx) {
        let [players, projected] = [0, 0];
        /** @type {string[]} */
        const high = [];
        for await (const r of rowsOf(ctx, 'finalize')) {
          players++;
          // A window without box scores (a truncated file, a date past the data) projects
          // everyone at 0: halt rather than publish that.
          if (r.mean > 0) projected++;
          if (r.mean > MAX_PROJECTION) high.push(`${r.key} ${r.mean}`);
        }
        /** @type {string[]} */
        const missing = [];
        let roster = 0;
        const final = lookup(rowsOf(ctx, 'finalize'));
        for await (const r of rowsOf(ctx, 'ingest')) {
          roster++;
          if (!(await final(r.key))) missing.push(r.key);
        }
        const observed = { players, projected, missing, above_max: high };
        const expected = { players: roster, projected: '> 0', missing: [], max_projection: MAX_PROJECTION };
        return missing.length || high.length || projected === 0 ? { status: 'fail', observed, expected } : { status: 'pass', observed, expected };
      },
    },
  ],
});
