import type { Scope } from './index-state.js';
import type { LoadedLog } from './loader.js';
import type { Round } from './round.js';

/** A claim's `only` resolved against one loaded log: ids looked up once, not per claim. */
interface Resolved extends Scope {
  log: LoadedLog;
  /** The set's size when resolved: a set changed in place is resolved again. */
  size: number;
  /** slots.count when the missing ids were last looked up: they are looked up again once it grows. */
  count: number;
  /** Ids of the set not in the log (yet). */
  missing: string[];
  member: Set<number>;
}

/** Claim scopes (ClaimOptions.only) already resolved, by the caller's set. */
export class Scopes {
  private readonly resolved = new WeakMap<ReadonlySet<string>, Resolved>();

  /**
   * The slots of a claim's `only` in the round's log, looked up once per set (a lookup confirms
   * the id by reading its record); ids not in the log yet are looked up again when tasks were added.
   */
  of(r: Round, only: ReadonlySet<string>): Scope {
    const log = r.log;
    const idx = log.idx;
    let c = this.resolved.get(only);
    if (!c || c.log !== log || c.size !== only.size) {
      const member = new Set<number>();
      c = { log, size: only.size, count: -1, missing: [...only], member, slots: [], has: (n) => member.has(n) };
      this.resolved.set(only, c);
    }
    if (c.missing.length && idx.slots.count !== c.count) {
      const missing: string[] = [];
      for (const id of c.missing) {
        const n = idx.ids.get(id);
        if (n < 0) missing.push(id);
        else if (!c.member.has(n)) {
          c.member.add(n);
          c.slots.push(n);
        }
      }
      c.slots.sort((a, b) => a - b);
      c.missing = missing;
      c.count = idx.slots.count;
    }
    return c;
  }
}
