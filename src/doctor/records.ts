import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync } from 'node:fs';
import { readWith } from '../queue/file/log-io.js';
import { plainScanner } from '../storage/store/plain-lines.js';
import { join, relative } from 'node:path';
import { readLedger } from '../storage/ledger.js';
import { manifestsOf, readManifest } from '../storage/manifest.js';
import type { WorkspacePaths } from '../storage/paths.js';
import { pointerDates, pointerPath, readPointer } from '../storage/pointers.js';
import { paramsKey } from '../storage/store/artifact-store.js';
import type { Findings } from './finding.js';

const REQUIRED = ['schema_version', 'run_id', 'step', 'date', 'as_of', 'params', 'status', 'started_at', 'finished_at', 'tasks', 'inputs', 'outputs', 'checks', 'exit_code'];
const NOT_STEPS = new Set(['current', 'backfills']);

/** Every manifest parses and has the schema's fields. */
export function checkManifests(ws: WorkspacePaths, f: Findings): void {
  if (!existsSync(ws.manifests)) return;
  for (const step of readdirSync(ws.manifests)) {
    if (NOT_STEPS.has(step)) continue;
    for (const d of safe(join(ws.manifests, step))) {
      for (const r of safe(join(ws.manifests, step, d))) {
        const path = join(ws.manifests, step, d, r, 'manifest.json');
        if (!existsSync(path)) continue;
        const m = readManifest(path);
        const rel = relative(ws.root, path);
        if (!m) {
          f.error('manifest', rel, 'not valid JSON', 'manifests are written atomically, so this one was changed by hand: restore it from a backup');
          continue;
        }
        const missing = REQUIRED.filter((k) => !(k in m));
        if (missing.length) f.error('manifest', rel, `missing field(s): ${missing.join(', ')}`, 'restore it from a backup');
      }
    }
  }
}

/**
 * Each current pointer names a run whose four steps succeeded, and whose recorded output hashes
 * still match the store: what is published is what the manifests say was written. Reads the
 * store files directly (one pass each), so a check never changes anything.
 */
export async function checkPointers(ws: WorkspacePaths, pipeline: string, stores: Record<string, string>, f: Findings): Promise<void> {
  const wanted: { date: string; rel: string; run: string; p: string; step: string; file: string; sha: string | undefined }[] = [];
  for (const date of pointerDates(ws, pipeline)) {
    const rel = relative(ws.root, pointerPath(ws, pipeline, date));
    let ptr;
    try {
      ptr = readPointer(ws, pipeline, date);
    } catch {
      f.error('pointer', rel, 'not valid JSON', 'pointers are replaced atomically, so it was changed by hand: `metaspn s1 rollback --to-hash` rewrites it from the ledger');
      continue;
    }
    if (!ptr) continue;
    for (const [step, file] of Object.entries(stores)) {
      const m = manifestsOf(ws, step, date).find((x) => x.run_id === ptr.run_id);
      if (!m || m.status !== 'success') {
        f.error('pointer', rel, `names run ${ptr.run_id}, which has no successful ${step} manifest`, 're-run the date (metaspn s1 run-local) or roll the pointer back');
        break;
      }
      wanted.push({ date, rel, run: ptr.run_id, p: paramsKey(ptr.params), step, file, sha: m.outputs[0]?.sha256 });
    }
  }
  for (const file of new Set(wanted.map((w) => w.file))) {
    const mine = wanted.filter((w) => w.file === file);
    const digests = storeDigests(join(ws.store, file), new Set(mine.map((w) => `${w.date}|${w.p}`)));
    for (const w of mine) {
      if (digests.get(`${w.date}|${w.p}`) !== w.sha) {
        f.error('manifest', relative(ws.root, join(ws.manifests, w.step, `date=${w.date}`, `run=${w.run}`, 'manifest.json')), `its recorded output hash no longer matches ${file} for ${w.date}`, 'the store changed under a published run: restore the store from a backup, then run doctor again');
      }
    }
  }
}

/** sha256 of the rows of each wanted (date, params) in id order, as ArtifactStore.digest computes it. */
function storeDigests(path: string, keys: ReadonlySet<string>): Map<string, string> {
  const rows = new Map<string, { id: string; text: string }[]>();
  if (existsSync(path)) {
    const fd = openSync(path, 'r');
    try {
      readWith(
        fd,
        0,
        plainScanner((l) => {
          const r = l.row;
          if (!r || typeof r.id !== 'string' || typeof r.date !== 'string') return;
          const key = `${r.date}|${paramsKey(r.params)}`;
          if (!keys.has(key)) return;
          (rows.get(key) ?? rows.set(key, []).get(key)!).push({ id: r.id, text: l.text });
        }),
      );
    } finally {
      closeSync(fd);
    }
  }
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

function safe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

