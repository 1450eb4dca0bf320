import type { QueueClock } from '../clock.js';
import type { Lease, Owner } from '../types.js';
import type { HeldTasks } from './held.js';
import type { IndexState } from './index-state.js';
import type { Pair } from './records.js';
import type { Round } from './round.js';
import type { Answer } from './rounds.js';
import { S_LEASED } from './slots.js';
import { goneMarkFiles, markFilesOf, readStartMarks, removeMarkFile, StartMarkFile, type Mark } from './start-marks.js';

/**
 * A start is marked in the owner's own file only while at least this much of its lease is left,
 * before the write and after it (ms). Whoever reclaims the lease reads the file after the lease
 * expired, so a mark whose write returned this long before the expiry is always seen; with less
 * left, the start takes a locked round (a `start` record, refused if the lease was lost meanwhile).
 * The margin also covers a reclaimer on another host whose wall clock runs up to this much ahead.
 */
export const START_MARK_MARGIN_MS = 1000;

/** Marks of an owner beyond this many bytes go into the log (one `start` record) and the file is emptied (the default; FileQueueOptions.start_marks_fold_bytes). */
export const START_MARKS_FOLD_BYTES = 256 << 10;

/** Runs an operation in the next locked round (RoundEngine.submit). */
export type Submit = (kind: string, urgent: boolean, run: (r: Round) => Answer) => Promise<unknown>;

interface Pending {
  id: string;
  lease: Lease;
  resolve: (marked: boolean | Promise<boolean>) => void;
  /** What the start is when its mark could not be written safely (a locked round's `start` record). */
  otherwise: (id: string, lease: Lease) => Promise<boolean>;
}

/** What a reclaim reads of the start marks, within one round (see reclaim.ts). */
export interface MarkReader {
  /** The slots of `owner`'s leases that its start marks say began (its leases with the marked fence). */
  startedSlots(idx: IndexState, owner: Owner): Set<number>;
  /** `owner` is gone and holds no lease any more: its file goes once this round's records are appended. */
  drop(owner: Owner): void;
  /** Removes the files dropped; called from the round's answer (after the append). */
  sweep(): void;
}

/**
 * Starts without a locked round: each lease's start is marked in its owner's start-mark file
 * (start-marks.ts), one write for the starts of one turn of the event loop, no lock and no fsync
 * (a `start` record was not fsynced either: written before the handler runs, it survives a crash of
 * the process). The marks of leases still held go into the log as one `start` record, and the
 * file is emptied, once it grows past START_MARKS_FOLD_BYTES and when the queue is closed.
 */
export class LocalStarts {
  private readonly files = new Map<string, StartMarkFile>();
  private readonly owners = new Map<string, Owner>();
  private readonly pending = new Map<string, Pending[]>();
  private readonly folding = new Set<string>();
  /** Files of gone owners holding nothing were looked for (once per queue instance). */
  private orphansSwept = false;

  constructor(
    private readonly dir: string,
    private readonly clock: QueueClock,
    private readonly held: HeldTasks,
    private readonly submit: Submit,
    foldBytes = START_MARKS_FOLD_BYTES,
  ) {
    this.foldBytes = Math.min(64 << 20, Math.max(1, Math.floor(foldBytes)));
  }

  private readonly foldBytes: number;

  /** An owner this process claims for: its file's first line names it. */
  know(owner: Owner): void {
    if (!this.owners.has(owner.id)) this.owners.set(owner.id, owner);
  }

  /**
   * Marks the start of a held lease: resolves true once the mark is written with enough of the
   * lease left; else it is what `otherwise` (a start in a locked round) resolves to. Null when the
   * lease is not one this process holds as given, or too little of it is left to try.
   */
  start(id: string, lease: Lease, otherwise: (id: string, lease: Lease) => Promise<boolean>): Promise<boolean> | null {
    const h = this.held.get(id);
    const owner = this.owners.get(lease.owner);
    if (!h || !owner || h.owner !== lease.owner || h.fence !== lease.fence || h.marked) return null;
    if (h.expires - this.clock.read().mono < START_MARK_MARGIN_MS) return null;
    if (this.fileOf(owner).broken) return null;
    return new Promise<boolean>((resolve) => {
      let list = this.pending.get(owner.id);
      if (!list) {
        this.pending.set(owner.id, (list = []));
        queueMicrotask(() => this.flush(owner.id));
      }
      list.push({ id, lease, resolve, otherwise });
    });
  }

  /**
   * A new generation of the log was loaded (a compaction, a salvage): each file with marks is
   * emptied in the next round. A compaction may have dropped a completed task's id, and that id,
   * enqueued again, counts its fences from 1 again: a mark left from its earlier life would name
   * a lease of its new one, and a reclaim would take it for a start.
   */
  reloaded(): void {
    for (const [owner, file] of this.files) if (file.bytes > 0) void this.fold(owner, false, true);
  }

  /** A reader of the marks for the reclaims of one round. */
  reader(r: Round, alive: (o: Owner) => boolean): MarkReader {
    const remove: string[] = [];
    if (!this.orphansSwept) {
      this.orphansSwept = true;
      remove.push(...goneMarkFiles(this.dir, (o) => !alive(o) && !holdsLeases(r.idx, o.id)));
    }
    return {
      startedSlots: (idx, owner) => {
        const out = new Set<number>();
        for (const [id, fence] of readStartMarks(this.dir, owner.id)) {
          const n = idx.ids.get(id);
          if (n >= 0 && idx.slots.state[n] === S_LEASED && idx.slots.fence[n] === fence && idx.ownerId(n) === owner.id) out.add(n);
        }
        return out;
      },
      drop: (owner) => void remove.push(...markFilesOf(this.dir, owner.id)),
      sweep: () => {
        for (const p of remove) removeMarkFile(p);
      },
    };
  }

  /** Puts the marks of leases still held into the log and removes this process's files (before the rounds close). */
  async close(): Promise<void> {
    // A fold that fails (a full disk) leaves the file: whoever reclaims these leases reads it.
    await Promise.allSettled([...this.files.keys()].map((o) => this.fold(o, true)));
  }

  private fileOf(owner: Owner): StartMarkFile {
    let f = this.files.get(owner.id);
    if (!f) this.files.set(owner.id, (f = new StartMarkFile(this.dir, owner)));
    return f;
  }

  private flush(owner: string): void {
    const list = this.pending.get(owner) ?? [];
    this.pending.delete(owner);
    const file = this.files.get(owner)!;
    const marks: Mark[] = list.map((p) => [p.id, p.lease.fence]);
    const ok = file.write(marks);
    // Read after the write returned: a reclaimer reads the file only once the lease expired.
    const now = this.clock.read().mono;
    for (const p of list) {
      const h = this.held.get(p.id);
      const safe = ok && h !== undefined && h.fence === p.lease.fence && h.owner === owner && h.expires - now >= START_MARK_MARGIN_MS;
      if (safe) h.marked = true;
      p.resolve(safe || p.otherwise(p.id, p.lease));
    }
    if (file.bytes > this.foldBytes) void this.fold(owner, false);
  }

  /**
   * One round that writes a `start` record for `owner`'s marked leases still held, then (after the
   * append, still under the lock) empties its file, or removes it on close.
   */
  private fold(owner: string, closing: boolean, urgent = closing): Promise<unknown> {
    if (!closing && this.folding.has(owner)) return Promise.resolve();
    this.folding.add(owner);
    const file = this.files.get(owner);
    if (!file) return Promise.resolve().finally(() => this.folding.delete(owner));
    return this.submit('start', urgent, (r) => {
      const idx = r.idx;
      const marked = this.held.marked(owner);
      const l: Pair[] = [];
      for (const h of marked) {
        const n = h.slot;
        if (idx.slots.state[n] === S_LEASED && idx.slots.fence[n] === h.fence && idx.ownerId(n) === owner && idx.slots.started[n] !== 1) l.push([n, h.fence]);
      }
      if (l.length > 0) r.emit({ t: 'start', at: r.at, o: owner, l });
      return () => {
        for (const h of marked) h.marked = false;
        if (closing) {
          file.remove();
          this.files.delete(owner);
        } else file.reset();
      };
    }).finally(() => this.folding.delete(owner));
  }
}

function holdsLeases(idx: IndexState, ownerId: string): boolean {
  const i = idx.owners.findIndex((o) => o.id === ownerId);
  return i >= 0 && (idx.leasesOf[i] ?? 0) > 0;
}
