import { createHash } from 'node:crypto';
import { join, relative } from 'node:path';
import { rowsByKey } from '../storage/store/plain-lines.js';
import type { WorkspaceConfig } from '../config/load.js';
import { MetaspnError } from '../guard/errors.js';
import { EXIT } from '../guard/exit-codes.js';
import { fileDeps } from '../pipeline/file-deps.js';
import { validatePipeline } from '../pipeline/plan.js';
import { loadPipeline } from '../pipeline/registry.js';
import { staleness } from '../pipeline/staleness.js';
import type { PipelineDefinition } from '../pipeline/types.js';
import { silentLogger } from '../log.js';
import type { WorkspacePaths } from '../storage/paths.js';
import { pointerPath, type CurrentPointer } from '../storage/pointers.js';
import { StateFileError } from '../storage/state-file.js';
import type { Findings } from './finding.js';

/** The workspace's own pipelines (config `pipelines`), each loaded; one that does not load is a finding. */
export async function workspacePipelines(ws: WorkspacePaths, cfg: WorkspaceConfig, f: Findings): Promise<PipelineDefinition[]> {
  const out: PipelineDefinition[] = [];
  for (const [name, module] of Object.entries(cfg.pipelines)) {
    try {
      out.push(await loadPipeline(ws, cfg, name));
    } catch (err) {
      if (!(err instanceof MetaspnError)) throw err;
      // Nothing on disk is corrupt: the module (or its entry) is bad input, as a config that does not load is (20, not 30).
      f.error(
        'pipeline',
        module,
        `pipeline ${name} does not load: ${err.message}`,
        `fix the module or its entry in ${relative(ws.root, cfg.file)}; \`metaspn pipeline show ${name}\` says the same`,
        EXIT.DATA_INVALID,
      );
    }
  }
  return out;
}

/**
 * sha256 of a step's rows of one partition and identity in id order, as the row store computes it,
 * read straight from the file: doctor reads, it never updates the store's index.
 */
function rowsDigest(ws: WorkspacePaths, location: string, date: string, identity: string): string {
  const key = `${date}|${identity}`;
  const rows = rowsByKey(join(ws.root, location), new Set([key]), (r) => `${r.date as string}|${r.identity as string}`).get(key) ?? [];
  const h = createHash('sha256');
  for (const r of rows.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) h.update(`${r.text}\n`);
  return h.digest('hex');
}

/**
 * For each published partition of a workspace pipeline: its pointer reads back, every step of the
 * run it names succeeded and its rows still hash as the manifest recorded; and it is not stale
 * (an input or an upstream partition changed since it was published: a run now would restate it).
 */
export async function checkPipelines(ws: WorkspacePaths, defs: readonly PipelineDefinition[], cfg: WorkspaceConfig, f: Findings): Promise<void> {
  for (const def of defs) {
    // Read-only: doctor reads rows straight from their files, writing nothing (not even an index).
    const d = fileDeps(ws, cfg, silentLogger, { readOnly: true });
    try {
      for (const date of await d.stores.pointers.partitions(def.name)) {
        const rel = relative(ws.root, pointerPath(ws, def.name, date));
        let ptr: (CurrentPointer & { steps?: Record<string, string> }) | null;
        try {
          ptr = await d.stores.pointers.read(def.name, date);
        } catch (err) {
          if (!(err instanceof StateFileError)) throw err;
          f.error('pointer', rel, err.message.slice(err.path.length + 2), '`metaspn doctor --repair` rewrites it from the ledger');
          continue;
        }
        if (!ptr) continue;
        let whole = true;
        for (const s of validatePipeline(def)) {
          const m = (await d.stores.manifests.list(def.name, s.name, date)).find((x) => x.run_id === ptr.run_id);
          const identity = ptr.steps?.[s.name];
          if (!m || m.status !== 'success' || !identity) {
            f.error(
              'pointer',
              rel,
              `names run ${ptr.run_id}, which has no successful ${s.name} manifest`,
              `re-run it (metaspn pipeline run ${def.name} --workspace ${ws.root} --date ${date}) or roll the pointer back`,
            );
            whole = false;
            break;
          }
          const location = d.stores.rows(def.name, s.name).location;
          if (rowsDigest(ws, location, date, identity) !== m.outputs[0]?.sha256) {
            f.error(
              'manifest',
              `manifests/${s.name}/date=${date}/run=${ptr.run_id}/manifest.json`,
              `its recorded output hash no longer matches ${location} for ${date}`,
              'the store changed under a published run: restore it from a backup, then run doctor again',
            );
            whole = false;
          }
        }
        if (!whole) continue;
        const st = await staleness(def, { partition: date, as_of: ptr.params.as_of, provisional: false }, d);
        if (st.state === 'stale') {
          f.warn(
            'stale',
            rel,
            `${def.name} ${date} is stale: ${st.changed.join(', ')} would run with other inputs now (an input or an upstream partition changed since run ${ptr.run_id} was published)`,
            `re-run it: metaspn pipeline run ${def.name} --workspace ${ws.root} --date ${date} (or pipeline backfill --resume over the range)`,
          );
        }
      }
    } finally {
      await d.stores.close();
    }
  }
}
