// Fuzz suite (promise 6): malformed inputs give one exit code and one clear message, never a crash
// or a stack trace. Signal files are fuzzed in-process through parseSignalText (the CLI reads them
// with the same collector) with an exact oracle: valid lines are built valid, each bad line is
// built bad for a known reason, so the error must name exactly the first bad line.
import fc from 'fast-check';
import { DataInvalidError } from '../src/guard/errors.js';
import { DEFAULT_WEIGHTS } from '../workers/s1/config.js';
import { parseSignalText } from '../workers/s1/signals.js';

export const KINDS: ReadonlySet<string> = new Set(Object.keys(DEFAULT_WEIGHTS));
const FILE = '/ws/inputs/s1_signals.jsonl';

/** One line of a generated file: its text, and whether the parser must accept it. */
export interface GenLine {
  text: string;
  ok: boolean;
  /** Why a bad line is bad (for the figures). */
  why: string;
}

const kind = fc.constantFrom(...KINDS);
const ts = fc.record({ d: fc.integer({ min: 0, max: 89 }), s: fc.integer({ min: 0, max: 86_399 }), ms: fc.option(fc.integer({ min: 0, max: 999 }), { nil: undefined }) }).map(({ d, s, ms }) => {
  const iso = new Date(Date.UTC(2026, 0, 1) + d * 86_400_000 + s * 1000 + (ms ?? 0)).toISOString();
  return ms === undefined ? iso.replace('.000Z', 'Z') : iso;
});
/** Subjects: short, unicode (astral planes, RTL, combining marks), or very long (to 1 MB). */
const subject = fc.oneof(
  { weight: 6, arbitrary: fc.string({ minLength: 1, maxLength: 12 }).filter((x) => x.length > 0) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }) },
  { weight: 1, arbitrary: fc.constantFrom('creator:ñandú', 'creator:日本語', 'creator:😀🚀', 'creator:\u202eevil', 'e\u0301\u0301', '\u0000nul') },
  { weight: 1, arbitrary: fc.integer({ min: 1_000, max: 1 << 20 }).map((n) => `creator:${'x'.repeat(n)}`) },
);
/** Values that must be accepted: absent, zero, fractions, huge but finite. */
const goodValue = fc.oneof(fc.constant(undefined), fc.constant(0), fc.double({ min: 0, max: 1e6, noNaN: true }), fc.constant(Number.MAX_VALUE), fc.constant(1e308));

interface Fields {
  signal_id: unknown;
  ts: unknown;
  subject_ref: unknown;
  kind: unknown;
  value?: unknown;
  [extra: string]: unknown;
}

const goodFields = (id: string): fc.Arbitrary<Fields> =>
  fc
    .record({ ts, subject_ref: subject, kind, value: goodValue, extra: fc.option(fc.dictionary(fc.constantFrom('source', 'note', 'meta'), fc.jsonValue({ maxDepth: 1 })), { nil: undefined }) })
    .map((r) => {
      const f: Fields = { signal_id: id, ts: r.ts, subject_ref: r.subject_ref, kind: r.kind };
      if (r.value !== undefined) f.value = r.value;
      if (r.extra) Object.assign(f, r.extra);
      return f;
    });

/** A bad line, built bad for a known reason (text rewrites happen after JSON.stringify). */
const badLine = (id: string): fc.Arbitrary<GenLine> =>
  goodFields(id).chain((f) =>
    fc.oneof(
      fc.integer({ min: 1, max: 60 }).map((cut) => ({ text: JSON.stringify(f).slice(0, -Math.min(cut, JSON.stringify(f).length - 1)), ok: false, why: 'broken JSON (cut)' })),
      fc
        .string({ minLength: 1, maxLength: 30 })
        .filter((g) => !isJson(g) && g.trim() !== '' && !g.includes('\n'))
        .map((g) => ({ text: g, ok: false, why: 'broken JSON (garbage)' })),
      fc.constantFrom('[1,2]', '"text"', '42', 'null', 'true', '{}').map((t) => ({ text: t, ok: false, why: 'not an object' })),
      fc
        .constantFrom('signal_id', 'ts', 'subject_ref', 'kind')
        .chain((k) => fc.constantFrom<unknown>(1, null, true, [], {}, '').map((v) => ({ text: JSON.stringify({ ...f, [k]: v }), ok: false, why: `wrong type: ${k}` }))),
      fc.constantFrom<unknown>('1', true, null, [], {}).map((v) => ({ text: JSON.stringify({ ...f, value: v }), ok: false, why: 'wrong type: value' })),
      fc
        .string({ minLength: 1, maxLength: 10 })
        .filter((k) => !KINDS.has(k))
        .map((k) => ({ text: JSON.stringify({ ...f, kind: k }), ok: false, why: 'unknown kind' })),
      fc.constantFrom('NaN', 'Infinity', '-Infinity', '1e999', '-1e999').map((v) => ({ text: JSON.stringify({ ...f, value: 0 }).replace('"value":0', `"value":${v}`), ok: false, why: `value ${v}` })),
      fc.double({ min: -1e300, max: -Number.MIN_VALUE, noNaN: true }).map((v) => ({ text: JSON.stringify({ ...f, value: v }), ok: false, why: 'negative value' })),
      fc
        .constantFrom('2026-02-30T00:00:00Z', '2026-01-01', '2026-01-01T00:00:00+01:00', '2026-01-01T24:00:00Z', '2026-01-01T00:00:00.1234Z', '')
        .map((t) => ({ text: JSON.stringify({ ...f, ts: t }), ok: false, why: 'bad ts' })),
      fc.constant({ text: `\uFEFF${JSON.stringify(f)}`, ok: false, why: 'BOM not at the start of the file' }),
      fc.integer({ min: 1 << 20, max: (1 << 20) + 100 }).map((n) => ({ text: `{"signal_id":"${id}","junk":"${'z'.repeat(n)}`, ok: false, why: '1 MB broken line' })),
    ),
  );

function isJson(s: string): boolean {
  try {
    JSON.parse(s);
    return true;
  } catch {
    return false;
  }
}

export interface GenFile {
  lines: GenLine[];
  crlf: boolean;
  bom: boolean;
  /** Blank lines after the last line (allowed), and one blank line placed before line `blankAt` (not allowed). */
  trailingBlank: number;
  blankAt: number | null;
  /** Index of a line whose signal_id repeats an earlier one (not allowed). */
  dupeAt: number | null;
}

/** A signals file: mostly valid lines, sometimes bad ones, duplicates, blank lines, CRLF and a BOM. */
export const signalFile: fc.Arbitrary<GenFile> = fc
  .record({
    n: fc.integer({ min: 0, max: 12 }),
    badRate: fc.constantFrom(0, 0.1, 0.3),
    crlf: fc.boolean(),
    bom: fc.boolean(),
    trailingBlank: fc.integer({ min: 0, max: 2 }),
    blank: fc.option(fc.nat(), { nil: null }),
    dupe: fc.option(fc.nat(), { nil: null }),
    seed: fc.integer(),
  })
  .chain((o) =>
    fc
      .tuple(
        ...Array.from({ length: o.n }, (_, i) =>
          fc.double({ min: 0, max: 1, noNaN: true }).chain((u) => (u < o.badRate ? badLine(`s${i}`) : goodFields(`s${i}`).map((f) => ({ text: JSON.stringify(f), ok: true, why: '' })))),
        ),
      )
      .map((lines) => ({
        lines,
        crlf: o.crlf,
        bom: o.bom,
        trailingBlank: o.trailingBlank,
        blankAt: o.blank !== null && o.n > 1 ? 1 + (o.blank % (o.n - 1)) : null,
        dupeAt: o.dupe !== null && o.n > 1 ? 1 + (o.dupe % (o.n - 1)) : null,
      })),
  );

/** The file's text and the 1-based line the parser must reject first (null: it must accept it). */
export function render(g: GenFile): { text: string; badLine: number | null; why: string | null } {
  const out: string[] = [];
  let bad: { line: number; why: string } | null = null;
  const mark = (why: string): void => {
    bad ??= { line: out.length, why };
  };
  g.lines.forEach((l, i) => {
    if (g.blankAt === i) {
      out.push('   ');
      mark('blank line');
    }
    let text = l.text;
    if (g.dupeAt === i && l.ok) {
      // The same signal_id as line 1 (when that one is good).
      const first = g.lines[0]!;
      if (first.ok) {
        text = JSON.stringify({ ...(JSON.parse(text) as object), signal_id: (JSON.parse(first.text) as { signal_id: string }).signal_id });
        out.push(text);
        mark('duplicate signal_id');
        return;
      }
    }
    out.push(text);
    // A BOM on the first line is stripped (twice, even: the collector and parseSignalLine each strip one).
    const bomFirst = i === 0 && l.why.startsWith('BOM');
    if (!l.ok && !bomFirst) mark(l.why);
  });
  for (let i = 0; i < g.trailingBlank; i++) out.push('');
  const nl = g.crlf ? '\r\n' : '\n';
  const text = (g.bom ? '\uFEFF' : '') + out.join(nl) + (out.length ? nl : '');
  const b = bad as { line: number; why: string } | null;
  return { text, badLine: b ? b.line : null, why: b ? b.why : null };
}

export interface ParserFigures {
  runs: number;
  seed: number;
  accepted_files: number;
  rejected_files: number;
  rejected_by_reason: Record<string, number>;
  longest_line_bytes: number;
  /** Counterexamples: empty when the property held. */
  failures: string[];
  duration_ms: number;
}

/**
 * The property: a file is accepted exactly when every line is valid, and then every signal is
 * sound (finite instant, non-empty strings, known kind, finite value >= 0); otherwise the parser
 * throws a DataInvalidError naming `file:line` of the first bad line, with no newline in its
 * message. Nothing else is ever thrown.
 */
export function fuzzParser(runs: number, seed: number): ParserFigures {
  const t0 = performance.now();
  const byReason: Record<string, number> = {};
  let accepted = 0;
  let rejected = 0;
  let longest = 0;
  const failures: string[] = [];
  const r = fc.check(
    fc.property(signalFile, (g) => {
      const { text, badLine, why } = render(g);
      for (const l of text.split('\n')) longest = Math.max(longest, l.length);
      let signals;
      try {
        signals = parseSignalText(text, FILE, KINDS);
      } catch (err) {
        if (!(err instanceof DataInvalidError)) throw new Error(`threw ${(err as Error)?.name}: ${(err as Error)?.message}`);
        const m = /^\/ws\/inputs\/s1_signals\.jsonl:(\d+): (.*)$/s.exec(err.message);
        if (!m) throw new Error(`message does not name file:line: ${err.message.slice(0, 200)}`);
        if (m[2]!.includes('\n')) throw new Error('message spans several lines');
        if (badLine === null) throw new Error(`rejected a valid file at line ${m[1]}: ${m[2]!.slice(0, 200)}`);
        if (Number(m[1]) !== badLine) throw new Error(`named line ${m[1]}, the first bad line is ${badLine} (${why}): ${m[2]!.slice(0, 200)}`);
        rejected++;
        byReason[why!] = (byReason[why!] ?? 0) + 1;
        return;
      }
      if (badLine !== null) throw new Error(`accepted a file whose line ${badLine} is bad (${why})`);
      for (const s of signals) {
        if (!Number.isFinite(s.ts_ms) || !(s.value >= 0) || !Number.isFinite(s.value) || !s.subject_ref || !s.signal_id || !KINDS.has(s.kind))
          throw new Error(`unsound signal ${JSON.stringify(s).slice(0, 200)}`);
      }
      accepted++;
    }),
    { numRuns: runs, seed },
  );
  if (r.failed)
    failures.push(
      `${r.errorInstance instanceof Error ? r.errorInstance.message : String(r.errorInstance)} (seed ${r.seed}, path ${r.counterexamplePath}; shrunk: ${JSON.stringify(r.counterexample).slice(0, 600)})`,
    );
  return {
    runs: r.numRuns,
    seed,
    accepted_files: accepted,
    rejected_files: rejected,
    rejected_by_reason: byReason,
    longest_line_bytes: longest,
    failures,
    duration_ms: Math.round(performance.now() - t0),
  };
}

/** Payloads the S1 workers must refuse as contract errors (dead letters at once, no retry). */
export function badPayload(configHash: string): fc.Arbitrary<unknown> {
  const good = { date: '2026-01-04', as_of: '2026-01-05T00:00:00.000Z', config_hash: configHash, inputs: '0123456789abcdef', subject_ref: 'creator:c0001' };
  return fc.oneof(
    fc.constantFrom<unknown>(null, 42, 'text', [], true),
    fc.constantFrom('date', 'as_of', 'config_hash').map((k) => omit(good, k)),
    fc.constantFrom('date', 'as_of', 'config_hash').chain((k) => fc.constantFrom<unknown>(1, null, [], {}, '', 'x').map((v) => ({ ...good, [k]: v }))),
    fc.constantFrom('2026-02-30', '2026-13-01', '26-01-04', '2026-1-4').map((d) => ({ ...good, date: d })),
    fc
      .stringMatching(/^[0-9a-f]{16}$/)
      .filter((h) => h !== configHash)
      .map((h) => ({ ...good, config_hash: h })),
    fc
      .string({ minLength: 1, maxLength: 8 })
      .filter((k) => !(k in good))
      .map((k) => ({ ...good, [k]: 1 })),
  );
}

function omit(o: Record<string, unknown>, k: string): Record<string, unknown> {
  const { [k]: _gone, ...rest } = o;
  return rest;
}
