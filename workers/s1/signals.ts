import { Buffer } from 'node:buffer';
import type { Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import * as z from '../../src/zod.js';
import { parseJsonWithin, utf8Fault, utf8Rule } from '../../src/config/json-limits.js';
import { LIMITS } from '../../src/config/limits.js';
import { DataInvalidError } from '../../src/guard/errors.js';
import { DAY_MS, dayText, utcInstantMs } from './dates.js';
import { PlainLine, scanPlainLine } from './signal-bytes.js';
import { SignalTable, SignalTableBuilder, textHash, type Signal } from './signal-table.js';

/**
 * Reading `inputs/s1_signals.jsonl`: one JSON object a line.
 *
 * Line rules beyond the spec's field table, chosen for operators:
 * - Line numbers are 1-based and count `\n` only; a `\r` before it (CRLF files) is stripped, and
 *   so is a UTF-8 BOM at the start of line 1.
 * - Blank (empty or whitespace-only) lines are allowed only at the end of the file. A blank line
 *   followed by more data is an error (rule "blank line"): it usually means a truncated or
 *   hand-edited file, and skipping it would make line numbers in later errors misleading.
 * - Fields not in the spec are ignored, so producers may carry extra metadata.
 * - `value: null` is an error; only an absent `value` defaults to 1.
 * - `ts` takes at most millisecond precision, so ordering by `ts_ms` is the order of the instants.
 */

export type { Signal } from './signal-table.js';

const pad = (n: number, width: number): string => String(n).padStart(width, '0');

/**
 * The signal's `ts` exactly as written in the input: the reader accepts only
 * `YYYY-MM-DDTHH:MM:SS[.f{1,3}]Z`, so the instant and the number of fraction digits determine it.
 */
export function tsText(s: Pick<Signal, 'ts_ms' | 'ts_digits'>): string {
  return tsTextOf(s.ts_ms, s.ts_digits);
}

/** The last day {@link tsTextOf} wrote: signals in time order share it. */
let lastDay = Number.NaN;
let lastDayText = '';

/** {@link tsText} of an instant (epoch ms) and its fraction digits. */
export function tsTextOf(tsMs: number, tsDigits: number | undefined): string {
  const day = Math.floor(tsMs / DAY_MS);
  if (day !== lastDay) {
    lastDayText = dayText(day);
    lastDay = day;
  }
  let rest = tsMs - day * DAY_MS;
  const ms = rest % 1000;
  rest = (rest - ms) / 1000;
  const sec = rest % 60;
  rest = (rest - sec) / 60;
  const min = rest % 60;
  const hour = (rest - min) / 60;
  const digits = tsDigits ?? (ms === 0 ? 0 : 3);
  const frac = digits > 0 ? `.${pad(ms, 3).slice(0, digits)}` : '';
  return `${lastDayText}T${pad(hour, 2)}:${pad(min, 2)}:${pad(sec, 2)}${frac}Z`;
}

const TS_RULE = 'ts must be an ISO-8601 UTC instant YYYY-MM-DDTHH:MM:SS[.fff]Z on a real calendar date';

function buildSchema(kinds: ReadonlySet<string>) {
  return z.object({
    signal_id: z.string().min(1),
    // A refine, not a transform: a zod pipe per line cost more than parsing the instant twice.
    ts: z.string().refine((text) => utcInstantMs(text) !== null),
    subject_ref: z.string().min(1),
    kind: z.string().refine((k) => kinds.has(k)),
    value: z.number().min(0).optional(),
  });
}

type SignalSchema = ReturnType<typeof buildSchema>;
// One schema per kinds set: building a zod schema per line would dominate a 1M-line parse.
const schemaCache = new WeakMap<ReadonlySet<string>, SignalSchema>();

function schemaFor(kinds: ReadonlySet<string>): SignalSchema {
  let schema = schemaCache.get(kinds);
  if (schema === undefined) {
    schema = buildSchema(kinds);
    schemaCache.set(kinds, schema);
  }
  return schema;
}

function shown(v: unknown): string {
  if (v === undefined) return 'nothing';
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function ruleFor(field: string, got: unknown, kinds: ReadonlySet<string>): string {
  switch (field) {
    case 'signal_id':
    case 'subject_ref':
      return `${field} must be a non-empty string, got ${shown(got)}`;
    case 'ts':
      return `${TS_RULE}, got ${shown(got)}`;
    case 'kind':
      return `kind must be one of ${[...kinds].sort().join(', ')} (the keys of attention.weights), got ${shown(got)}`;
    case 'value':
      return `value must be a finite number >= 0 when present (default 1), got ${shown(got)}`;
    default:
      return `invalid field ${field}`;
  }
}

function fail(file: string, line: number | null, rule: string): never {
  throw new DataInvalidError(file, line, rule.replace(/[\r\n]+/g, ' '), {
    hint: `fix ${line === null ? file : `line ${line} of ${file}`} and re-run; nothing was written`,
    details: { file, line, rule },
  });
}

/** A line's fields once checked: the signal, with `ts` as written. */
type Fields = { signal_id: string; ts: string; ts_ms: number; subject_ref: string; kind: string; value: number };

/**
 * The fields of a parsed line when they plainly pass the schema (strings, a known kind, a valid
 * instant, an absent or finite value >= 0), else null: zod then judges the line and names the rule.
 * Accepts only what the schema accepts, with the same values; a million zod parses took a tenth
 * of reading a 1M-signal file.
 */
function plainFields(raw: Record<string, unknown>, kinds: ReadonlySet<string>): Fields | null {
  const { signal_id, ts, subject_ref, kind, value } = raw;
  if (typeof signal_id !== 'string' || signal_id.length === 0 || typeof ts !== 'string' || typeof subject_ref !== 'string' || subject_ref.length === 0) return null;
  if (typeof kind !== 'string' || !kinds.has(kind)) return null;
  if (value !== undefined && (typeof value !== 'number' || !(value >= 0) || !Number.isFinite(value))) return null;
  const ts_ms = utcInstantMs(ts);
  if (ts_ms === null) return null;
  return { signal_id, ts, ts_ms, subject_ref, kind, value: value ?? 1 };
}

/** The checked fields of one line (see {@link parseSignalLine}). */
function parseFields(text: string, lineNo: number, file: string, kinds: ReadonlySet<string>): Fields {
  let line = text.endsWith('\r') ? text.slice(0, -1) : text;
  if (lineNo === 1 && line.charCodeAt(0) === 0xfeff) line = line.slice(1);
  if (line.trim() === '') fail(file, lineNo, 'blank line');
  // The limits of every reader of outside data: line length, nesting, numbers JSON cannot carry exactly.
  const json = parseJsonWithin(line);
  if (!json.ok) {
    const reason = json.syntax;
    fail(file, lineNo, reason === undefined ? json.rule : `not valid JSON (${reason.length > 100 ? `${reason.slice(0, 97)}...` : reason})`);
  }
  const raw = json.value;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    fail(file, lineNo, `the line must be a JSON object, got ${Array.isArray(raw) ? 'an array' : shown(raw)}`);
  }
  const plain = plainFields(raw as Record<string, unknown>, kinds);
  if (plain !== null) return plain;
  const parsed = schemaFor(kinds).safeParse(raw);
  if (!parsed.success) {
    const field = String(parsed.error.issues[0]?.path[0] ?? '');
    fail(file, lineNo, ruleFor(field, (raw as Record<string, unknown>)[field], kinds));
  }
  const { signal_id, ts, subject_ref, kind, value } = parsed.data;
  return { signal_id, ts, ts_ms: utcInstantMs(ts) ?? Number.NaN, subject_ref, kind, value: value ?? 1 };
}

/** How many fraction-of-second digits an accepted `ts` was written with (0–3). */
const digitsOf = (ts: string): number => (ts.length === 20 ? 0 : ts.length - 21);

/**
 * Parses and validates one line (without the duplicate-id check, which needs the whole file).
 * Strips a trailing `\r`, and a UTF-8 BOM when `lineNo` is 1.
 * @throws DataInvalidError `(file, lineNo, rule)`.
 */
export function parseSignalLine(text: string, lineNo: number, file: string, kinds: ReadonlySet<string>): Signal {
  const f = parseFields(text, lineNo, file, kinds);
  return { signal_id: f.signal_id, ts_ms: f.ts_ms, subject_ref: f.subject_ref, kind: f.kind, value: f.value, ts_digits: digitsOf(f.ts) };
}

const MAX_LINE_CHARS = LIMITS.json_line_chars.max;

/**
 * Feeds text chunks (or byte chunks of a file), splits lines, and applies the whole-file rules
 * (blank lines, duplicates). A line of bytes that {@link scanPlainLine} reads is taken from its
 * bytes; any other is decoded (UTF-8, as a stream of the file in `utf8` would give it: lines end
 * at a byte `\n`, which no UTF-8 sequence holds) and judged as text, so its errors are the text
 * reader's.
 */
class SignalCollector {
  private carry = '';
  private carryBytes: Buffer | null = null;
  private lineNo = 0;
  private pendingBlank: number | null = null;
  /** The signals so far; a signal's position + 1 is its line (blank lines may only end the file). */
  private readonly table = new SignalTableBuilder();
  private readonly kindList: readonly string[];
  /** {@link table}'s index of each kind of {@link kindList}, -1 until seen. */
  private readonly kindIndex: Int32Array;
  private readonly plain = new PlainLine();

  constructor(
    private readonly file: string,
    private readonly kinds: ReadonlySet<string>,
  ) {
    this.kindList = [...kinds];
    this.kindIndex = new Int32Array(this.kindList.length).fill(-1);
  }

  push(chunk: string): void {
    const text = this.carry + chunk;
    let from = 0;
    for (let nl = text.indexOf('\n', from); nl !== -1; nl = text.indexOf('\n', from)) {
      this.line(text.slice(from, nl));
      from = nl + 1;
    }
    this.carry = text.slice(from);
  }

  /** Feeds the next bytes of a file (not mixed with {@link push}). */
  pushBytes(chunk: Buffer): void {
    let from = 0;
    let nl = chunk.indexOf(10);
    if (this.carryBytes !== null) {
      if (nl === -1) {
        this.carryBytes = Buffer.concat([this.carryBytes, chunk]);
        return;
      }
      const joined = Buffer.concat([this.carryBytes, chunk.subarray(0, nl)]);
      this.carryBytes = null;
      this.lineOfBytes(joined, 0, joined.length);
      from = nl + 1;
      nl = chunk.indexOf(10, from);
    }
    for (; nl !== -1; nl = chunk.indexOf(10, from)) {
      this.lineOfBytes(chunk, from, nl);
      from = nl + 1;
    }
    if (from < chunk.length) this.carryBytes = Buffer.from(chunk.subarray(from));
  }

  finish(): SignalTable {
    if (this.carryBytes !== null) this.lineOfBytes(this.carryBytes, 0, this.carryBytes.length);
    this.carryBytes = null;
    // An empty carry is the "line" after the final newline: not a line at all.
    if (this.carry !== '') this.line(this.carry);
    this.carry = '';
    return this.table.finish();
  }

  /** The line `bytes[from, to)` (without its `\n`). */
  private lineOfBytes(bytes: Buffer, from: number, to: number): void {
    const end = to > from && bytes[to - 1] === 13 ? to - 1 : to;
    const p = this.plain;
    if (this.pendingBlank !== null || end - from > MAX_LINE_CHARS || !scanPlainLine(bytes, from, end, this.kindList, p)) {
      // Bytes that are not UTF-8 would decode to U+FFFD: refused (after a pending blank line, which comes first).
      const bad = this.pendingBlank === null ? utf8Fault(bytes.subarray(from, to)) : null;
      if (bad) fail(this.file, this.lineNo + 1, utf8Rule(bad));
      this.line(bytes.toString('utf8', from, to));
      return;
    }
    const n = ++this.lineNo;
    const first = this.table.indexOfAscii(bytes, p.idFrom, p.idTo, p.idHash);
    const id = bytes.toString('latin1', p.idFrom, p.idTo);
    if (first >= 0) this.duplicate(n, id, first);
    let kind = this.kindIndex[p.kind]!;
    if (kind < 0) kind = this.kindIndex[p.kind] = this.table.kindIndex(this.kindList[p.kind]!);
    const subject = this.table.subjectAscii(bytes, p.subjectFrom, p.subjectTo, p.subjectHash);
    this.table.addIndexed(id, p.idHash, p.tsMs, p.digits, kind, subject, p.value);
  }

  private line(text: string): void {
    const n = ++this.lineNo;
    let body = text.endsWith('\r') ? text.slice(0, -1) : text;
    if (n === 1 && body.charCodeAt(0) === 0xfeff) body = body.slice(1);
    // Fast path: almost every line starts with "{"; only the others need the blank test.
    if (body.charCodeAt(0) !== 123 && body.trim() === '') {
      this.pendingBlank ??= n;
      return;
    }
    if (this.pendingBlank !== null) fail(this.file, this.pendingBlank, 'blank line (blank lines are allowed only at the end of the file)');
    const f = parseFields(body, n, this.file, this.kinds);
    const hash = textHash(f.signal_id);
    const first = this.table.indexOf(f.signal_id, hash);
    if (first >= 0) this.duplicate(n, f.signal_id, first);
    this.table.addIndexed(f.signal_id, hash, f.ts_ms, digitsOf(f.ts), this.table.kindIndex(f.kind), this.table.subjectIndex(f.subject_ref), f.value);
  }

  private duplicate(line: number, id: string, first: number): never {
    fail(this.file, line, `duplicate signal_id ${shown(id)} (first on line ${first + 1})`);
  }
}

const MAX_WEIGHTED_SUM = LIMITS.signal_weighted_sum.max;

/**
 * Rule "weighted sum overflows": every score and total is a sum of `weight × value × decay`
 * (decay <= 1), so the sum of `weight × value` over the whole file bounds them all. S1-SPEC then
 * multiplies a score by 1e6 (`round6`) and by `daily_pool_units` (< 2^53, "multiply first"), so
 * the sum must stay at most LIMITS.signal_weighted_sum (1e290): beyond it a product overflows to
 * Infinity deep in the math (a retried RangeError, rows half written). A value that takes it past
 * the bound is bad input, named at its line (the i-th signal is on line i + 1: blank lines may
 * only end the file), found before anything is written.
 * @throws DataInvalidError `(file, line, rule)`.
 */
export function checkMagnitudes(signals: readonly Signal[] | SignalTable, weights: Readonly<Record<string, number>>, file: string): void {
  const table = signals instanceof SignalTable ? signals : SignalTable.of(signals);
  const weightOf = table.kinds.map((k) => weights[k] ?? 0);
  let bound = 0;
  for (let i = 0; i < table.length; i++) {
    bound += weightOf[table.kind[i]!]! * table.value[i]!;
    if (!(bound <= MAX_WEIGHTED_SUM)) {
      const kind = table.kinds[table.kind[i]!]!;
      fail(
        file,
        i + 1,
        `value ${table.value[i]} is too large: the weighted sum of the signals (weight of "${kind}" × value) overflows (it must stay at most ${MAX_WEIGHTED_SUM}, limit signal_weighted_sum)`,
      );
    }
  }
}

/**
 * Parses a whole JSONL text with the same rules as {@link readSignals}.
 * @throws DataInvalidError on the first broken rule.
 */
export function parseSignalText(text: string, file: string, kinds: ReadonlySet<string>): Signal[] {
  const collector = new SignalCollector(file, kinds);
  collector.push(text);
  return collector.finish().toSignals();
}

/**
 * Streams a signals file and returns its signals in file order, as columns. An empty file gives
 * an empty table.
 * @param kinds the allowed kinds: the keys of `attention.weights`.
 * @param hash updated with every byte of the file as it is read (the file's sha256 without a
 *   second read); holds part of the file when the read throws.
 * @throws DataInvalidError `(path, line, rule)` on the first broken rule; `(path, null,
 *   "file not found")` when the file does not exist.
 */
export async function readSignalTable(path: string, kinds: ReadonlySet<string>, hash?: Hash): Promise<SignalTable> {
  const collector = new SignalCollector(path, kinds);
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
      hash?.update(chunk as Buffer);
      collector.pushBytes(chunk as Buffer);
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'ENOENT') fail(path, null, 'file not found');
    if (code === 'EISDIR') fail(path, null, 'is a directory, not a file');
    throw err;
  }
  return collector.finish();
}

/**
 * {@link readSignalTable} as objects, in file order. An empty file gives `[]`.
 * @throws DataInvalidError as {@link readSignalTable}.
 */
export async function readSignals(path: string, kinds: ReadonlySet<string>): Promise<Signal[]> {
  return (await readSignalTable(path, kinds)).toSignals();
}

/**
 * The signals file as the pipeline reads it: {@link readSignalTable} with the kinds of `weights`,
 * then {@link checkMagnitudes}. `hash`: as {@link readSignalTable}'s.
 * @throws DataInvalidError `(path, line, rule)`.
 */
export async function readWeightedSignalTable(path: string, weights: Readonly<Record<string, number>>, hash?: Hash): Promise<SignalTable> {
  const table = await readSignalTable(path, new Set(Object.keys(weights)), hash);
  checkMagnitudes(table, weights, path);
  return table;
}

/**
 * {@link readWeightedSignalTable} as objects, in file order (doctor's reading).
 * @throws DataInvalidError `(path, line, rule)`.
 */
export async function readWeightedSignals(path: string, weights: Readonly<Record<string, number>>): Promise<Signal[]> {
  return (await readWeightedSignalTable(path, weights)).toSignals();
}
