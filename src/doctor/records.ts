import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { rowsByKey } from '../storage/store/plain-lines.js';
import { join, relative } from 'node:path';
import { acquireRunLock } from '../storage/run-lock.js';
import { readLedger } from '../storage/ledger.js';
import { manifestsOf, readManifest } from '../storage/manifest.js';
import type { WorkspacePaths } from '../storage/paths.js';
import { MetaspnError } from '../guard/errors.js';
import { safeReaddir } from '../storage/safe-path.js';
import { damagedPointers, pointerDates, pointerPath, readPointer, writePointer } from '../storage/pointers.js';
import { quarantineFile, StateFileError } from '../storage/state-file.js';
import { paramsKey } from '../storage/store/artifact-store.js';
import { alertStatePath, readAlertState } from '../ops/alerts/state.js';
import { readRunStartFile, runStartFiles } from '../ops/run-start.js';
import { eventFiles, readEventRecord } from '../ops/signature.js';
import { pointerHistory, pointersAt } from '../pipeline/pointer-history.js';
import type { Findings } from './finding.js';

const NOT_STEPS = new Set(['current', 'backfills']);

/** What --repair does with a damaged file of each kind. */
const FIX = {
  manifest: '--repair moves it to quarantine/ (restore it from a backup instead if you have one); its run then lacks that step, so re-run the date if it was published',
  pointer: '--repair rewrites it from the ledger (the damaged file goes to quarantine/)',
  pointerNoLedger: 'the ledger records no publish of this date: --repair moves it to quarantine/ (the date then has no current run; re-run it to publish)',
  event: '--repair moves it to quarantine/; the event can then be submitted again (task ids derived from payloads are not enqueued twice)',
  runStart: '--repair moves it to quarantine/ (it only tells how a run started from the server went)',
  alertState: '--repair moves it to quarantine/; the next alert check starts afresh and sends the open alerts again',
};

/** Why a state file read failed, without its path (the finding names it). */
function why(err: StateFileError): string {
  return err.message.slice(err.path.length + 2);
}

/** Every manifest of the workspace: paths of the damaged ones. */
function damagedManifests(ws: WorkspacePaths): StateFileError[] {
  const out: StateFileError[] = [];
  for (const step of safe(ws.manifests)) {
    if (NOT_STEPS.has(step)) continue;
    for (const d of safe(join(ws.manifests, step))) {
      for (const r of safe(join(ws.manifests, step, d))) {
        try {
          readManifest(join(ws.manifests, step, d, r, 'manifest.json'));
        } catch (err) {
          if (!(err instanceof StateFileError)) throw err;
          out.push(err);
        }
      }
    }
  }
  return out;
}

/** Every manifest parses, has the schema's fields and lies in the folder of its step, date and run. */
export function checkManifests(ws: WorkspacePaths, f: Findings): void {
  for (const err of damagedManifests(ws)) f.error('manifest', relative(ws.root, err.path), why(err), FIX.manifest);
}

/** Reads each file with `read`; the damaged ones. */
function damaged(files: string[], read: (path: string) => unknown): StateFileError[] {
  const out: StateFileError[] = [];
  for (const p of files) {
    try {
      read(p);
    } catch (err) {
      if (!(err instanceof StateFileError)) throw err;
      out.push(err);
    }
  }
  return out;
}

/** The server's records: event ids answered, runs started from it, the alert state. */
export function checkOpsRecords(ws: WorkspacePaths, f: Findings): void {
  for (const err of damaged(eventFiles(ws), readEventRecord)) f.error('ops', relative(ws.root, err.path), why(err), FIX.event);
  for (const err of damaged(runStartFiles(ws), readRunStartFile)) f.error('ops', relative(ws.root, err.path), why(err), FIX.runStart);
  for (const err of damaged([alertStatePath(ws)], () => readAlertState(ws))) f.error('ops', relative(ws.root, err.path), why(err), FIX.alertState);
}

/**
 * Repairs damaged state files; nothing is deleted. A damaged pointer is rewritten from the ledger
 * (which records every publish and rollback) under the run lock, so no run publishes meanwhile;
 * when the ledger does not verify it is left alone. Damaged manifests and ops records go to
 * quarantine/. Returns what could not be done (e.g. the run lock is held).
 */
export async function repairRecords(ws: WorkspacePaths, pipeline: string, log: Logger): Promise<string[]> {
  const left: string[] = [];
  const badPointers = damagedPointers(ws, pipeline);
  if (badPointers.length) {
    const ledger = readLedger(ws);
    if (ledger.problems.length) {
      left.push('damaged pointers are not rewritten while the ledger does not verify');
    } else {
      let lock;
      try {
        lock = await acquireRunLock({
          locksDir: ws.locks,
          name: pipeline,
          cmd: 'metaspn doctor --repair',
          reason: 'doctor --repair: rewriting damaged pointers from the ledger',
          onLockHeld: 'retryable',
          log,
        });
      } catch (err) {
        left.push(`damaged pointers not rewritten: ${(err as Error).message}`);
      }
      if (lock) {
        try {
          const now = pointersAt(pointerHistory(readLedger(ws).entries, pipeline).current);
          for (const err of badPointers) {
            const date = err.path.slice(err.path.lastIndexOf('date=') + 5, -'.json'.length);
            const to = quarantineFile(ws, err.path);
            const ptr = now.get(date);
            if (ptr) writePointer(ws, ptr);
            log.warn(
              { event: 'pointer_repaired', date, pointer: relative(ws.root, err.path), quarantined: relative(ws.root, to), run_id: ptr?.run_id ?? null },
              ptr ? `pointer of ${date} rewritten from the ledger` : `pointer of ${date} set aside (no publish in the ledger)`,
            );
          }
        } finally {
          await lock.release();
        }
      }
    }
  }
  const rest = [...damagedManifests(ws), ...damaged(eventFiles(ws), readEventRecord), ...damaged(runStartFiles(ws), readRunStartFile), ...damaged([alertStatePath(ws)], () => readAlertState(ws))];
  for (const err of rest) {
    const to = quarantineFile(ws, err.path);
    log.warn({ event: 'state_file_quarantined', file: relative(ws.root, err.path), quarantined: relative(ws.root, to), error: why(err) }, `${relative(ws.root, err.path)} moved to quarantine/`);
  }
  return left;
}

/**
 * Each current pointer names a run whose four steps succeeded, and whose recorded output hashes
 * still match the store: what is published is what the manifests say was written. Reads the
 * store files directly (one pass each), so a check never changes anything.
 */
export async function checkPointers(ws: WorkspacePaths, pipeline: string, stores: Record<string, string>, f: Findings): Promise<void> {
  const wanted: { date: string; rel: string; run: string; p: string; step: string; file: string; sha: string | undefined }[] = [];
  let inLedger: Map<string, unknown> | null = null;
  for (const date of pointerDates(ws, pipeline)) {
    const rel = relative(ws.root, pointerPath(ws, pipeline, date));
    let ptr;
    try {
      ptr = readPointer(ws, pipeline, date);
    } catch (err) {
      if (!(err instanceof StateFileError)) throw err;
      inLedger ??= pointersAt(pointerHistory(readLedger(ws).entries, pipeline).current);
      f.error('pointer', rel, why(err), inLedger.has(date) ? FIX.pointer : FIX.pointerNoLedger);
      continue;
    }
    if (!ptr) continue;
    for (const [step, file] of Object.entries(stores)) {
      // Damaged manifests are reported by checkManifests.
      const m = manifestsOf(ws, step, date, () => undefined).find((x) => x.run_id === ptr.run_id);
      if (!m || m.status !== 'success') {
        f.error('pointer', rel, `names run ${ptr.run_id}, which has no successful ${step} manifest`, 're-run the date (metaspn s1 run-local) or roll the pointer back');
        break;
      }
      // Each step's rows carry that step's params (S1: stages 3-4 add the counted digest), as its manifest records them.
      wanted.push({ date, rel, run: ptr.run_id, p: paramsKey(m.params), step, file, sha: m.outputs[0]?.sha256 });
    }
  }
  for (const file of new Set(wanted.map((w) => w.file))) {
    const mine = wanted.filter((w) => w.file === file);
    const digests = storeDigests(join(ws.store, file), new Set(mine.map((w) => `${w.date}|${w.p}`)));
    for (const w of mine) {
      if (digests.get(`${w.date}|${w.p}`) !== w.sha) {
        f.error(
          'manifest',
          relative(ws.root, join(ws.manifests, w.step, `date=${w.date}`, `run=${w.run}`, 'manifest.json')),
          `its recorded output hash no longer matches ${file} for ${w.date}`,
          'the store changed under a published run: restore the store from a backup, then run doctor again',
        );
      }
    }
  }
}

/** sha256 of the rows of each wanted (date, params) in id order, as ArtifactStore.digest computes it. */
function storeDigests(path: string, keys: ReadonlySet<string>): Map<string, string> {
  const rows = rowsByKey(path, keys);
  const out = new Map<string, string>();
  for (const key of keys) {
    const list = (rows.get(key) ?? []).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const h = createHash('sha256');
    for (const r of list) h.update(`${r.text}\n`);
    out.set(key, h.digest('hex'));
  }
  return out;
}

export function checkLedger(ws: WorkspacePaths, f: Findings): { tornTail: boolean } {
  const read = readLedger(ws);
  let tornTail = false;
  for (const p of read.problems) {
    if (p.rule.startsWith('torn last line')) {
      tornTail = true;
      f.error('ledger', 'ledger.jsonl', `line ${p.line}: ${p.rule}`, '--repair sets the torn bytes aside in quarantine/');
    } else {
      f.error('ledger', 'ledger.jsonl', `line ${p.line}: ${p.rule}`, 'not repairable: keep the file for audit; compare with backups (rollback --strict refuses while it fails)');
    }
  }
  return { tornTail };
}

/** A folder's names; [] when it is missing or not a folder. A link is refused (30), never listed through. */
function safe(dir: string): string[] {
  try {
    return safeReaddir(dir);
  } catch (err) {
    if (err instanceof MetaspnError) throw err;
    return [];
  }
}
