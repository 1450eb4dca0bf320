import type { TaskRecord } from '../types.js';
import type { LoadedLog } from './loader.js';
import { S_LEASED } from './slots.js';

/** A task this process holds: where it is, its record as claimed, and the lease it holds it by. */
export interface Held {
  slot: number;
  task: TaskRecord;
  owner: string;
  fence: number;
  /** When the lease expires, on this process's monotonic timeline (ms), as of its claim or last renewal. */
  expires: number;
  /** A start mark for this lease is in its owner's start-mark file (start-marks.ts), not yet in the log. */
  marked: boolean;
}

/**
 * Tasks this process claimed and still holds: their slot, and their record as claimed. A
 * completion, a failure or a renewal finds its task without an id lookup, and a failure's record
 * is built from the claimed one without reading it back from the log.
 */
export class HeldTasks {
  private held = new Map<string, Held>();

  get(id: string): Held | undefined {
    return this.held.get(id);
  }

  slot(id: string): number | undefined {
    return this.held.get(id)?.slot;
  }

  task(id: string): TaskRecord | undefined {
    return this.held.get(id)?.task;
  }

  hold(slot: number, task: TaskRecord, owner: string, fence: number, expires: number): void {
    this.held.set(task.id, { slot, task, owner, fence, expires, marked: false });
  }

  drop(id: string): void {
    this.held.delete(id);
  }

  /** Tasks held under a start mark of `owner`'s: what goes in the log before its marks are dropped. */
  marked(owner: string): Held[] {
    const out: Held[] = [];
    for (const h of this.held.values()) if (h.marked && h.owner === owner) out.push(h);
    return out;
  }

  /** A new generation (or a fresh replay) renumbers slots: keep the tasks still leased, under their new slot. */
  rebase(log: LoadedLog): void {
    const held = new Map<string, Held>();
    for (const [id, h] of this.held) {
      const n = log.idx.ids.get(id);
      if (n >= 0 && log.idx.slots.state[n] === S_LEASED) {
        h.slot = n;
        held.set(id, h);
      }
    }
    this.held = held;
  }
}
