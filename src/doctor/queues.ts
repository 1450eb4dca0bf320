import { closeSync, fstatSync } from 'node:fs';
import { join, relative } from 'node:path';
import { DeadLetterFiles } from '../queue/file/deadletter-files.js';
import { LoadedLog, QueueLogConflictError } from '../queue/file/loader.js';
import { listGens, logPath } from '../queue/file/log-io.js';
import { bootAlive, type QueueClock } from '../queue/clock.js';
import { HOST, ownerAlive } from '../queue/owner.js';
import { systemClock } from '../queue/system-clock.js';
import type { ConflictRepair } from '../queue/file/salvage.js';
import { deadletterDir, queueDir, queueFolders, type WorkspacePaths } from '../storage/paths.js';
import { safeExists, safeOpen, safeReaddir } from '../storage/safe-path.js';
import type { Findings } from './finding.js';

/** Every queue folder of the workspace, dead letters' included. */
export function queueNames(ws: WorkspacePaths): string[] {
  return queueFolders(ws, { deadLetters: true });
}

/**
 * Reads one queue without its lock (nothing is changed): checksums, a torn tail, leftovers of a
 * crashed compaction, records refused on replay, a replay conflict (a record no writer holding the
 * lock writes: the queue is unusable until repaired), leases of dead owners or past their expiry,
 * and dead-letter files against the log. Returns whether `repair` has something to do.
 */
export function checkQueue(ws: WorkspacePaths, name: string, f: Findings, clock: QueueClock = systemClock): boolean {
  const dir = queueDir(ws, name);
  const rel = (p: string): string => relative(ws.root, p);
  const gens = listGens(dir);
  let repairable = false;
  if (gens.length > 1) {
    f.warn('queue', rel(dir), `${gens.length} log generations (a compaction was interrupted)`, 'the older ones are removed by the next writer, or by --repair');
    repairable = true;
  }
  if (safeReaddir(dir).some((x) => x.endsWith('.tmp'))) {
    f.warn('queue', rel(dir), 'a temporary file of an interrupted compaction', '--repair removes it (the highest whole generation is the log)');
    repairable = true;
  }
  const gen = gens[gens.length - 1];
  const files = new DeadLetterFiles(deadletterDir(ws, name));
  if (gen === undefined) {
    if (files.ids().length) f.warn('deadletter', rel(files.dir), `${files.ids().length} dead-letter file(s) but no queue log`, 'they are orphans: keep them for reference or move them away');
    return repairable;
  }
  const path = logPath(dir, gen);
  const fd = safeOpen(path, 'r');
  try {
    const log = new LoadedLog(() => fd, path, clock);
    let tail: number;
    try {
      tail = log.readMore();
    } catch (err) {
      if (!(err instanceof QueueLogConflictError)) throw err;
      const c = err.conflict;
      f.error(
        'queue',
        rel(path),
        `replay conflict at byte ${c.offset} (${c.record} record): ${c.reason}; no writer holding the queue's lock writes that, so every operation on this queue exits 30 until it is repaired`,
        `stop the workers of this queue, then \`metaspn doctor --workspace ${ws.root} --repair\`: it keeps every task (one placed in a taken slot gets a slot of its own), makes the tasks involved ready again (they may run twice; artifacts dedupe by id) and writes the queue as a new log generation`,
      );
      // The rest of the checks read the state, which is not to be trusted.
      return true;
    }
    if (tail > 0) {
      f.error('queue', rel(path), `torn last line: ${tail} bytes without a newline at offset ${log.end} (a writer died mid-append)`, '--repair sets the bytes aside in quarantine/ and cuts them off');
      repairable = true;
    }
    if (log.corrupt.length) {
      const where = log.corrupt
        .slice(0, 5)
        .map((c) => c.offset)
        .join(', ');
      f.error(
        'queue',
        rel(path),
        `${log.corrupt.length} record(s) fail their checksum (offsets ${where}${log.corrupt.length > 5 ? ', …' : ''}); they are skipped`,
        '--repair compacts the log, setting them aside in quarantine/',
      );
      repairable = true;
    }
    if (log.idx.refused > 0) f.info('queue', rel(path), `${log.idx.refused} record(s) refused on replay (stale leases, races lost): harmless`);
    const t = log.idx.slots;
    let expired = 0;
    let gone = 0;
    for (const n of log.idx.leased) {
      const o = log.idx.ownerOf(n);
      // Gone: its process is dead, or it ran on this host before the last reboot (as the queue's own reclaim judges).
      const boot = log.idx.ownerBoots[log.idx.slots.owner[n]!] ?? null;
      if (o && (!ownerAlive(o) || (o.host === HOST && !bootAlive(boot, log.idx.me)))) gone++;
      // Lease expiries are on the monotonic timeline of the replay (a wall-clock step expires nothing).
      else if (t.time[n]! <= log.idx.me.mono) expired++;
    }
    if (gone || expired) {
      f.warn('queue', rel(path), `${gone} lease(s) held by a process that is gone, ${expired} past their expiry`, 'the next claim hands them out again (attempt counted); --repair does it now');
      repairable = true;
    }
    const deadIds = new Set<string>();
    for (const n of log.idx.deadSlots) {
      const rec = log.recordAt(n) as { task?: { id?: string } } | null;
      if (rec?.task?.id) deadIds.add(rec.task.id);
    }
    const onDisk = new Set(files.ids());
    const missing = [...deadIds].filter((id) => !onDisk.has(id) || files.read(id) === null);
    const orphans = [...onDisk].filter((id) => !deadIds.has(id));
    if (missing.length || orphans.length) {
      f.warn(
        'deadletter',
        rel(files.dir),
        `${missing.length} dead-letter file(s) missing or unreadable, ${orphans.length} for tasks no longer dead`,
        'the log is the authority: --repair (or any queue command) rewrites them from it',
      );
      repairable = true;
    }
    if (fstatSync(fd).size > 0 && !safeExists(join(dir, 'stats.json'))) f.info('queue', rel(dir), 'no stats.json: queue stats replays the log until the next write');
  } finally {
    closeSync(fd);
  }
  return repairable;
}

/** The ids of a list, the first few of them: a report line stays readable with a million. */
function some(ids: readonly string[], max = 10): string {
  return ids.length <= max ? ids.join(', ') : `${ids.slice(0, max).join(', ')}, … (${ids.length} in all)`;
}

/** What `--repair` did to a queue log that held a conflict, as report lines (one per kind of action taken). */
export function noteSalvage(ws: WorkspacePaths, done: ConflictRepair, f: Findings): void {
  const rel = relative(ws.root, done.file);
  const s = done.salvage;
  f.info('queue', rel, `--repair salvaged the log after the replay conflict at byte ${done.conflict.offset}; every task kept, written as ${relative(ws.root, done.generation)}`);
  if (s.relocated.length) {
    const moved = s.relocated.map((x) => `${x.id} (byte ${x.offset}: slot ${x.slot}, taken by ${x.displaced ?? 'another task'})`);
    f.info('queue', rel, `${s.relocated.length} task(s) placed in a taken slot kept in a slot of their own: ${some(moved)}`);
  }
  if (s.duplicates.length) f.info('queue', rel, `${s.duplicates.length} id(s) placed again kept once: ${some(s.duplicates.map((x) => `${x.id} (byte ${x.offset})`))}`);
  if (s.made_ready.length)
    f.info(
      'queue',
      rel,
      `${s.made_ready.length} task(s) the conflict touched made ready again (they may run twice; artifacts dedupe by id): ${some(s.made_ready.map((x) => `${x.id} (was ${x.was})`))}`,
    );
  if (s.left.length)
    f.info(
      'queue',
      rel,
      `${s.left.length} task(s) the conflict touched left as they were (dead-lettered, or completed with only a tombstone left): ${some(s.left.map((x) => `${x.id} (${x.state})`))}`,
    );
  if (s.impossible.length) {
    const kept = s.impossible.filter((x) => x.kept).length;
    f.info(
      'queue',
      rel,
      `${s.impossible.length} record(s) holding impossible values (${kept} task(s) kept as ready, the other records skipped): ${some(
        s.impossible.map((x) => `byte ${x.offset}: ${x.reason}`),
        5,
      )}`,
    );
  }
  if (s.skipped) f.info('queue', rel, `${s.skipped} record(s) or lease(s) naming no task skipped`);
}
