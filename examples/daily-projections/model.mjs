// @ts-check
/**
 * The projection model of the example, pure: no files, no clock, no queue. pipeline.mjs wires
 * these functions into steps; keeping them apart means they can be tested (and reasoned about)
 * without running anything, and that a step's output depends on its payload alone.
 */

/** Days of box scores a partition reads: the date and the two before it. */
export const WINDOW_DAYS = 3;

/** Fantasy points: a point is 1, a rebound 1.25, an assist 1.5. */
export const SCORING = { pts: 1, reb: 1.25, ast: 1.5 };

/** League per-minute rates by position: what a player with few minutes is shrunk toward. */
export const PRIORS = {
  G: { pts: 0.5, reb: 0.13, ast: 0.2 },
  F: { pts: 0.48, reb: 0.21, ast: 0.08 },
  C: { pts: 0.46, reb: 0.31, ast: 0.08 },
};

/** A line of an input that breaks a rule: `file:line: rule`. The pipeline turns it into a ContractError. */
export class InputLineError extends Error {
  /** @param {string} file @param {number} line @param {string} rule */
  constructor(file, line, rule) {
    super(`${file}:${line}: ${rule}`);
    this.name = 'InputLineError';
  }
}

/**
 * @param {string} date YYYY-MM-DD
 * @param {number} days
 * @returns {string} the date `days` later (earlier when negative)
 */
export function addDays(date, days) {
  return new Date(Date.parse(`${date}T00:00:00Z`) + days * 86_400_000).toISOString().slice(0, 10);
}

/** @param {string} date @returns {{from: string, to: string}} the box score window of a partition */
export function windowOf(date) {
  return { from: addDays(date, -(WINDOW_DAYS - 1)), to: date };
}

/**
 * The lines of a JSONL text whose `date` is within [from, to], with their 1-based line numbers.
 * A line that is not JSON, or has no date, is kept whatever the window: it belongs to every date,
 * so that the step that validates it reports it instead of the window silently dropping it.
 * @param {string} text
 * @param {string} from
 * @param {string} to
 * @returns {{line: number, text: string}[]}
 */
export function linesWithin(text, from, to) {
  /** @type {{line: number, text: string}[]} */
  const out = [];
  for (const { line, text: raw } of eachLine(text)) {
    let date;
    try {
      date = JSON.parse(raw)?.date;
    } catch {
      date = undefined;
    }
    if (typeof date !== 'string' || (date >= from && date <= to)) out.push({ line, text: raw });
  }
  return out;
}

/**
 * Every non-blank line of a JSONL text, with its 1-based line number.
 * @param {string} text
 * @returns {{line: number, text: string}[]}
 */
export function linesOf(text) {
  return [...eachLine(text)];
}

/**
 * The non-blank lines of a text one at a time, with their 1-based line numbers: an input of
 * 500k lines is walked without an array of every line.
 * @param {string} text
 * @returns {Generator<{line: number, text: string}>}
 */
function* eachLine(text) {
  let line = 0;
  for (let at = 0; at <= text.length;) {
    const end = text.indexOf('\n', at);
    const stop = end < 0 ? text.length : end;
    line++;
    const raw = text.slice(at, stop);
    if (raw.trim() !== '') yield { line, text: raw };
    at = stop + 1;
  }
}

/**
 * @param {string} file
 * @param {{line: number, text: string}} l
 * @returns {Record<string, any>}
 */
function parseLine(file, l) {
  try {
    const v = JSON.parse(l.text);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v;
  } catch {
    throw new InputLineError(file, l.line, 'not a JSON object');
  }
}

/**
 * @param {string} file
 * @param {{line: number, text: string}} l
 * @param {Record<string, any>} v
 * @param {string} field
 * @param {number} max
 * @returns {number}
 */
function count(file, l, v, field, max) {
  const x = v[field];
  if (!Number.isInteger(x) || x < 0 || x > max) throw new InputLineError(file, l.line, `${field} must be an integer from 0 to ${max}, got ${JSON.stringify(x)}`);
  return x;
}

/**
 * The roster, checked.
 * @param {{line: number, text: string}[]} lines of inputs/players.jsonl
 * @returns {Map<string, {player: string, name: string, team: string, position: 'G'|'F'|'C', salary: number}>}
 * @throws InputLineError for a line that breaks a rule or a player listed twice
 */
export function parseRoster(lines) {
  const file = 'inputs/players.jsonl';
  const out = new Map();
  for (const l of lines) {
    const v = parseLine(file, l);
    if (typeof v.player !== 'string' || !/^p\d{2,6}$/.test(v.player)) throw new InputLineError(file, l.line, `player must look like p01, got ${JSON.stringify(v.player)}`);
    if (out.has(v.player)) throw new InputLineError(file, l.line, `player ${v.player} is listed twice`);
    if (typeof v.name !== 'string' || v.name === '') throw new InputLineError(file, l.line, 'name must be a non-empty string');
    if (typeof v.team !== 'string' || !/^[A-Z]{3}$/.test(v.team)) throw new InputLineError(file, l.line, `team must be three capital letters, got ${JSON.stringify(v.team)}`);
    if (!(v.position in PRIORS)) throw new InputLineError(file, l.line, `position must be G, F or C, got ${JSON.stringify(v.position)}`);
    if (!Number.isInteger(v.salary) || v.salary < 3000 || v.salary > 15000) throw new InputLineError(file, l.line, `salary must be an integer from 3000 to 15000, got ${JSON.stringify(v.salary)}`);
    out.set(v.player, { player: v.player, name: v.name, team: v.team, position: v.position, salary: v.salary });
  }
  return out;
}

/**
 * Box score lines, checked against the roster.
 * @param {{line: number, text: string}[]} lines of inputs/boxscores.jsonl
 * @param {Map<string, unknown>} roster
 * @returns {{date: string, player: string, minutes: number, points: number, rebounds: number, assists: number}[]}
 * @throws InputLineError for a line that breaks a rule
 */
export function parseBoxScores(lines, roster) {
  const file = 'inputs/boxscores.jsonl';
  const seen = new Set();
  return lines.map((l) => {
    const v = parseLine(file, l);
    if (typeof v.date !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(v.date)) throw new InputLineError(file, l.line, `date must be YYYY-MM-DD, got ${JSON.stringify(v.date)}`);
    if (!roster.has(v.player)) throw new InputLineError(file, l.line, `player ${JSON.stringify(v.player)} is not in inputs/players.jsonl`);
    if (seen.has(`${v.date}/${v.player}`)) throw new InputLineError(file, l.line, `player ${v.player} has a second line for ${v.date}`);
    seen.add(`${v.date}/${v.player}`);
    return {
      date: v.date,
      player: v.player,
      minutes: count(file, l, v, 'minutes', 65),
      points: count(file, l, v, 'points', 120),
      rebounds: count(file, l, v, 'rebounds', 60),
      assists: count(file, l, v, 'assists', 60),
    };
  });
}

/**
 * The injury report of a date.
 * @param {{line: number, text: string}[]} lines of inputs/status.jsonl
 * @returns {Map<string, 'out'|'questionable'|'probable'>} status by player
 * @throws InputLineError for a line that breaks a rule
 */
export function parseStatus(lines) {
  const file = 'inputs/status.jsonl';
  const out = new Map();
  for (const l of lines) {
    const v = parseLine(file, l);
    if (typeof v.player !== 'string') throw new InputLineError(file, l.line, 'player must be a string');
    if (!['out', 'questionable', 'probable'].includes(v.status)) throw new InputLineError(file, l.line, `status must be out, questionable or probable, got ${JSON.stringify(v.status)}`);
    out.set(v.player, v.status);
  }
  return out;
}

const round = (/** @type {number} */ x, /** @type {number} */ digits) => Number(x.toFixed(digits));

/** Weights of a player's games in the window, most recent first. */
const RECENCY = [3, 2, 1];

/**
 * Projected minutes for a player's next game: a recency-weighted mean of his minutes in the
 * window; 0 when he is out, three quarters when questionable. Minutes are not redistributed to
 * teammates (the `team_minutes` check catches a team left short).
 * @param {{date: string, minutes: number}[]} games in the window
 * @param {string | undefined} status
 * @returns {number} minutes, one decimal
 */
export function projectMinutes(games, status) {
  if (status === 'out' || games.length === 0) return 0;
  const recent = [...games].sort((a, b) => (a.date < b.date ? 1 : -1)).slice(0, RECENCY.length);
  const w = recent.reduce((a, _, i) => a + RECENCY[i], 0);
  const m = recent.reduce((a, g, i) => a + g.minutes * RECENCY[i], 0) / w;
  return round(status === 'questionable' ? m * 0.75 : m, 1);
}

/**
 * Per-minute rates shrunk toward the position's prior: (stat + k * prior) / (minutes + k).
 * @param {{minutes: number, points: number, rebounds: number, assists: number}[]} games
 * @param {'G'|'F'|'C'} position
 * @param {number} priorMinutes k: how many minutes of league average to blend in
 * @returns {{pts: number, reb: number, ast: number}} four decimals
 */
export function projectRates(games, position, priorMinutes) {
  const p = PRIORS[position];
  const minutes = games.reduce((a, g) => a + g.minutes, 0) + priorMinutes;
  const sum = (/** @type {'points'|'rebounds'|'assists'} */ f) => games.reduce((a, g) => a + g[f], 0);
  return {
    pts: round((sum('points') + priorMinutes * p.pts) / minutes, 4),
    reb: round((sum('rebounds') + priorMinutes * p.reb) / minutes, 4),
    ast: round((sum('assists') + priorMinutes * p.ast) / minutes, 4),
  };
}

/** FNV-1a, 32 bits: a seed from a text. @param {string} text @returns {number} */
export function seedOf(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** mulberry32: the same stream for the same seed on every machine. @param {number} seed @returns {() => number} in [0, 1) */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Knuth's method: fine for the small means of one player's game (gen-inputs.mjs draws the box scores with it too). @param {number} lambda @param {() => number} rand */
export function poisson(lambda, rand) {
  const limit = Math.exp(-lambda);
  let k = 0;
  let p = rand();
  while (p > limit) {
    k++;
    p *= rand();
  }
  return k;
}

/**
 * Simulates a player's game `worlds` times: minutes ~ normal(projected, 12%) clipped to [0, 48],
 * each stat ~ Poisson(rate x minutes). Deterministic: the random stream is seeded from `seed`
 * (the date and the player), so a retried task writes the same row.
 * @param {{minutes: number, rates: {pts: number, reb: number, ast: number}, worlds: number, seed: string}} o
 * @returns {{mean: number, p10: number, p50: number, p90: number}} fantasy points, two decimals
 */
export function simulate({ minutes, rates, worlds, seed }) {
  const rand = prng(seedOf(seed));
  /** @type {number[]} */
  const fp = [];
  for (let w = 0; w < worlds; w++) {
    // Box-Muller; 1 - rand() keeps log() away from 0.
    const z = Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
    const m = Math.min(48, Math.max(0, minutes * (1 + 0.12 * z)));
    fp.push(SCORING.pts * poisson(rates.pts * m, rand) + SCORING.reb * poisson(rates.reb * m, rand) + SCORING.ast * poisson(rates.ast * m, rand));
  }
  fp.sort((a, b) => a - b);
  const q = (/** @type {number} */ x) => /** @type {number} */ (fp[Math.min(fp.length - 1, Math.floor(x * fp.length))]);
  return { mean: round(fp.reduce((a, x) => a + x, 0) / fp.length, 2), p10: round(q(0.1), 2), p50: round(q(0.5), 2), p90: round(q(0.9), 2) };
}

/**
 * Projected ownership (percent of lineups) from value (points per $1000): shares of value^2
 * scaled so they sum to `slots` x 100, then blended with yesterday's published ownership of the
 * same player (`carry`), since the field's habits move slowly.
 * @param {{player: string, mean: number, salary: number}[]} players with a projection
 * @param {Map<string, number> | null} previous yesterday's ownership by player, null on the first day
 * @param {{slots: number, carry: number}} o
 * @returns {{player: string, ownership: number, raw: number, carried: boolean}[]} two decimals
 */
export function projectOwnership(players, previous, o) {
  const total = players.reduce((a, p) => a + ownershipWeight(p), 0);
  return players.map((p) => ownershipOf(p, total, previous?.get(p.player), o));
}

/**
 * A player's share of the field before scaling: value^2. The field's total is the sum of these in
 * key order (the order `projectOwnership` and a paged read add them in: the same float).
 * @param {{mean: number, salary: number}} p
 * @returns {number}
 */
export function ownershipWeight(p) {
  return (p.mean / (p.salary / 1000)) ** 2;
}

/**
 * One player's projected ownership, given the field's total weight and his published ownership of
 * the day before (undefined when he had none).
 * @param {{player: string, mean: number, salary: number}} p
 * @param {number} total the sum of every player's `ownershipWeight`
 * @param {number | undefined} before
 * @param {{slots: number, carry: number}} o
 * @returns {{player: string, ownership: number, raw: number, carried: boolean}} two decimals
 */
export function ownershipOf(p, total, before, { slots, carry }) {
  const raw = (slots * 100 * ownershipWeight(p)) / (total || 1);
  const own = before === undefined ? raw : (1 - carry) * raw + carry * before;
  return { player: p.player, ownership: round(own, 2), raw: round(raw, 2), carried: before !== undefined };
}

/**
 * Projected minutes per team, added to `out` (the totals of the rows before these, when they are
 * read a page at a time).
 * @param {{team: string, minutes: number}[]} rows
 * @param {Record<string, number>} [out]
 * @returns {Record<string, number>} `out`, one decimal
 */
export function teamMinutes(rows, out = {}) {
  for (const r of rows) out[r.team] = round((out[r.team] ?? 0) + r.minutes, 1);
  return out;
}
