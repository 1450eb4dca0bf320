import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fstatSync, ftruncateSync } from 'node:fs';
import { join } from 'node:path';
import { appendAll, closeQuietly, readAt } from '../../storage/io.js';
import { safeLstat, safeMkdir, safeOpen, safeReaddir, safeRm } from '../../storage/safe-path.js';
import type { Owner } from '../types.js';
import { encodeRecord, scanLines } from './codec.js';

/**
 * Start marks: what a worker appends, to a file of its own, before the handlers of leases it holds
 * begin (docs/QUEUE-FORMAT.md, "Start marks"). A `start` record in the log says the same thing, but
 * costs a locked round; a start mark is one write to a file that nobody else writes, with no lock.
 * The file is read only by whoever reclaims the owner's leases (under the queue's lock), to tell a
 * lease whose handler began (an attempt is charged) from one still in its owner's buffer (given back
 * as it was).
 *
 *   queue/<worker>/starts/<owner>.<instance>.jsonl   (one per open queue of the owner: no two writers)
 *   {"c":"…","r":{"t":"owner","o":"4242-1a2b3c4d","pid":4242,"host":"h1"}}   first line: whose file it is
 *   {"c":"…","r":{"t":"started","l":[["t17",3],["t18",3]]}}                    [task id, fence] per lease
 *
 * Lines carry the log's checksum; a line that does not verify (a torn tail, a writer killed
 * mid-write) marks nothing, which is right: its write never returned, so no handler it covers ran.
 */

/** The folder of the start-mark files of the queue in `dir`. */
export function startsDir(dir: string): string {
  return join(dir, 'starts');
}

const PLAIN = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,119}$/;

/** How `ownerId` is named in its files: its id when that is a plain file name, else a hash of it. */
export function ownerFileName(ownerId: string): string {
  return PLAIN.test(ownerId) ? ownerId : `h-${createHash('sha256').update(ownerId).digest('hex').slice(0, 32)}`;
}

/**
 * A new file for `ownerId`'s marks: `<owner>.<8 hex digits>.jsonl`, one per queue instance that
 * writes marks, so two instances of one queue with the same owner never share a file.
 */
export function startMarksPath(dir: string, ownerId: string): string {
  return join(startsDir(dir), `${ownerFileName(ownerId)}.${randomBytes(4).toString('hex')}.jsonl`);
}

/** The start-mark files of `ownerId` in the queue in `dir` (whose first line names that owner). */
export function markFilesOf(dir: string, ownerId: string): string[] {
  const folder = startsDir(dir);
  if (!safeLstat(folder)) return [];
  const prefix = `${ownerFileName(ownerId)}.`;
  return safeReaddir(folder)
    .filter((f) => f.startsWith(prefix) && /^[0-9a-f]{8}\.jsonl$/.test(f.slice(prefix.length)))
    .map((f) => join(folder, f))
    .filter((p) => readMarksFile(p, true).owner?.id === ownerId);
}

/** [task id, fence]: the lease with this fence of this task began. */
export type Mark = [string, number];

/** One owner's start-mark file, written by that owner alone (no lock). Opened on the first mark. */
export class StartMarkFile {
  private fd: number | null = null;
  /** Bytes in the file: where the next line goes. */
  private size = 0;
  /** Bytes of the owner line: what a reset keeps. */
  private headLen = 0;
  /** Where this instance's marks go. */
  readonly path: string;
  /** A write failed: this owner's starts go through the log from now on. */
  broken = false;

  constructor(
    private readonly dir: string,
    private readonly owner: Owner,
  ) {
    this.path = startMarksPath(dir, owner.id);
  }

  /** Bytes of marks written since the file was created or last reset. */
  get bytes(): number {
    return this.size - this.headLen;
  }

  /**
   * Appends one line holding `marks`, whole or not at all (a short write is cut back off).
   * False when it could not be written (then nothing is marked, and the file is not used again).
   */
  write(marks: readonly Mark[]): boolean {
    if (this.broken) return false;
    try {
      if (this.fd === null) this.open();
      const line = encodeRecord({ t: 'started', l: marks });
      appendAll(this.fd!, line, this.size);
      this.size += line.length;
      return true;
    } catch {
      this.broken = true;
      return false;
    }
  }

  /**
   * Drops every mark, keeping the owner line. Only under the queue's lock, once the leases still
   * held and marked have their `start` record in the log (appended in the same round).
   */
  reset(): void {
    if (this.fd === null || this.broken) return;
    try {
      ftruncateSync(this.fd, this.headLen);
      this.size = this.headLen;
    } catch {
      this.broken = true;
    }
  }

  /** Closes and removes the file (under the queue's lock, once its marks are in the log or moot). */
  remove(): void {
    closeQuietly(this.fd);
    this.fd = null;
    this.size = this.headLen = 0;
    safeRm(this.path, { force: true });
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private open(): void {
    safeMkdir(startsDir(this.dir));
    const fd = safeOpen(this.path, 'a');
    try {
      const head = encodeRecord({ t: 'owner', o: this.owner.id, pid: this.owner.pid, host: this.owner.host });
      appendAll(fd, head, 0);
      this.size = this.headLen = head.length;
    } catch (err) {
      closeQuietly(fd);
      throw err;
    }
    this.fd = fd;
  }
}

/** What a start-mark file says: whose it is (null when its first line does not verify) and its marks. */
export interface MarksRead {
  owner: Owner | null;
  marks: Mark[];
}

/** Reads the start marks of `ownerId`, from all its files (none when it has none). Never throws for a bad line: it marks nothing. */
export function readStartMarks(dir: string, ownerId: string): Mark[] {
  return markFilesOf(dir, ownerId).flatMap((p) => readMarksFile(p).marks);
}

/** Reads a start-mark file; `headOnly`: its first 4 KiB, enough for the owner line. */
function readMarksFile(path: string, headOnly = false): MarksRead {
  const out: MarksRead = { owner: null, marks: [] };
  let fd: number;
  try {
    fd = safeOpen(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return out;
    throw err;
  }
  try {
    const size = fstatSync(fd).size;
    scanLines(readAt(fd, 0, headOnly ? Math.min(4096, size) : size), 0, ({ record }) => {
      const r = record as { t?: unknown; l?: unknown; o?: unknown; pid?: unknown; host?: unknown } | null;
      if (r?.t === 'owner' && typeof r.o === 'string' && typeof r.pid === 'number' && typeof r.host === 'string') out.owner = { id: r.o, pid: r.pid, host: r.host };
      else if (r?.t === 'started' && Array.isArray(r.l)) {
        for (const m of r.l as unknown[]) {
          if (Array.isArray(m) && typeof m[0] === 'string' && Number.isSafeInteger(m[1])) out.marks.push([m[0], m[1] as number]);
        }
      }
    });
  } finally {
    closeQuietly(fd);
  }
  return out;
}

/**
 * The start-mark files of the queue in `dir` whose owner `gone` says is gone: what a process that
 * holds the lock removes once their owner holds no lease (a worker killed while it held none).
 */
export function goneMarkFiles(dir: string, gone: (o: Owner) => boolean): string[] {
  const folder = startsDir(dir);
  if (!safeLstat(folder)) return [];
  const out: string[] = [];
  for (const f of safeReaddir(folder)) {
    if (!f.endsWith('.jsonl')) continue;
    const path = join(folder, f);
    const { owner } = readMarksFile(path, true);
    if (owner && f.startsWith(`${ownerFileName(owner.id)}.`) && gone(owner)) out.push(path);
  }
  return out;
}

/** Removes a start-mark file (under the queue's lock). */
export function removeMarkFile(path: string): void {
  safeRm(path, { force: true });
}
