import { existsSync, fdatasyncSync, fstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { StateCorruptError } from '../../guard/errors.js';
import { appendAll, closeQuietly } from '../../storage/io.js';
import type { Mutex } from '../../storage/mutex.js';
import { safeMkdir, safeRm } from '../../storage/safe-path.js';
import type { ClockReading, QueueClock } from '../clock.js';
import { compact, type Retention } from './compact.js';
import { LoadedLog, QueueLogConflictError } from './loader.js';
import { listGens, logPath, openCurrent } from './log-io.js';
import { salvage, type ConflictRepair } from './salvage.js';
import type { TornTail, Warn } from './torn-tail.js';

/**
 * The queue's current log generation, open for appending, and its replay: loading and reloading
 * (after a compaction, another process's or ours, or a failed round), catching up with what others
 * appended, the fence checked before every append, and the salvage of a log holding a conflict.
 * Every method but `close` runs under the queue's lock.
 */
export class QueueLogFile {
  private fd: number | null = null;
  private gen = 0;
  private loaded: LoadedLog | null = null;
  private stale = true;
  /** Descriptors an fdatasync in flight still uses, with how many: closed only once it returns. */
  private readonly pins = new Map<number, number>();
  /** Pinned descriptors replaced meanwhile (a reload, a close): closed when their last pin goes. */
  private readonly retired = new Set<number>();

  /** `onLoad`: a log was (re)loaded, under the lock: whatever mirrors it follows it. */
  constructor(
    readonly dir: string,
    private readonly queue: string,
    private readonly clock: QueueClock,
    private readonly torn: TornTail,
    private readonly onLoad: (log: LoadedLog) => void,
  ) {}

  get generation(): number {
    return this.gen;
  }

  get path(): string {
    return logPath(this.dir, this.gen);
  }

  /** The next catch-up replays the log afresh (after a failed round: its state may hold records never written). */
  invalidate(): void {
    this.stale = true;
  }

  /** The loaded log brought up to the end of the file: what others appended since our last look. */
  catchUp(): LoadedLog {
    if (this.stale || this.fd === null) return this.reload();
    const st = fstatSync(this.fd);
    // A compaction renames the next generation in, then unlinks ours: either shows here.
    if (st.nlink === 0 || existsSync(logPath(this.dir, this.gen + 1))) return this.reload();
    const log = this.loaded!;
    // Nobody appended since our last round (the common case for a busy worker): nothing to read.
    if (st.size === log.end) return log;
    let tail: number;
    try {
      tail = log.readMore();
    } catch (err) {
      // A conflict (QueueLogConflictError, 30) stays one: every round replays afresh and fails again.
      this.stale = true;
      throw err;
    }
    if (tail > 0) this.torn.cut(this.fd, this.path, log, tail);
    this.torn.noteCorrupt(log);
    return log;
  }

  /** Replays the current generation from its start. */
  reload(): LoadedLog {
    this.retire(this.fd);
    this.fd = null;
    safeMkdir(this.dir);
    this.removeLeftovers();
    const { gen, fd } = openCurrent(this.dir);
    this.fd = fd;
    this.gen = gen;
    const log = new LoadedLog(() => this.fd!, logPath(this.dir, gen), this.clock);
    // About one task per 250 bytes of log (an enqueue record): size the tables once.
    const expected = Math.floor(fstatSync(fd).size / 250);
    log.idx.slots.reserve(expected);
    log.idx.ids.reserve(expected);
    this.loaded = log;
    // A conflict throws here (30), before dead-letter files are reconciled with a state not to be trusted.
    const tail = log.readMore();
    if (tail > 0) this.torn.cut(fd, this.path, log, tail);
    this.torn.noteCorrupt(log, true);
    this.onLoad(log);
    this.stale = false;
    return log;
  }

  /**
   * Appends a round's bytes where the replay ended. Checked before they reach the file: this
   * process holds the queue's lock, and the log ends where its replay ended. Anything else means a
   * writer that did not hold the lock (a process of an older version, a hand edit): nothing is
   * written, the round fails with STATE_CORRUPT (30), and the next one replays afresh.
   */
  append(mutex: Mutex, bytes: Buffer, start: number): void {
    mutex.assertHeld();
    const size = fstatSync(this.fd!).size;
    if (size !== start) {
      this.stale = true;
      throw new StateCorruptError(`queue ${this.queue}: ${this.path} grew from ${start} to ${size} bytes without the queue's lock; nothing written`, {
        hint: 'another writer appended without the lock (an older metaspn?); stop it, then run `metaspn doctor --workspace DIR`',
      });
    }
    appendAll(this.fd!, bytes, start);
  }

  /** fdatasync of the current generation, here and now (under the lock: dead-letter files, compaction). */
  sync(): void {
    if (this.fd !== null) fdatasyncSync(this.fd);
  }

  /**
   * The current descriptor, kept open until `unpin`: an fdatasync in flight on it (off the event
   * loop, after the lock is released) must not see it closed, or worse reused, by a reload.
   */
  pin(): number | null {
    const fd = this.fd;
    if (fd !== null) this.pins.set(fd, (this.pins.get(fd) ?? 0) + 1);
    return fd;
  }

  unpin(fd: number): void {
    const n = (this.pins.get(fd) ?? 1) - 1;
    if (n > 0) {
      this.pins.set(fd, n);
      return;
    }
    this.pins.delete(fd);
    if (this.retired.delete(fd)) closeQuietly(fd);
  }

  /**
   * Writes the live state as the next generation (under the lock, records synced) and loads it:
   * its index is built from the records the compaction writes, not by replaying the file after.
   */
  compact(mutex: Mutex, log: LoadedLog, me: ClockReading, retention: Retention): LoadedLog {
    mutex.assertHeld();
    const next = this.gen + 1;
    let built: LoadedLog | null = null;
    // Reads back (an id's fingerprint to confirm) go to the new file while it is written, then to ours.
    let building: number | null = null;
    try {
      compact(this.dir, this.gen, log, this.fd!, me, retention, undefined, (tmp) => {
        building = tmp;
        built = new LoadedLog(() => building ?? this.fd!, logPath(this.dir, next), this.clock);
        built.idx.me = this.clock.read();
        const expected = log.idx.placed;
        built.idx.slots.reserve(expected);
        built.idx.ids.reserve(expected);
        return built;
      });
    } catch (err) {
      this.stale = true;
      throw err;
    } finally {
      building = null;
    }
    this.retire(this.fd);
    this.fd = null;
    const { gen, fd } = openCurrent(this.dir);
    this.fd = fd;
    this.gen = gen;
    const loaded = built as LoadedLog | null;
    // The generation renamed into place is the one just written (under the lock, nobody else compacts).
    if (loaded === null || gen !== next || fstatSync(fd).size !== loaded.end) return this.reload();
    this.loaded = loaded;
    this.torn.noteCorrupt(loaded, true);
    this.onLoad(loaded);
    this.stale = false;
    return loaded;
  }

  /**
   * Salvages a log that holds conflicts, under the lock: null when the log replays cleanly after
   * all (repaired meanwhile). The result is written as the next generation the way a compaction
   * writes one, and loaded.
   */
  salvage(mutex: Mutex, retention: Retention, warn: Warn): { repair: ConflictRepair; log: LoadedLog } | null {
    this.retire(this.fd);
    this.fd = null;
    this.loaded = null;
    this.stale = true;
    safeMkdir(this.dir);
    this.removeLeftovers();
    const { gen, fd } = openCurrent(this.dir);
    this.fd = fd;
    this.gen = gen;
    const file = logPath(this.dir, gen);
    // The strict replay once more, now that nobody else can append: is there still a conflict?
    const strict = new LoadedLog(() => fd, file, this.clock);
    try {
      strict.readMore();
      return null;
    } catch (err) {
      if (!(err instanceof QueueLogConflictError)) throw err;
    }
    const me = this.clock.read();
    const { log, tail, report } = salvage(fd, file, this.clock);
    if (tail > 0) this.torn.cut(fd, file, log, tail);
    mutex.assertHeld();
    log.idx.me = me;
    const next = compact(this.dir, gen, log, fd, me, retention);
    // The new generation is replayed strictly like any other; dead-letter files follow it.
    const loaded = this.reload();
    warn('queue log salvaged after a replay conflict', { queue: this.queue, file, offset: strict.conflict!.offset, generation: next });
    return { repair: { conflict: strict.conflict!, file, salvage: report, generation: logPath(this.dir, next) }, log: loaded };
  }

  close(): void {
    this.retire(this.fd);
    this.fd = null;
  }

  /** Closes a descriptor no longer current, once no fdatasync uses it. */
  private retire(fd: number | null): void {
    if (fd === null) return;
    if (this.pins.has(fd)) this.retired.add(fd);
    else closeQuietly(fd);
  }

  /** Older generations and temp files a crash left behind (the highest generation is whole). */
  private removeLeftovers(): void {
    const gens = listGens(this.dir);
    for (const g of gens.slice(0, -1)) safeRm(logPath(this.dir, g), { force: true });
    for (const f of readdirSync(this.dir)) if (f.endsWith('.tmp')) safeRm(join(this.dir, f), { force: true });
  }
}
