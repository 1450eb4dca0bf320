import { join } from 'node:path';
import { writeAtomicSync } from '../../storage/atomic.js';
import { assertNoLinks, safeMkdir, safeReadFile, safeReaddir, safeRm } from '../../storage/safe-path.js';
import type { DeadLetter } from '../types.js';

/**
 * deadletter/<worker>/<task_id>.json: one record per task, for people and scripts to read.
 * The queue log is the authority; these files are written from it (under the queue lock) and
 * reconciled with it whenever a process loads the log.
 */
export class DeadLetterFiles {
  constructor(readonly dir: string) {
    // Refused when the queue is opened, not when its first task dies: a link here stops the command at once (30).
    assertNoLinks(dir, { includeLast: true });
  }

  path(id: string): string {
    return join(this.dir, `${id}.json`);
  }

  write(d: DeadLetter): void {
    safeMkdir(this.dir);
    writeAtomicSync(this.path(d.task.id), `${JSON.stringify(d, null, 2)}\n`);
  }

  remove(id: string): void {
    safeRm(this.path(id), { force: true });
  }

  ids(): string[] {
    return safeReaddir(this.dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -5));
  }

  read(id: string): DeadLetter | null {
    try {
      return JSON.parse(safeReadFile(this.path(id))) as DeadLetter;
    } catch {
      return null;
    }
  }

  list(): DeadLetter[] {
    return this.ids()
      .map((id) => this.read(id))
      .filter((d): d is DeadLetter => d !== null)
      .sort((a, b) => (a.dead_at < b.dead_at ? -1 : a.dead_at > b.dead_at ? 1 : a.task.id < b.task.id ? -1 : 1));
  }
}
