import { closeSync, fdatasyncSync } from 'node:fs';
import { join } from 'node:path';
import { fsyncDir, writeAll } from '../../storage/atomic.js';
import { safeOpen, safeRename, safeRm } from '../../storage/safe-path.js';
import { wallTime, type ClockReading } from '../clock.js';
import { LineBuffer } from './codec.js';
import type { LoadedLog } from './loader.js';
import { readAt, setAside as setAsideBytes } from '../../storage/io.js';
import { logPath } from './log-io.js';
import { ENQS_MAX, freshEntry, type EnqsRecord, type LogRecord } from './records.js';
import { STATES, S_CANCELLED, S_COMPLETED, S_LEASED, S_READY, UNPLACED } from './slots.js';
import type { TaskRecord } from '../types.js';

export interface Retention {
  /** Completed and cancelled tasks younger than this stay known (enqueue of them is reported as existing). */
  ms: number;
  /** At most this many completed and cancelled tasks are kept, the newest. */
  count: number;
}

/**
 * Writes the live state of `log` as generation gen+1 and retires gen. `me`: the writer's clocks:
 * each state time is written as a wall-clock time and, when the writer knows its boot, as its
 * monotonic time after a `clk` record naming that boot (so a reader on the same boot keeps
 * measuring leases and waits on the monotonic clock across the compaction).
 * Crash-safe: the new file is complete and fsynced before it is renamed into place, and the old
 * one is removed only after; a reader picks the highest generation, which is always whole.
 *
 * `into`: the index of the new generation, built from the records as they are written (each chunk
 * applied once its bytes are in the file, so a read-back during the apply finds them), instead of
 * a replay of the file after it: the compaction has every record in hand. Called once with the
 * new file's descriptor (open for reading until the compaction returns); its log must be empty.
 */
export function compact(
  dir: string,
  gen: number,
  log: LoadedLog,
  fd: number,
  me: ClockReading,
  keep: Retention,
  tick: () => void = () => undefined,
  into?: (fd: number) => LoadedLog,
): number {
  const { idx } = log;
  const now = me.mono;
  const boot = me.boot;
  const times = (local: number): { tm: number; mt?: number } => (boot !== null ? { tm: wallTime(local, me), mt: local } : { tm: wallTime(local, me) });
  const t = idx.slots;
  const keepCompleted = completedToKeep(log, now, keep);
  const next = gen + 1;
  const tmp = `${logPath(dir, next)}.tmp`;
  const out = safeOpen(tmp, into ? 'w+' : 'w');
  const built = into?.(out);
  let dropped = idx.completedDropped;
  let cancelledDropped = idx.cancelledDropped;
  try {
    const chunk = new LineBuffer();
    // The records of the chunk and their lines' lengths, applied to `built` once written.
    const records: LogRecord[] = [];
    const lengths: number[] = [];
    const flush = (): void => {
      writeAll(out, chunk.bytes());
      chunk.reset();
      if (!built) return;
      built.applyWritten(records, lengths);
      records.length = 0;
      lengths.length = 0;
    };
    const emit = (r: LogRecord): void => {
      const length = chunk.add(r);
      if (built) {
        records.push(r);
        lengths.push(length);
      }
      if (chunk.length > 1 << 20) flush();
    };
    if (boot !== null) emit({ t: 'clk', at: me.wall, m: me.mono, b: boot });
    // Only what survives is read back (completions past retention are counted, not read), in
    // batches that readMany turns into a few sequential reads.
    const survivors: number[] = [];
    for (let slot = 0; slot < t.count; slot++) {
      const st = t.state[slot]!;
      if (st === UNPLACED) continue;
      if (st === S_COMPLETED && !keepCompleted.has(slot)) dropped++;
      else if (st === S_CANCELLED && !keepCompleted.has(slot)) cancelledDropped++;
      else survivors.push(slot);
    }
    // Ready tasks keep the order they became ready in (a snap's `ro`), which slot order is not.
    const readyOrder = new Int32Array(t.count);
    let ro = 0;
    idx.forEachReady((slot) => {
      readyOrder[slot] = ro++;
      return true;
    });
    let n = 0;
    // Ready tasks never claimed, their record as enqueue wrote it, go back into `enqs` lines (with
    // their ready order `ro`): tasks side by side in slot order and in the ready order, ready since
    // the same instant (their enqueue's), up to ENQS_MAX to a line; the others as snaps.
    let line: EnqsRecord | null = null;
    const endLine = (): void => {
      if (line) emit(line);
      line = null;
    };
    const asEntry = (slot: number, task: TaskRecord): boolean => {
      if (t.state[slot] !== S_READY || t.fence[slot] !== 0 || t.attempts[slot] !== 0 || t.failLen[slot] !== 0) return false;
      const time = t.time[slot]!;
      const fresh = freshEntry(task, line?.x ?? task.max_attempts);
      // A line's time is its `m` on this boot (a monotonic time is not negative), or without the
      // boot its `at`: then it must be the time a snap would have written.
      if (fresh === null || (boot !== null ? !(time >= 0) : wallTime(time, me) !== fresh.at)) return false;
      const ro = readyOrder[slot]!;
      const l: EnqsRecord | null = line;
      if (l && l.l.length < ENQS_MAX && l.at === fresh.at && l.q === task.queue && (l.m ?? time) === time && l.ro! + l.l.length === ro) {
        l.l.push(fresh.entry);
      } else {
        endLine();
        const first = freshEntry(task, task.max_attempts)!;
        line = { t: 'enqs', n, at: first.at, ...(boot !== null ? { m: time } : {}), q: task.queue, x: task.max_attempts, ro, l: [first.entry] };
      }
      n++;
      return true;
    };
    for (let i = 0; i < survivors.length; i += BATCH) {
      const batch = survivors.slice(i, i + BATCH);
      // A completed task is kept by its id alone: the record before a short `fail` has it, unread.
      const done = batch.filter((slot) => t.state[slot] === S_COMPLETED);
      const open = done.length === 0 ? batch : batch.filter((slot) => t.state[slot] !== S_COMPLETED);
      const byId = done.length === 0 ? [] : log.basesAt(done);
      const byTask = open.length === 0 ? [] : log.recordsAt(open);
      let d = 0;
      let o = 0;
      const records = batch.map((slot) => (t.state[slot] === S_COMPLETED ? byId[d++] : byTask[o++])) as ({ task?: TaskRecord; id?: string } | null)[];
      batch.forEach((slot, k) => {
        const rec = records[k];
        const st = t.state[slot]!;
        if (st === S_COMPLETED) {
          endLine();
          const id = rec?.id ?? rec?.task?.id;
          if (id) emit({ t: 'kept', n: n++, id, f: t.fence[slot]!, ...times(t.time[slot]!) });
          return;
        }
        const task = rec?.task;
        if (!task) throw new Error(`queue log ${logPath(dir, gen)}: record of slot ${slot} does not read back`);
        if (asEntry(slot, task)) return;
        endLine();
        const owner = st === S_LEASED ? idx.ownerOf(slot) : null;
        const ownerBoot = st === S_LEASED ? idx.ownerBoots[t.owner[slot]!] : null;
        emit({
          t: 'snap',
          n: n++,
          s: STATES[st]!,
          f: t.fence[slot]!,
          ...times(t.time[slot]!),
          ...(owner ? { o: owner.id, pid: owner.pid, host: owner.host } : {}),
          ...(ownerBoot ? { ob: ownerBoot } : {}),
          ...(st === S_LEASED && t.started[slot] === 1 ? { st: 1 as const } : {}),
          ...(st === S_READY ? { ro: readyOrder[slot]! } : {}),
          task: task as never,
        });
      });
      // A long compaction keeps its mutex fresh, or others would take it over as stale.
      tick();
    }
    endLine();
    // The head goes last: only then is the count of dropped completions known.
    emit({ t: 'head', gen: next, at: me.wall, completed_dropped: dropped, cancelled_dropped: cancelledDropped, paused: idx.paused, totals: { ...idx.totals } });
    if (chunk.length) flush();
    built?.endWritten();
    fdatasyncSync(out);
  } finally {
    closeSync(out);
  }
  setAside(dir, gen, log, fd);
  safeRename(tmp, logPath(dir, next));
  fsyncDir(dir);
  safeRm(logPath(dir, gen), { force: true });
  fsyncDir(dir);
  return next;
}

/** Records read back per batch during a compaction. */
const BATCH = 4096;

/** Completed and cancelled tasks within retention (a cancelled task is kept whole: it may run again). */
/** `now`: local (monotonic) ms, like the state's times. */
function completedToKeep(log: LoadedLog, now: number, keep: Retention): Set<number> {
  const t = log.idx.slots;
  const young: number[] = [];
  for (let s = 0; s < t.count; s++) if ((t.state[s] === S_COMPLETED || t.state[s] === S_CANCELLED) && now - t.time[s]! < keep.ms) young.push(s);
  if (young.length > keep.count) young.sort((a, b) => t.time[b]! - t.time[a]!).length = keep.count;
  return new Set(young);
}

/** Corrupt stretches of the old generation go to quarantine/ before it is removed: nothing is deleted unseen. */
function setAside(dir: string, gen: number, log: LoadedLog, fd: number): void {
  const file = logPath(dir, gen);
  setAsideBytes(
    join(dir, 'quarantine', 'corrupt.jsonl'),
    log.corrupt.map((c) => ({ file, offset: c.offset, bytes: readAt(fd, c.offset, c.length), reason: 'checksum mismatch' })),
  );
}
