import type { TaskRecord } from '../types.js';
import type { LoadedLog } from './loader.js';
import { S_LEASED } from './slots.js';

/**
 * Tasks this process claimed and still holds: their slot, and their record as claimed. A
 * completion, a failure or a renewal finds its task without an id lookup, and a failure's record
 * is built from the claimed one without reading it back from the log.
 */
export class HeldTasks {
  private held = new Map<string, { slot: number; task: TaskRecord }>();

  slot(id: string): number | undefined {
    return this.held.get(id)?.slot;
  }

  task(id: string): TaskRecord | undefined {
    return this.held.get(id)?.task;
  }

  hold(slot: number, task: TaskRecord): void {
    this.held.set(task.id, { slot, task });
  }

  drop(id: string): void {
    this.held.delete(id);
  }

  /** A new generation (or a fresh replay) renumbers slots: keep the tasks still leased, under their new slot. */
  rebase(log: LoadedLog): void {
    const held = new Map<string, { slot: number; task: TaskRecord }>();
    for (const [id, h] of this.held) {
      const n = log.idx.ids.get(id);
      if (n >= 0 && log.idx.slots.state[n] === S_LEASED) held.set(id, { slot: n, task: h.task });
    }
    this.held = held;
  }
}
