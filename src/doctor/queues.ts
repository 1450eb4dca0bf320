import { closeSync, existsSync, fstatSync, openSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { DeadLetterFiles } from '../queue/file/deadletter-files.js';
import { LoadedLog } from '../queue/file/loader.js';
import { listGens, logPath } from '../queue/file/log-io.js';
import { ownerAlive } from '../queue/owner.js';
import { deadletterDir, queueDir, type WorkspacePaths } from '../storage/paths.js';
import type { Findings } from './finding.js';

/** Every queue folder of the workspace. */
export function queueNames(ws: WorkspacePaths): string[] {
  const names = new Set<string>();
  for (const root of [ws.queues, ws.deadletters]) {
    if (!existsSync(root)) continue;
    for (const d of readdirSync(root, { withFileTypes: true })) if (d.isDirectory()) names.add(d.name);
  }
  return [...names].sort();
}

/**
 * Reads one queue without its lock (nothing is changed): checksums, a torn tail, leftovers of a
 * crashed compaction, records refused on replay, leases of dead owners or past their expiry, and
 * dead-letter files against the log. Returns whether `repair` has something to do.
 */
export function checkQueue(ws: WorkspacePaths, name: string, f: Findings, now = Date.now()): boolean {
  const dir = queueDir(ws, name);
  const rel = (p: string): string => relative(ws.root, p);
  const gens = listGens(dir);
  let repairable = false;
  if (gens.length > 1) {
    f.warn('queue', rel(dir), `${gens.length} log generations (a compaction was interrupted)`, 'the older ones are removed by the next writer, or by --repair');
    repairable = true;
  }
  if (existsSync(dir) && readdirSync(dir).some((x) => x.endsWith('.tmp'))) {
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
  const fd = openSync(path, 'r');
  try {
    const log = new LoadedLog(() => fd);
    const tail = log.readMore();
    if (tail > 0) {
      f.error('queue', rel(path), `torn last line: ${tail} bytes without a newline at offset ${log.end} (a writer died mid-append)`, '--repair sets the bytes aside in quarantine/ and cuts them off');
      repairable = true;
    }
    if (log.corrupt.length) {
      const where = log.corrupt.slice(0, 5).map((c) => c.offset).join(', ');
      f.error('queue', rel(path), `${log.corrupt.length} record(s) fail their checksum (offsets ${where}${log.corrupt.length > 5 ? ', …' : ''}); they are skipped`, '--repair compacts the log, setting them aside in quarantine/');
      repairable = true;
    }
    if (log.idx.refused > 0) f.info('queue', rel(path), `${log.idx.refused} record(s) refused on replay (stale leases, races lost): harmless`);
    const t = log.idx.slots;
    let expired = 0;
    let gone = 0;
    for (const n of log.idx.leased) {
      const o = log.idx.ownerOf(n);
      if (o && !ownerAlive(o)) gone++;
      else if (t.time[n]! <= now) expired++;
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
      f.warn('deadletter', rel(files.dir), `${missing.length} dead-letter file(s) missing or unreadable, ${orphans.length} for tasks no longer dead`, 'the log is the authority: --repair (or any queue command) rewrites them from it');
      repairable = true;
    }
    if (fstatSync(fd).size > 0 && !existsSync(join(dir, 'stats.json'))) f.info('queue', rel(dir), 'no stats.json: queue stats replays the log until the next write');
  } finally {
    closeSync(fd);
  }
  return repairable;
}
