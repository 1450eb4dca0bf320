import type { LedgerEntry } from '../storage/ledger.js';
import type { CurrentPointer } from '../storage/pointers.js';

/**
 * The current pointers of one pipeline as the ledger tells them, pure. Each publish is a node whose parent is
 * the state it was published onto; a rollback moves "current" back to an earlier node. So
 * `--steps N` walks N parents up from current, and `--to-hash H` goes to the state right after H.
 */
export interface PublishNode {
  entry: LedgerEntry;
  pointer: CurrentPointer;
  parent: PublishNode | null;
}

export interface PointerHistory {
  current: PublishNode | null;
  /** The state right after each entry, by its hash. */
  after: Map<string, PublishNode | null>;
  problems: string[];
}

export function pointerHistory(entries: readonly LedgerEntry[], pipeline: string): PointerHistory {
  const publishes = new Map<string, PublishNode>();
  const after = new Map<string, PublishNode | null>();
  const problems: string[] = [];
  let current: PublishNode | null = null;
  for (const e of entries) {
    if (e.detail.pipeline === pipeline && e.kind === 'publish') {
      const node: PublishNode = { entry: e, pointer: e.detail.pointer as CurrentPointer, parent: current };
      publishes.set(e.hash, node);
      current = node;
    } else if (e.detail.pipeline === pipeline && e.kind === 'rollback') {
      const target = e.detail.target_hash as string | null;
      if (target === null) current = null;
      else if (publishes.has(target)) current = publishes.get(target)!;
      else problems.push(`rollback seq ${e.seq} names target ${target}, which is no publish in the ledger`);
    }
    after.set(e.hash, current);
  }
  return { current, after, problems };
}

/** The pointer of each date in a state: the newest publish of the date along the parents. */
export function pointersAt(node: PublishNode | null): Map<string, CurrentPointer> {
  const out = new Map<string, CurrentPointer>();
  for (let n = node; n; n = n.parent) if (!out.has(n.pointer.date)) out.set(n.pointer.date, n.pointer);
  return out;
}

export interface PointerChange {
  date: string;
  from: CurrentPointer | null;
  to: CurrentPointer | null;
}

export function pointerChanges(from: Map<string, CurrentPointer>, to: Map<string, CurrentPointer>): PointerChange[] {
  const dates = [...new Set([...from.keys(), ...to.keys()])].sort();
  return dates.map((date) => ({ date, from: from.get(date) ?? null, to: to.get(date) ?? null })).filter((c) => c.from?.run_id !== c.to?.run_id || c.from?.summary_id !== c.to?.summary_id);
}

/** The target of `--steps N`: N publishes back along the current state's parents; null when there are fewer. */
export function stepsBack(current: PublishNode | null, steps: number): { target: PublishNode | null } | null {
  let n = current;
  for (let i = 0; i < steps; i++) {
    if (!n) return null;
    n = n.parent;
  }
  return { target: n };
}

/** The entry a `--to-hash` names: its full hash, or a prefix of at least 8 hex digits that is unique. */
export function findEntry(entries: readonly LedgerEntry[], hash: string): LedgerEntry | 'ambiguous' | 'too_short' | null {
  const h = hash.toLowerCase();
  if (h.length < 8) return 'too_short';
  const hits = entries.filter((e) => (h.length === 64 ? e.hash === h : h.length >= 8 && e.hash.startsWith(h)));
  if (hits.length > 1) return 'ambiguous';
  return hits[0] ?? null;
}
