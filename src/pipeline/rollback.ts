import type { Logger } from 'pino';
import { MetaspnError, StateCorruptError, UsageError } from '../guard/errors.js';
import { Ledger, readLedger, type LedgerEntry } from '../storage/ledger.js';
import type { WorkspacePaths } from '../storage/paths.js';
import { pointerDates, pointerPath, readPointer, writePointer, type CurrentPointer } from '../storage/pointers.js';
import { safeRm } from '../storage/safe-path.js';
import { quarantineFile, StateFileError } from '../storage/state-file.js';
import { findEntry, pointerChanges, pointerHistory, pointersAt, stepsBack, type PointerChange, type PointerHistory, type PublishNode } from './pointer-history.js';

export interface RollbackOptions {
  ws: WorkspacePaths;
  /** The pipeline whose pointers move: only its publishes and rollbacks in the ledger count. */
  pipeline: string;
  /**
   * With `--strict`: refuses (StateCorruptError) to point at a run whose outputs no longer verify.
   * Each pipeline knows which manifest and output prove its run.
   */
  verify: (p: CurrentPointer) => Promise<void>;
  log: Logger;
  target: { steps: number } | { toHash: string };
  reason: string;
  dryRun: boolean;
  strict: boolean;
  runId: string;
}

export interface RollbackReport {
  dry_run: boolean;
  target_hash: string | null;
  changes: PointerChange[];
  warnings: string[];
  ledger_entry: LedgerEntry | null;
}

/**
 * What a rollback reads and writes, on one backend: the ledger, the pointers, and the commit of a
 * ledger entry with the pointer moves. The rules (target, checks, changes) are {@link rollbackWith}'s.
 */
export interface RollbackIo {
  /** The ledger's entries and the problems of its chain (as `readLedger` reports them). */
  readLedger(): Promise<{ entries: LedgerEntry[]; problems: { line: number; rule: string }[] }>;
  /** Where entry `n` is, for a strict refusal: `ledger.jsonl:3`, `PostgreSQL schema s, table ledger: entry 3`. */
  entryAt(n: number): string;
  /** Where the ledger is, for messages: its path, or the schema and table. */
  ledgerWhere: string;
  /** A warning's name for entry `n`: `ledger line 3`, `ledger entry 3`. */
  entryWarning(n: number): string;
  /** How to keep the damaged ledger, the hint of a refusal. */
  keepHint: string;
  /** The error for a `--to-hash` that names no entry. */
  noSuchEntry(hash: string): UsageError;
  /** The partitions that have a pointer. */
  partitions(): Promise<string[]>;
  /** One partition's pointer, or null; throws StateFileError when it does not read back. */
  readPointer(date: string): Promise<CurrentPointer | null>;
  /**
   * Writes the ledger entry, then moves every changed pointer (`damaged` ones are pointers that did
   * not read back), and returns the entry.
   */
  commit(detail: Record<string, unknown>, changes: readonly PointerChange[], damaged: ReadonlySet<string>): Promise<LedgerEntry>;
}

/**
 * A rollback on any backend: moves a pipeline's current pointers back (or forward) to a state the
 * ledger recorded, N publishes ago or as of entry H. Pointers only: no row is touched. `--strict`
 * refuses when the ledger chain or a manifest of a pointer it would restore does not verify;
 * `--dry-run` changes nothing. Pointers that do not read back are rewritten from the ledger (with a
 * warning; `--strict` refuses, as for any pointer changed outside metaspn).
 * @throws UsageError (64) for a `--to-hash` that names no entry (or too few digits, or several);
 *   MetaspnError BUSINESS_REJECT for `--steps` further back than the publishes in effect
 *   (STATE_CORRUPT when the ledger does not verify either); StateCorruptError (30) with `strict`;
 *   whatever `io` throws.
 */
export async function rollbackWith(o: Omit<RollbackOptions, 'ws'>, io: RollbackIo): Promise<RollbackReport> {
  const read = await io.readLedger();
  const warnings: string[] = [];
  if (read.problems.length) {
    const p = read.problems[0]!;
    if (o.strict) throw new StateCorruptError(`${io.entryAt(p.line)}: ${p.rule}`, { hint: 'the ledger does not verify (--strict); keep it for audit' });
    warnings.push(...read.problems.map((x) => `${io.entryWarning(x.line)}: ${x.rule}`));
  }
  const history = pointerHistory(read.entries, o.pipeline);
  if (history.problems.length) {
    if (o.strict) throw new StateCorruptError(`${io.ledgerWhere}: ${history.problems[0]}`);
    warnings.push(...history.problems);
  }
  let target: PublishNode | null;
  try {
    target = resolveTarget(o.target, read.entries, history, io);
  } catch (err) {
    // "Nothing that far back" from a ledger that does not verify: the damage is the news.
    if (err instanceof MetaspnError && err.code === 'BUSINESS_REJECT' && warnings.length) {
      throw new MetaspnError('STATE_CORRUPT', `${err.message}; the ledger does not verify (${warnings[0]})`, { hint: io.keepHint });
    }
    throw err;
  }
  const now = pointersAt(history.current);
  const damaged = new Set<string>();
  for (const date of new Set([...now.keys(), ...(await io.partitions())])) {
    let stored: CurrentPointer | null;
    try {
      stored = await io.readPointer(date);
    } catch (err) {
      if (!(err instanceof StateFileError) || o.strict) throw err;
      damaged.add(date);
      warnings.push(`${err.message}; it is rewritten from the ledger`);
      continue;
    }
    if (stored?.run_id !== now.get(date)?.run_id) {
      const msg = `pointer of ${date} names run ${stored?.run_id ?? '(none)'} but the ledger says ${now.get(date)?.run_id ?? '(none)'}`;
      if (o.strict) throw new StateCorruptError(msg, { hint: 'pointers were changed outside metaspn; compare with the ledger before rolling back' });
      warnings.push(msg);
    }
  }
  const to = pointersAt(target);
  const changes = pointerChanges(now, to);
  for (const date of damaged) if (!changes.some((c) => c.date === date)) changes.push({ date, from: now.get(date) ?? null, to: to.get(date) ?? null });
  changes.sort((a, b) => (a.date < b.date ? -1 : a.date > b.date ? 1 : 0));
  if (o.strict) for (const c of changes) if (c.to) await o.verify(c.to);
  const report: RollbackReport = { dry_run: o.dryRun, target_hash: target?.entry.hash ?? null, changes, warnings, ledger_entry: null };
  if (o.dryRun || changes.length === 0) return report;
  const detail = { pipeline: o.pipeline, reason: o.reason, ...('steps' in o.target ? { steps: o.target.steps } : { to_hash: o.target.toHash }), target_hash: report.target_hash, changes };
  report.ledger_entry = await io.commit(detail, changes, damaged);
  for (const c of changes) o.log.warn({ event: 'pointer_rolled_back', date: c.date, from: c.from?.run_id ?? null, to: c.to?.run_id ?? null, reason: o.reason }, `pointer of ${c.date} moved`);
  return report;
}

/**
 * `pipeline rollback` on the workspace's files: the ledger entry is appended (durable) first, then
 * each pointer replaced atomically (a damaged one moved to quarantine/ first). See {@link rollbackWith}.
 */
export function rollback(o: RollbackOptions): Promise<RollbackReport> {
  const { ws } = o;
  return rollbackWith(o, {
    readLedger: () => Promise.resolve(readLedger(ws)),
    entryAt: (n) => `${ws.ledger}:${n}`,
    ledgerWhere: ws.ledger,
    entryWarning: (n) => `ledger line ${n}`,
    keepHint: 'run metaspn doctor; keep ledger.jsonl for audit',
    noSuchEntry: (hash) => new UsageError(`--to-hash ${hash} is no entry of ${ws.ledger}`, { hint: 'list the hashes: tail ledger.jsonl' }),
    partitions: () => Promise.resolve(pointerDates(ws, o.pipeline)),
    readPointer: (date) => Promise.resolve(readPointer(ws, o.pipeline, date)),
    commit: async (detail, changes, damaged) => {
      const entry = await new Ledger(ws).append('rollback', detail, o.runId);
      for (const c of changes) {
        if (damaged.has(c.date)) quarantineFile(ws, pointerPath(ws, o.pipeline, c.date));
        if (c.to) writePointer(ws, c.to);
        else safeRm(pointerPath(ws, o.pipeline, c.date), { force: true });
      }
      return entry;
    },
  });
}

function resolveTarget(target: RollbackOptions['target'], entries: readonly LedgerEntry[], history: PointerHistory, io: Pick<RollbackIo, 'noSuchEntry'>): PublishNode | null {
  if ('steps' in target) {
    const back = stepsBack(history.current, target.steps);
    if (!back) {
      let inEffect = 0;
      for (let n = history.current; n; n = n.parent) inEffect++;
      throw new MetaspnError('BUSINESS_REJECT', `--steps ${target.steps}: only ${inEffect} publish(es) in effect; nothing that far back`);
    }
    return back.target;
  }
  const e = findEntry(entries, target.toHash);
  if (e === 'too_short') throw new UsageError(`--to-hash ${target.toHash}: give at least 8 hex digits of the entry's hash`);
  if (e === 'ambiguous') throw new UsageError(`--to-hash ${target.toHash} matches more than one ledger entry; give more digits`);
  if (!e) throw io.noSuchEntry(target.toHash);
  return history.after.get(e.hash) ?? null;
}
