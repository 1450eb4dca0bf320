#!/usr/bin/env node
/**
 * Writes the example's inputs/ (deterministic: the same files every time). Not part of the
 * pipeline: it only made the data, and re-makes it if you want more days or players.
 *
 *   node gen-inputs.mjs [--days 7] [--start 2026-03-01]
 *
 * inputs/players.jsonl    the roster: 5 teams of 8 players, each with a salary
 * inputs/boxscores.jsonl  one line per player per game: minutes and counting stats
 * inputs/status.jsonl     the injury report: a player's status for his next game, by date
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
// The model's seeded PRNG: the data is the same on every machine.
import { poisson, prng } from './model.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const DAYS = Number(arg('--days', '7'));
const START = arg('--start', '2026-03-01');

const rand = prng(20260301);
const draw = (/** @type {number} */ lambda) => poisson(lambda, rand);

const TEAMS = ['HBR', 'MSA', 'RVR', 'SUM', 'VLY'];
const FIRST = ['Avery', 'Blake', 'Cruz', 'Dante', 'Eli', 'Flynn', 'Gray', 'Hayes', 'Idris', 'Jalen', 'Kai', 'Lorne', 'Marek', 'Nico', 'Orin', 'Pax', 'Quinn', 'Rhys', 'Silas', 'Tate'];
const LAST = [
  'Abbot',
  'Brandt',
  'Calloway',
  'Dunmore',
  'Ellery',
  'Fairley',
  'Gaskin',
  'Holloway',
  'Ingram',
  'Jessup',
  'Kendrick',
  'Lattimore',
  'Marlow',
  'Norcross',
  'Okafor',
  'Pruitt',
  'Quarles',
  'Rowan',
  'Stroud',
  'Thorne',
];
const POSITIONS = ['G', 'G', 'F', 'F', 'C', 'G', 'F', 'C'];
/** Minutes of each rotation slot: a team plays 240 (5 x 48). */
const SLOT_MINUTES = [36, 34, 32, 30, 28, 28, 26, 26];

const players = [];
TEAMS.forEach((team, t) => {
  for (let s = 0; s < 8; s++) {
    const n = t * 8 + s;
    const id = `p${String(n + 1).padStart(2, '0')}`;
    const pos = POSITIONS[s];
    // Per-minute rates: guards score and pass, centers rebound.
    const pts = 0.38 + rand() * 0.32 - s * 0.012;
    const reb = pos === 'C' ? 0.26 + rand() * 0.1 : pos === 'F' ? 0.17 + rand() * 0.08 : 0.1 + rand() * 0.06;
    const ast = pos === 'G' ? 0.15 + rand() * 0.1 : 0.05 + rand() * 0.06;
    const fp = (pts + 1.25 * reb + 1.5 * ast) * SLOT_MINUTES[s];
    const salary = Math.round((3000 + fp * 130) / 100) * 100;
    players.push({ player: id, name: `${FIRST[n % 20]} ${LAST[(n * 7) % 20]}`, team, position: pos, salary, slot: s, rates: { pts, reb, ast } });
  }
});

const dates = Array.from({ length: DAYS }, (_, i) => new Date(Date.parse(`${START}T00:00:00Z`) + i * 86_400_000).toISOString().slice(0, 10));
// Injuries: p07 is out from the fourth day on (his minutes go to his teammates); p22 is questionable on the third day.
const out = (p, day) => p.player === 'p07' && day >= 4;
const status = [];
dates.forEach((date, day) => {
  if (day >= 3) status.push({ date, player: 'p07', status: 'out', note: 'ankle' });
  if (day === 2) status.push({ date, player: 'p22', status: 'questionable', note: 'illness' });
});

const box = [];
dates.forEach((date, day) => {
  TEAMS.forEach((team, t) => {
    // Each team plays two days out of three, so every three-day window holds its games.
    if ((day + t) % 3 === 0) return;
    const roster = players.filter((p) => p.team === team && !out(p, day));
    const missing = 240 - roster.reduce((a, p) => a + SLOT_MINUTES[p.slot], 0);
    const minutes = roster.map((p) => Math.round(SLOT_MINUTES[p.slot] + missing / roster.length + (rand() - 0.5) * 8));
    // Keep the team's total at exactly 240 minutes.
    minutes[0] += 240 - minutes.reduce((a, m) => a + m, 0);
    roster.forEach((p, i) => {
      const m = minutes[i];
      box.push({ date, player: p.player, team, minutes: m, points: draw(p.rates.pts * m), rebounds: draw(p.rates.reb * m), assists: draw(p.rates.ast * m) });
    });
  });
});

const dir = join(dirname(fileURLToPath(import.meta.url)), 'inputs');
mkdirSync(dir, { recursive: true });
const jsonl = (rows) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
writeFileSync(join(dir, 'players.jsonl'), jsonl(players.map(({ player, name, team, position, salary }) => ({ player, name, team, position, salary }))));
writeFileSync(join(dir, 'boxscores.jsonl'), jsonl(box));
writeFileSync(join(dir, 'status.jsonl'), jsonl(status));
process.stdout.write(`${players.length} players, ${box.length} box score lines, ${status.length} status lines over ${dates[0]}..${dates[dates.length - 1]}\n`);
