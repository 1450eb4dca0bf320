import { createWriteStream, realpathSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_WEIGHTS } from '../workers/s1/config.js';
import { DAY_MS, dayStartMs, isDateText } from '../workers/s1/dates.js';

/**
 * Deterministic demo signals for Season 1. The same options always give the same lines, byte
 * for byte, on every machine: the only randomness is a seeded mulberry32.
 *
 * Shape of the data: every subject gets exactly `perSubject` signals; the file is in time order
 * (timestamps spread evenly over the days, whole seconds); each subject has a fixed
 * "popularity" that tilts its kinds toward reply/share/follow, so scores differ; about 1 line in
 * 10 carries an explicit `value` (0, 0.5, 2 or 3), the rest use the default 1.
 */

/** Options of {@link generateSignals}. */
export type GenOptions = {
  /** Number of subjects, `creator:c0001`…; integer >= 1. */
  subjects: number;
  /** Signals per subject; integer >= 1. */
  perSubject: number;
  /** First UTC date, `YYYY-MM-DD`. */
  start: string;
  /** Number of days the timestamps spread over; integer >= 1. */
  days: number;
  /** PRNG seed; integer, used modulo 2^32. */
  seed: number;
};

/** The mulberry32 PRNG: a function returning uniform numbers in [0, 1) from a 32-bit seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const EXPLICIT_VALUES = [0, 0.5, 2, 3] as const;
// Cumulative odds of view, like, reply, share, follow for an average subject.
const KIND_ODDS = [0.6, 0.8, 0.9, 0.96, 1] as const;

function checkOptions(o: GenOptions): void {
  for (const key of ['subjects', 'perSubject', 'days'] as const) {
    if (!Number.isSafeInteger(o[key]) || o[key] < 1) throw new RangeError(`${key} must be an integer >= 1, got ${o[key]}`);
  }
  if (!Number.isSafeInteger(o.seed)) throw new RangeError(`seed must be an integer, got ${o.seed}`);
  if (!isDateText(o.start)) throw new RangeError(`start must be a YYYY-MM-DD calendar date, got "${o.start}"`);
}

/**
 * Yields the lines (without newlines) one at a time, so a CLI can write a million of them without
 * holding them all. See {@link generateSignals}.
 * @throws RangeError on invalid options.
 */
export function* signalLines(o: GenOptions): Generator<string> {
  checkOptions(o);
  const rand = mulberry32(o.seed);
  const kinds = Object.keys(DEFAULT_WEIGHTS);
  const total = o.subjects * o.perSubject;
  const subjectWidth = Math.max(4, String(o.subjects).length);
  const idWidth = Math.max(6, String(total).length);
  const popularity = Array.from({ length: o.subjects }, () => rand());

  // Each subject appears exactly perSubject times; a Fisher-Yates shuffle spreads them in time.
  const owner = new Uint32Array(total);
  for (let i = 0; i < total; i++) owner[i] = i % o.subjects;
  for (let i = total - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const tmp = owner[i] ?? 0;
    owner[i] = owner[j] ?? 0;
    owner[j] = tmp;
  }

  const startMs = dayStartMs(o.start);
  const spanMs = o.days * DAY_MS;
  for (let i = 0; i < total; i++) {
    const subject = owner[i] ?? 0;
    // Slot i covers [i, i+1) of total: timestamps never go backwards.
    const ms = startMs + Math.floor(((i + rand()) * spanMs) / total / 1000) * 1000;
    const pop = popularity[subject] ?? 0;
    const u = rand();
    const kindIndex = rand() < 0.3 * pop ? 2 + Math.floor(u * 3) : KIND_ODDS.findIndex((edge) => u < edge);
    const line: Record<string, string | number> = {
      signal_id: `sig_${String(i + 1).padStart(idWidth, '0')}`,
      ts: new Date(ms).toISOString().replace('.000Z', 'Z'),
      subject_ref: `creator:c${String(subject + 1).padStart(subjectWidth, '0')}`,
      kind: kinds[kindIndex] ?? 'view',
    };
    if (rand() < 0.1) line.value = EXPLICIT_VALUES[Math.floor(rand() * EXPLICIT_VALUES.length)] ?? 1;
    yield JSON.stringify(line);
  }
}

/**
 * Deterministic signal lines valid per the S1 spec: `subjects * perSubject` lines, distinct
 * `signal_id`s (`sig_000001`…), kinds from the default weights, timestamps in
 * `[start, start + days)`.
 * @throws RangeError on invalid options.
 */
export function generateSignals(o: GenOptions): string[] {
  return [...signalLines(o)];
}

/**
 * Writes the lines to `out` (newline-terminated) in chunks, through a temporary file renamed
 * into place so a crash never leaves half a file. Returns the number of lines.
 */
export async function writeSignalsFile(out: string, o: GenOptions): Promise<number> {
  const tmp = `${out}.tmp-${process.pid}`;
  const stream = createWriteStream(tmp, { encoding: 'utf8' });
  let count = 0;
  try {
    let chunk: string[] = [];
    const flush = async (): Promise<void> => {
      if (chunk.length === 0) return;
      const ok = stream.write(`${chunk.join('\n')}\n`);
      chunk = [];
      if (!ok) await once(stream, 'drain');
    };
    for (const line of signalLines(o)) {
      chunk.push(line);
      count++;
      if (chunk.length === 10_000) await flush();
    }
    await flush();
    stream.end();
    await once(stream, 'finish');
    await rename(tmp, out);
  } catch (err) {
    stream.destroy();
    await rm(tmp, { force: true });
    throw err;
  }
  return count;
}

function intFlag(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  if (!/^-?\d+$/.test(text)) throw new RangeError(`--${name} must be an integer, got "${text}"`);
  return Number(text);
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string' },
      subjects: { type: 'string' },
      'per-subject': { type: 'string' },
      start: { type: 'string' },
      days: { type: 'string' },
      seed: { type: 'string' },
    },
    strict: true,
  });
  if (values.out === undefined) throw new RangeError('--out FILE is required');
  const options: GenOptions = {
    subjects: intFlag('subjects', values.subjects, 300),
    perSubject: intFlag('per-subject', values['per-subject'], 40),
    start: values.start ?? '2026-01-01',
    days: intFlag('days', values.days, 42),
    seed: intFlag('seed', values.seed, 1),
  };
  const t0 = performance.now();
  const count = await writeSignalsFile(values.out, options);
  process.stderr.write(`wrote ${count} lines to ${values.out} in ${Math.round(performance.now() - t0)} ms\n`);
}

const invoked = process.argv[1];
if (invoked !== undefined && import.meta.url === pathToFileURL(realpathSync(invoked)).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`gen-signals: ${err instanceof Error ? err.message : String(err)}\n`);
    process.stderr.write('usage: node dist/scripts/gen-signals.js --out FILE [--subjects 300] [--per-subject 40] [--start 2026-01-01] [--days 42] [--seed 1]\n');
    process.exitCode = 64;
  });
}
