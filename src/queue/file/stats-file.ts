import { closeSync, existsSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { safeOpen } from '../../storage/safe-path.js';
import { join } from 'node:path';
import type { QueueStats } from '../types.js';
import { decodeLine, encodeLine } from './codec.js';
import { LoadedLog } from './loader.js';
import { listGens, logPath } from './log-io.js';

/**
 * queue/<worker>/stats.json: the counts as of a log position, rewritten in place by whoever last
 * changed the queue. `queue stats` trusts it only when the log has not moved since; otherwise it
 * replays the log. A fixed-size block written with one pwrite, checksummed like a log line.
 */
const BLOCK = 1024;

interface Snapshot {
  gen: number;
  end: number;
  at: number;
  stats: QueueStats;
}

export class StatsWriter {
  private fd: number | null = null;

  constructor(private readonly dir: string) {}

  write(s: Snapshot): void {
    const line = encodeLine(s);
    const buf = Buffer.alloc(BLOCK, 0x20);
    buf.write(line, 0, 'utf8');
    if (Buffer.byteLength(line) > BLOCK) return;
    try {
      this.fd ??= safeOpen(join(this.dir, 'stats.json'), 'w');
      writeSync(this.fd, buf, 0, BLOCK, 0);
    } catch {
      // Derived data: a reader falls back to replaying the log.
    }
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

function readSnapshot(dir: string): Snapshot | null {
  try {
    const buf = readFileSync(join(dir, 'stats.json'));
    const nl = buf.indexOf(0x0a);
    return nl > 0 ? (decodeLine(buf, 0, nl) as Snapshot | null) : null;
  } catch {
    return null;
  }
}

/** Stats without taking the lock: the snapshot when it is current, else a read-only replay. */
export function readStats(dir: string, name: string, now: number): QueueStats & { source: 'snapshot' | 'replay' } {
  const gens = listGens(dir);
  const gen = gens[gens.length - 1];
  if (gen === undefined) return { ...emptyStats(name), source: 'snapshot' };
  const path = logPath(dir, gen);
  const size = statSync(path).size;
  const snap = readSnapshot(dir);
  // A snapshot from an older version (no totals, no cancelled count) is replayed once like a stale one.
  if (snap && snap.gen === gen && snap.end === size && snap.stats.totals && typeof snap.stats.cancelled === 'number') return { ...snap.stats, source: 'snapshot' };
  if (!existsSync(path)) return { ...emptyStats(name), source: 'replay' };
  const fd = openSync(path, 'r');
  try {
    const log = new LoadedLog(() => fd);
    log.readMore();
    return { ...log.idx.stats(name, now, log.corrupt.length), source: 'replay' };
  } finally {
    closeSync(fd);
  }
}

export function emptyStats(name: string): QueueStats {
  return {
    queue: name,
    ready: 0,
    scheduled: 0,
    leased: 0,
    completed: 0,
    dead: 0,
    cancelled: 0,
    paused: false,
    next_due_at: null,
    oldest_ready_at: null,
    corrupt_records: 0,
    totals: { failed: 0, dead_lettered: 0, retried: 0 },
  };
}
