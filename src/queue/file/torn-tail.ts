import { join } from 'node:path';
import { cutTornTail } from '../../storage/io.js';
import type { QueueClock } from '../clock.js';
import type { LoadedLog } from './loader.js';

export type Warn = (msg: string, details: Record<string, unknown>) => void;

/**
 * What a load or a catch-up found damaged in a queue log: a torn last line (a writer died
 * mid-append) is set aside in quarantine/corrupt.jsonl and cut off before anything is appended
 * after it; lines failing their checksum are reported once each (a compaction sets them aside).
 */
export class TornTail {
  /** Corrupt ranges of the loaded log already reported. */
  private seen = 0;

  constructor(
    private readonly dir: string,
    private readonly queue: string,
    private readonly clock: QueueClock,
    private readonly warn: Warn,
  ) {}

  /** A writer died mid-line: set its bytes aside in quarantine/ and cut them off before appending. */
  cut(fd: number, file: string, log: LoadedLog, tail: number): void {
    cutTornTail(fd, file, log.end, tail, join(this.dir, 'quarantine', 'corrupt.jsonl'), new Date(this.clock.read().wall));
    this.warn('torn last line set aside', { queue: this.queue, offset: log.end, length: tail });
  }

  /** Warns of corrupt records not reported yet; `fresh`: the log was just loaded, report all of it. */
  noteCorrupt(log: LoadedLog, fresh = false): void {
    if (fresh) this.seen = 0;
    for (const c of log.corrupt.slice(this.seen)) {
      this.warn('corrupt queue record skipped (kept until compaction sets it aside)', { queue: this.queue, ...c });
    }
    this.seen = log.corrupt.length;
  }
}
