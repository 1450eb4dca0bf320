import { deadLetterOf } from '../record.js';
import type { DeadLetter, TaskRecord } from '../types.js';
import { DeadLetterFiles } from './deadletter-files.js';
import type { Effects } from './index-state.js';
import type { LoadedLog } from './loader.js';

/**
 * The dead letters of the log mirrored to deadletter/<worker>/: written after the record that
 * made a task dead is fsynced, under the queue's lock (so they never race a retry), and
 * reconciled with the log whenever a process loads it. The log is the authority.
 */
export class DeadLetterMirror {
  constructor(readonly files: DeadLetterFiles) {}

  /** A round's arrivals and departures; its records are fsynced already, the lock is held. */
  follow(effects: Effects, taskAt: (n: number) => TaskRecord): void {
    for (const n of effects.dead) this.files.write(deadLetterOfTask(taskAt(n)));
    for (const n of effects.undead) this.files.remove(taskAt(n).id);
  }

  /** A freshly loaded log: missing or half-written files are written again, stale ones removed. */
  reconcile(log: LoadedLog, taskAt: (n: number) => TaskRecord): void {
    const files = new Set(this.files.ids());
    for (const n of log.idx.deadSlots) {
      const task = taskAt(n);
      const present = files.delete(task.id);
      // Missing, or half-written by a crash: written again from the log.
      if (!present || this.files.read(task.id)?.task.id !== task.id) this.files.write(deadLetterOfTask(task));
    }
    for (const id of files) this.files.remove(id);
  }

  list(): DeadLetter[] {
    return this.files.list();
  }

  read(id: string): DeadLetter | null {
    return this.files.read(id);
  }
}

/**
 * A dead letter as written from the log: `dead_at` is the wall time the failure record carries (the
 * task's `updated_at`), so a file written again from the log is byte for byte the first one (a time
 * projected from the monotonic clock could differ by a millisecond between two readers).
 */
function deadLetterOfTask(task: TaskRecord): DeadLetter {
  return deadLetterOf(task, Date.parse(task.updated_at));
}
