import type { Logger } from 'pino';
import { MetaspnError, StateCorruptError, UsageError } from '../guard/errors.js';
import { Ledger, readLedger, type LedgerEntry } from '../storage/ledger.js';
import type { WorkspacePaths } from '../storage/paths.js';
import { pointerDates, pointerPath, readPointer, writePointer, type CurrentPointer } from '../storage/pointers.js';
import { safeRm } from '../storage/safe-path.js';
import { quarantineFile, StateFileError } from '../storage/state-file.js';
import { findEntry, pointerChanges, pointerHistory, pointersAt, stepsBack, type PointerChange } from './pointer-history.js';

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
 * Moves a pipeline's current pointers back (or forward) to a state the ledger recorded: N
 * publishes ago, or as of entry H. Pointers only: no artifact is touched. `--strict` refuses when the ledger chain
 * or a manifest of a pointer it would restore does not verify; `--dry-run` changes nothing.
 */
export async function rollback(o: RollbackOptions): Promise<RollbackReport> {
  const read = readLedger(o.ws);
  const warnings: string[] = [];
  if (read.problems.length) {
    const p = read.problems[0]!;
    if (o.strict) throw new StateCorruptError(`${o.ws.ledger}:${p.line}: ${p.rule}`, { hint: 'the ledger does not verify (--strict); keep it for audit' });
    warnings.push(...read.problems.map((x) => `ledger line ${x.line}: ${x.rule}`));
  }
  const history = pointerHistory(read.entries, o.pipeline);
  if (history.problems.length) {
    if (o.strict) throw new StateCorruptError(`${o.ws.ledger}: ${history.problems[0]}`);
    warnings.push(...history.problems);
  }
  let target;
  try {
    target = resolveTarget(o, read.entries, history);
  } catch (err) {
    // "Nothing that far back" from a ledger that does not verify: the damage is the news.
    if (err instanceof MetaspnError && err.code === 'BUSINESS_REJECT' && warnings.length) {
      throw new MetaspnError('STATE_CORRUPT', `${err.message}; the ledger does not verify (${warnings[0]})`, { hint: 'run metaspn doctor; keep ledger.jsonl for audit' });
    }
    throw err;
  }
  const now = pointersAt(history.current);
  // Pointer files that do not read back: the ledger knows what they said, so they are rewritten
  // (the damaged bytes go to quarantine/); --strict refuses, as for any pointer changed outside metaspn.
  const damaged = new Set<string>();
  for (const date of new Set([...now.keys(), ...pointerDates(o.ws, o.pipeline)])) {
    let file: CurrentPointer | null;
    try {
      file = readPointer(o.ws, o.pipeline, date);
    } catch (err) {
      if (!(err instanceof StateFileError) || o.strict) throw err;
      damaged.add(date);
      warnings.push(`${err.message}; it is rewritten from the ledger`);
      continue;
    }
    if (file?.run_id !== now.get(date)?.run_id) {
      const msg = `pointer of ${date} names run ${file?.run_id ?? '(none)'} but the ledger says ${now.get(date)?.run_id ?? '(none)'}`;
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
  report.ledger_entry = await new Ledger(o.ws).append(
    'rollback',
    { pipeline: o.pipeline, reason: o.reason, ...('steps' in o.target ? { steps: o.target.steps } : { to_hash: o.target.toHash }), target_hash: report.target_hash, changes },
    o.runId,
  );
  for (const c of changes) {
    if (damaged.has(c.date)) quarantineFile(o.ws, pointerPath(o.ws, o.pipeline, c.date));
    if (c.to) writePointer(o.ws, c.to);
    else safeRm(pointerPath(o.ws, o.pipeline, c.date), { force: true });
    o.log.warn({ event: 'pointer_rolled_back', date: c.date, from: c.from?.run_id ?? null, to: c.to?.run_id ?? null, reason: o.reason }, `pointer of ${c.date} moved`);
  }
  return report;
}

function resolveTarget(o: RollbackOptions, entries: readonly LedgerEntry[], history: ReturnType<typeof pointerHistory>) {
  if ('steps' in o.target) {
    const back = stepsBack(history.current, o.target.steps);
    if (!back) {
      let inEffect = 0;
      for (let n = history.current; n; n = n.parent) inEffect++;
      throw new MetaspnError('BUSINESS_REJECT', `--steps ${o.target.steps}: only ${inEffect} publish(es) in effect; nothing that far back`);
    }
    return back.target;
  }
  const e = findEntry(entries, o.target.toHash);
  if (e === 'too_short') throw new UsageError(`--to-hash ${o.target.toHash}: give at least 8 hex digits of the entry's hash`);
  if (e === 'ambiguous') throw new UsageError(`--to-hash ${o.target.toHash} matches more than one ledger entry; give more digits`);
  if (!e) throw new UsageError(`--to-hash ${o.target.toHash} is no entry of ${o.ws.ledger}`, { hint: 'list the hashes: tail ledger.jsonl' });
  return history.after.get(e.hash) ?? null;
}
