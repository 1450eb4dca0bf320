import type { QueueClock } from '../clock.js';
import type { TaskState } from '../types.js';
import type { ScannedLine } from './codec.js';
import { impossibleValue, salvageable } from './impossible.js';
import { ImpossibleRecordError, ReplayConflictError, type ReplayConflict } from './index-state.js';
import { LoadedLog, QueueLogConflictError } from './loader.js';
import { readLines } from './log-io.js';
import { entryRecord, type LogRecord, type Pair } from './records.js';
import { STATES, S_COMPLETED, S_DEAD } from './slots.js';

/** What a salvage replay did to keep every task of a log that holds conflicts. */
export interface SalvageReport {
  /** Tasks placed in a slot that was taken: each kept, in a slot of its own (numbered in the log salvaged). */
  relocated: { id: string; offset: number; slot: number; displaced: string | null; new_slot: number }[];
  /** Ids placed again though already present: kept once. */
  duplicates: { id: string; offset: number; slot: number }[];
  /** Tasks whose history a conflict made ambiguous, put back to ready with their attempts kept (they may run again). */
  made_ready: { id: string; was: TaskState }[];
  /** Tasks involved but left as they were: dead-lettered ones, and completed ones whose payload is gone (a tombstone). */
  left: { id: string; state: TaskState }[];
  /** Records, or [slot, fence] pairs of batched ones, naming a slot (or an id) no task was placed in: skipped. */
  skipped: number;
  /** Records the replay refused as stale (harmless, as in any log). */
  refused: number;
  /**
   * Records holding values no writer writes (an attempt count past the maximum, a negative time, an
   * unknown state or kind): those that place a task were kept as a ready task; the others were skipped.
   */
  impossible: { offset: number; record: string; reason: string; kept: boolean }[];
}

/**
 * Replays a log that holds conflicts (see ReplayConflict) without losing a task, for
 * `doctor --repair`. Slots are renumbered as tasks are placed: a task placed in a taken slot gets
 * the next free one, an id placed twice is kept once, and later records naming a slot are routed
 * to the task most recently placed under that number (what the writers saw when they wrote them);
 * records that carry their task (fail, dead, reclaim, retry, rerun, cancel; a short fail its id) are routed by its id. Every
 * task a conflict touched is put back to ready unless it is in the dead letters: running a task
 * twice is acceptable (artifacts dedupe by id), losing one is not.
 *
 * The result is a LoadedLog whose state holds no conflict, ready for `compact` to write as the
 * next generation. Nothing is written here. Costs one pass over the log and 4 bytes per slot.
 */
export function salvage(fd: number, path: string, clock: QueueClock): { log: LoadedLog; tail: number; report: SalvageReport } {
  const log = new LoadedLog(() => fd, path, clock);
  const me = clock.read();
  log.idx.me = me;
  log.idx.lenient = true;
  const s = new Salvager(log, me.wall);
  try {
    const r = readLines(fd, 0, (l) => s.line(l));
    log.end = r.end;
    s.finish(me.mono);
    log.idx.lenient = false;
    // Salvaged or not, the state must add up before anything is written from it.
    log.idx.verify(log.end);
    return { log, tail: r.tail, report: s.report };
  } catch (err) {
    // The salvage met what it cannot place either: nothing is written, the log stays as it is.
    if (err instanceof ReplayConflictError) throw new QueueLogConflictError(path, err.conflict);
    throw err;
  }
}

class Salvager {
  /** Log slot number → slot in the salvaged state (-1: none placed under that number). */
  private route = new Int32Array(1024).fill(-1);
  /** Slots of the salvaged state whose tasks a conflict touched. */
  private readonly involved = new Set<number>();
  private lines = 0;
  readonly report: SalvageReport = { relocated: [], duplicates: [], made_ready: [], left: [], skipped: 0, refused: 0, impossible: [] };

  /** `now`: wall-clock ms, the time given to a task kept from a record whose times are impossible. */
  constructor(
    private readonly log: LoadedLog,
    private readonly now: number,
  ) {}

  line(l: ScannedLine): void {
    this.lines++;
    this.log.end = l.offset + l.length; // on disk: recordAt may read it back
    const rec = l.record as LogRecord | null;
    // An `enqs` line numbers one slot per entry.
    if (rec?.t === 'enqs' && Array.isArray(rec.l)) this.lines += rec.l.length - 1;
    if (rec === null || typeof rec !== 'object' || typeof rec.t !== 'string') {
      this.log.corrupt.push({ offset: l.offset, length: l.length });
      return;
    }
    try {
      this.route1(rec, l);
    } catch (err) {
      if (err instanceof ImpossibleRecordError) return this.impossible(rec, l, err.reason);
      // A record of the wrong shape is skipped; a conflict here would be a bug of the salvage: stop.
      if (err instanceof TypeError) this.report.skipped++;
      else throw err;
    }
  }

  /**
   * A record holding values no writer writes: the task it places is kept, as ready and made trustworthy
   * (read back in place of the line); any other such record is skipped, and the task it names, whose
   * history it leaves in doubt, is made ready again.
   */
  private impossible(rec: LogRecord, l: ScannedLine, reason: string): void {
    const fixed = salvageable(rec, this.now);
    this.report.impossible.push({ offset: l.offset, record: String(rec.t).slice(0, 40), reason, kept: fixed !== null });
    const idx = this.log.idx;
    if (fixed) {
      this.log.replaced.set(l.offset, fixed);
      const count = idx.slots.count;
      this.route1(fixed, l);
      if (idx.slots.count > count && fixed.t === 'snap') this.involved.add(count);
      return;
    }
    this.report.skipped++;
    const r = rec as { n?: unknown; task?: { id?: unknown }; id?: unknown };
    const id = typeof r.task?.id === 'string' ? r.task.id : rec.t === 'fail' && typeof r.id === 'string' ? r.id : null;
    const byId = id !== null ? idx.ids.get(id) : -1;
    const s = byId >= 0 ? byId : typeof r.n === 'number' ? this.slotOf(r.n) : -1;
    if (s >= 0) this.involved.add(s);
  }

  private route1(rec: LogRecord, l: ScannedLine): void {
    const idx = this.log.idx;
    switch (rec.t) {
      case 'enq':
        return this.place(rec, rec.task.id, l);
      case 'enqs': {
        // Checked whole before any entry is placed: a bad entry found halfway would have placed the others twice.
        const bad = rec === this.log.replaced.get(l.offset) ? null : impossibleValue(rec);
        if (bad !== null) throw new ImpossibleRecordError(bad);
        for (let i = 0; i < rec.l.length; i++) {
          // A salvaged line's entry without an id is a hole: no task, the slot number passed over.
          if (rec.l[i] !== null) this.place(entryRecord(rec, i), rec.l[i]![0], l);
        }
        return;
      }
      case 'kept':
        return this.place(rec, rec.id, l);
      case 'snap': {
        if (!STATES.includes(rec.s)) {
          // A state no writer names would throw the counts off: the task is kept, as ready.
          const count = idx.slots.count;
          this.place({ t: 'snap', n: rec.n, s: 'ready', f: rec.f, tm: rec.tm, task: rec.task }, rec.task.id, l);
          if (idx.slots.count > count) this.involved.add(count);
          return;
        }
        // A rerun written over a completed task's tombstone, with the same id: an update, not a placement.
        const s = idx.ids.get(rec.task.id);
        if (s >= 0 && this.slotOf(rec.n) === s && idx.slots.state[s] === S_COMPLETED) return this.apply({ ...rec, n: s }, l);
        return this.place(rec, rec.task.id, l);
      }
      case 'claim':
      case 'renew':
      case 'start':
      case 'done':
      case 'rel': {
        const mapped: Pair[] = [];
        for (const [n, f] of rec.l) {
          const s = this.slotOf(n);
          if (s >= 0) mapped.push([s, f]);
          else this.report.skipped++;
        }
        if (mapped.length) this.apply({ ...rec, l: mapped }, l);
        return;
      }
      case 'fail':
      case 'dead':
      case 'reclaim':
      case 'retry':
      case 'rerun':
      case 'cancel':
      case 'discard': {
        // A short `fail` names its task by `id`; the others carry the task.
        const s = idx.ids.get('task' in rec ? rec.task.id : rec.id);
        if (s < 0) {
          this.report.skipped++;
          return;
        }
        const named = this.slotOf(rec.n);
        if (named !== s) {
          // Its writer numbered slots differently from the replay: both tasks' histories are in doubt.
          this.involved.add(s);
          if (named >= 0) this.involved.add(named);
        }
        return this.apply({ ...rec, n: s }, l);
      }
      case 'head':
      case 'pause':
      case 'resume':
      case 'clk':
        return this.apply(rec, l);
    }
  }

  private place(rec: Extract<LogRecord, { n: number }>, id: string, l: ScannedLine): void {
    const idx = this.log.idx;
    const taken = this.slotOf(rec.n);
    const known = idx.ids.get(id);
    if (known >= 0) {
      // Kept once; later records of its writer naming this slot number mean that task.
      this.report.duplicates.push({ id, offset: l.offset, slot: rec.n });
      this.involved.add(known);
      if (taken >= 0) this.involved.add(taken);
      this.setRoute(rec.n, known);
      return;
    }
    const s = idx.slots.count;
    if (taken >= 0) {
      this.report.relocated.push({ id, offset: l.offset, slot: rec.n, displaced: idx.ids.idOf(taken), new_slot: s });
      this.involved.add(taken);
      this.involved.add(s);
    }
    this.apply({ ...rec, n: s } as LogRecord, l);
    this.setRoute(rec.n, s);
  }

  private apply(rec: LogRecord, l: ScannedLine): void {
    const idx = this.log.idx;
    const before = idx.refused;
    idx.apply(rec, l.offset, l.length);
    this.report.refused += idx.refused - before;
  }

  private slotOf(n: number): number {
    return Number.isInteger(n) && n >= 0 && n < this.route.length ? this.route[n]! : -1;
  }

  private setRoute(n: number, s: number): void {
    // A log holds at most one slot per line (an `enqs` line one per entry): a number past that is nonsense, and nothing is routed to it.
    if (!Number.isInteger(n) || n < 0 || n > this.lines) return;
    if (n >= this.route.length) {
      let size = this.route.length;
      while (n >= size) size *= 2;
      const bigger = new Int32Array(size).fill(-1);
      bigger.set(this.route);
      this.route = bigger;
    }
    this.route[n] = s;
  }

  /** Every task a conflict touched goes back to ready, unless it is dead or only its tombstone is left. `now`: local (monotonic) ms. */
  finish(now: number): void {
    const idx = this.log.idx;
    for (const s of [...this.involved].sort((a, b) => a - b)) {
      const state = STATES[idx.slots.state[s]!]!;
      const rec = this.log.recordAt(s) as { id?: string; task?: { id?: string } } | null;
      const id = rec?.task?.id ?? rec?.id ?? `slot ${s}`;
      if (idx.slots.state[s] === S_DEAD || !rec?.task) {
        this.report.left.push({ id, state });
        continue;
      }
      idx.makeReady(s, now);
      this.report.made_ready.push({ id, was: state });
    }
  }
}

/** The conflict a strict replay stopped at, and what a salvage did about it: the repair report of one queue. */
export interface ConflictRepair {
  conflict: ReplayConflict;
  file: string;
  salvage: SalvageReport;
  /** The generation written from the salvaged state. */
  generation: string;
}
