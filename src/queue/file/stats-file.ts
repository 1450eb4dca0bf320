import { closeSync, readFileSync, writeSync } from 'node:fs';
import { safeExists, safeLstat, safeOpen } from '../../storage/safe-path.js';
import { join } from 'node:path';
import { reprojectWall, type ClockReading, type QueueClock } from '../clock.js';
import { systemClock } from '../system-clock.js';
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
  /** Wall-clock epoch ms of the write. */
  at: number;
  /** The writer's monotonic ms and boot at the write (absent from older versions): the stats' times are re-projected from them after a wall-clock step. */
  mono?: number;
  boot?: string | null;
  stats: QueueStats;
}

export class StatsWriter {
  private fd: number | null = null;
  /** The block, reused from write to write. */
  private readonly buf = Buffer.alloc(BLOCK, 0x20);

  constructor(private readonly dir: string) {}

  /**
   * The counts of `log` as of reading `me`, with the log position they describe (after a round,
   * under the lock). The reading goes with the wall times it produced: a reader on this boot
   * re-projects them after a step.
   */
  snapshot(queue: string, gen: number, log: LoadedLog, me: ClockReading): void {
    log.idx.me = me;
    this.write({ gen, end: log.end, at: me.wall, mono: me.mono, boot: me.boot, stats: log.idx.stats(queue, me.mono, log.corrupt.length) });
  }

  write(s: Snapshot): void {
    const line = encodeLine(s);
    const buf = this.buf;
    if (buf.write(line, 0, 'utf8') < Buffer.byteLength(line)) return;
    buf.fill(0x20, Buffer.byteLength(line));
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
    // Never through a link: a linked snapshot is ignored (the log is replayed, which refuses links).
    const fd = safeOpen(join(dir, 'stats.json'), 'r');
    let buf: Buffer;
    try {
      buf = readFileSync(fd);
    } finally {
      closeSync(fd);
    }
    const nl = buf.indexOf(0x0a);
    return nl > 0 ? (decodeLine(buf, 0, nl) as Snapshot | null) : null;
  } catch {
    return null;
  }
}

/**
 * Stats without taking the lock: the snapshot when it is current, else a read-only replay. `now`:
 * wall-clock epoch ms the stats are as of (normally the clock's own). Waits and ages are measured
 * on `clock`'s monotonic clock and shown as wall-clock times (see src/queue/clock.ts).
 */
export function readStats(dir: string, name: string, now: number, clock: QueueClock = systemClock): QueueStats & { source: 'snapshot' | 'replay' } {
  const gens = listGens(dir);
  const gen = gens[gens.length - 1];
  if (gen === undefined) return { ...emptyStats(name), source: 'snapshot' };
  const path = logPath(dir, gen);
  const size = safeLstat(path)?.size ?? 0;
  const snap = readSnapshot(dir);
  // A snapshot from an older version (no totals, no cancelled count) is replayed once like a stale one.
  const read = clock.read();
  // `now` differs from the clock's wall time only when a caller asks about another instant.
  const me = { ...read, mono: read.mono + (now - read.wall), wall: now };
  if (snap && snap.gen === gen && snap.end === size && snap.stats.totals && typeof snap.stats.cancelled === 'number') {
    const s = snap.stats;
    if (typeof snap.mono !== 'number') return { ...s, source: 'snapshot' };
    const then = { wall: snap.at, mono: snap.mono, boot: snap.boot ?? null };
    return {
      ...s,
      next_due_at: s.next_due_at === null ? null : reprojectWall(s.next_due_at, then, me),
      oldest_ready_at: s.oldest_ready_at === null ? null : reprojectWall(s.oldest_ready_at, then, me),
      source: 'snapshot',
    };
  }
  if (!safeExists(path)) return { ...emptyStats(name), source: 'replay' };
  const fd = safeOpen(path, 'r');
  try {
    const log = new LoadedLog(() => fd, undefined, { read: () => me });
    log.readMore();
    return { ...log.idx.stats(name, me.mono, log.corrupt.length), source: 'replay' };
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
