import { createHash } from 'node:crypto';
import { closeSync, fdatasyncSync, fstatSync, ftruncateSync } from 'node:fs';
import { join } from 'node:path';
import stringify from 'fast-json-stable-stringify';
import { StateCorruptError } from '../guard/errors.js';
import { appendAll, readAt, setAside, splitJsonl } from './io.js';
import { fsyncDir } from './atomic.js';
import { Mutex } from './mutex.js';
import { safeExists, safeOpen, safeReadFile } from './safe-path.js';
import type { WorkspacePaths } from './paths.js';

export type LedgerKind = 'publish' | 'rollback' | 'lock_break' | 'deadletter_retry' | 'deadletter_discard' | 'queue_paused_guardrail';

/**
 * ledger.jsonl: a hash chain of what changed what operators see: publishes, rollbacks, forced lock
 * breaks, dead-letter retries and discards. `hash` is sha256 over the entry's stable stringification without
 * `hash`; `prev_hash` links it to the entry before, so an edited or removed line is detected.
 */
export interface LedgerEntry {
  seq: number;
  at: string;
  kind: LedgerKind;
  run_id?: string;
  detail: Record<string, unknown>;
  prev_hash: string;
  hash: string;
}

export const GENESIS = '0'.repeat(64);

export function entryHash(e: Omit<LedgerEntry, 'hash'>): string {
  return createHash('sha256').update(stringify(e)).digest('hex');
}

export interface LedgerProblem {
  line: number;
  rule: string;
}

export interface LedgerRead {
  entries: LedgerEntry[];
  problems: LedgerProblem[];
}

/** Reads and verifies the whole chain. A torn last line (a crash mid-append) is a problem too. */
export function readLedger(ws: WorkspacePaths): LedgerRead {
  if (!safeExists(ws.ledger)) return { entries: [], problems: [] };
  const { lines, torn } = splitJsonl(safeReadFile(ws.ledger));
  const entries: LedgerEntry[] = [];
  const problems: LedgerProblem[] = [];
  let prev = GENESIS;
  let seq = 0;
  lines.forEach((line, i) => {
    const n = i + 1;
    let e: LedgerEntry;
    try {
      e = JSON.parse(line) as LedgerEntry;
    } catch {
      problems.push({ line: n, rule: 'not valid JSON' });
      return;
    }
    const { hash, ...rest } = e;
    if (hash !== entryHash(rest)) problems.push({ line: n, rule: `hash does not match the entry (seq ${e.seq}): it was edited` });
    if (e.prev_hash !== prev) problems.push({ line: n, rule: `prev_hash does not link to the entry before (seq ${e.seq}): a line was edited, removed or inserted` });
    if (e.seq !== seq + 1) problems.push({ line: n, rule: `seq ${e.seq} follows ${seq}` });
    prev = hash;
    seq = e.seq;
    entries.push(e);
  });
  if (torn) problems.push({ line: lines.length + 1, rule: 'torn last line (no newline): a crash during an append' });
  return { entries, problems };
}

/** Appends entries durably, one process at a time; the chain continues from the last line. */
export class Ledger {
  private readonly mutex: Mutex;

  constructor(
    private readonly ws: WorkspacePaths,
    private readonly warn: (msg: string, details: Record<string, unknown>) => void = () => undefined,
  ) {
    this.mutex = new Mutex(join(ws.locks, 'ledger.mutex'), 'the ledger');
  }

  async append(kind: LedgerKind, detail: Record<string, unknown>, runId?: string): Promise<LedgerEntry> {
    await this.mutex.acquire();
    try {
      return this.appendLocked(kind, detail, runId);
    } finally {
      this.mutex.releaseLock();
    }
  }

  /** Sets a torn last line aside in quarantine/ (what an append would do first); true when there was one. */
  async repairTail(): Promise<boolean> {
    if (!safeExists(this.ws.ledger)) return false;
    await this.mutex.acquire();
    try {
      const fd = safeOpen(this.ws.ledger, 'r+');
      try {
        const before = fstatSync(fd).size;
        this.lastEntry(fd);
        return fstatSync(fd).size !== before;
      } finally {
        closeSync(fd);
      }
    } finally {
      this.mutex.releaseLock();
    }
  }

  private appendLocked(kind: LedgerKind, detail: Record<string, unknown>, runId?: string): LedgerEntry {
    const isNew = !safeExists(this.ws.ledger);
    const fd = safeOpen(this.ws.ledger, 'a+');
    try {
      const last = this.lastEntry(fd);
      const body: Omit<LedgerEntry, 'hash'> = {
        seq: last ? last.seq + 1 : 1,
        at: new Date().toISOString(),
        kind,
        ...(runId ? { run_id: runId } : {}),
        detail,
        prev_hash: last ? last.hash : GENESIS,
      };
      const entry: LedgerEntry = { ...body, hash: entryHash(body) };
      // Whole or not at all: a short write on a full disk is cut back off (the chain stays readable).
      this.mutex.assertHeld();
      appendAll(fd, Buffer.from(`${JSON.stringify(entry)}\n`), fstatSync(fd).size);
      fdatasyncSync(fd);
      if (isNew) fsyncDir(this.ws.root);
      return entry;
    } finally {
      closeSync(fd);
    }
  }

  /** The last entry, its own hash checked; a torn tail is set aside first. */
  private lastEntry(fd: number): LedgerEntry | null {
    const size = fstatSync(fd).size;
    if (size === 0) return null;
    let chunk = 4096;
    for (;;) {
      const from = Math.max(0, size - chunk);
      const buf = readAt(fd, from, size - from);
      let end = buf.length;
      if (buf[end - 1] !== 0x0a) {
        const nl = buf.lastIndexOf(0x0a);
        if (nl < 0 && from > 0) {
          chunk *= 4;
          continue;
        }
        this.setAsideTail(fd, from + nl + 1, buf.subarray(nl + 1));
        if (nl < 0) return null;
        end = nl + 1;
      }
      const start = buf.lastIndexOf(0x0a, end - 2) + 1;
      if (start === 0 && from > 0) {
        chunk *= 4;
        continue;
      }
      const line = buf.toString('utf8', start, end - 1);
      let e: LedgerEntry;
      try {
        e = JSON.parse(line) as LedgerEntry;
      } catch {
        throw new StateCorruptError(`${this.ws.ledger}: the last entry is not valid JSON`, { hint: 'the ledger is damaged; nothing was appended' });
      }
      const { hash, ...rest } = e;
      if (hash !== entryHash(rest)) {
        throw new StateCorruptError(`${this.ws.ledger}: the last entry (seq ${e.seq}) does not verify`, { hint: 'the ledger was edited; nothing was appended' });
      }
      return e;
    }
  }

  private setAsideTail(fd: number, offset: number, bytes: Buffer): void {
    setAside(join(this.ws.quarantine, 'ledger.torn.jsonl'), [{ file: this.ws.ledger, offset, bytes, reason: 'torn tail (no newline)' }]);
    ftruncateSync(fd, offset);
    this.warn('torn last line of the ledger set aside in quarantine/', { ledger: this.ws.ledger, offset, length: bytes.length });
  }
}
