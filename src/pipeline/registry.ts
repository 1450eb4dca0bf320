/**
 * Which pipelines a workspace has: the ones its `metaspn.config.json` names under `pipelines`
 * (name to module path, relative to the workspace), each loaded and checked once per process.
 * Bundled pipelines (Season 1) keep their own commands (`metaspn s1 …`); they are listed here as such.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import type { WorkspaceConfig } from '../config/load.js';
import { DataInvalidError, MetaspnError, UsageError } from '../guard/errors.js';
import { importSettled, ImportNeverSettled } from '../runtime/import-settled.js';
import { truncate } from '../strings.js';
import type { WorkspacePaths } from '../storage/paths.js';
import { bundledPipeline, bundledPipelines } from './bundled.js';
import { PipelineDefinitionError, validatePipeline } from './plan.js';
import type { PipelineDefinition } from './types.js';

/** A pipeline as `pipeline list` shows it. */
export interface PipelineEntry {
  name: string;
  /** `bundled` (Season 1, run by `metaspn s1 …`) or `workspace` (named in metaspn.config.json). */
  source: 'bundled' | 'workspace';
  /** The module, relative to the workspace (workspace pipelines). */
  module: string | null;
}

/** Every pipeline of the workspace, bundled first, then the config's in name order. */
export function listPipelines(cfg: WorkspaceConfig): PipelineEntry[] {
  return [
    ...bundledPipelines().map((b) => ({ name: b.name, source: 'bundled' as const, module: null })),
    ...Object.keys(cfg.pipelines)
      .sort()
      .map((name) => ({ name, source: 'workspace' as const, module: cfg.pipelines[name]! })),
  ];
}

/** Every pipeline's name, bundled first (what run locks, pointers and /ops are kept per). Config that does not load: the bundled ones. */
export function pipelineNames(cfg: WorkspaceConfig | null): string[] {
  return [...bundledPipelines().map((b) => b.name), ...(cfg ? Object.keys(cfg.pipelines).sort() : [])];
}

const loaded = new Map<string, Promise<PipelineDefinition>>();

/**
 * Loads and checks a workspace pipeline by name.
 * @throws UsageError (64) for a name the config does not list (naming the ones it does) or a
 *   bundled one (it has its own commands); DataInvalidError (20) naming the config file when the
 *   module path leaves the workspace or does not exist; PipelineDefinitionError (64) when the
 *   module's export breaks a rule; MetaspnError INTERNAL_ERROR (50) when the module throws on import.
 */
export function loadPipeline(ws: WorkspacePaths, cfg: WorkspaceConfig, name: string): Promise<PipelineDefinition> {
  const bundled = bundledPipeline(name);
  if (bundled) throw new UsageError(`pipeline ${name} is bundled: run it with \`${bundled.command}\``);
  // Own keys only: `constructor` or `__proto__` is no pipeline of the config, not a property of every object.
  const rel = Object.hasOwn(cfg.pipelines, name) ? cfg.pipelines[name] : undefined;
  if (rel === undefined) {
    const known = Object.keys(cfg.pipelines);
    throw new UsageError(`no pipeline ${truncate(name, 80)} in ${cfg.file}`, {
      hint: known.length ? `pipelines: ${known.join(', ')}` : 'add "pipelines": {"<name>": "./path/module.js"} to metaspn.config.json',
    });
  }
  const path = modulePath(ws, cfg, name, rel);
  let p = loaded.get(path);
  if (!p) {
    p = importDefinition(path, name);
    loaded.set(path, p);
  }
  return p;
}

function modulePath(ws: WorkspacePaths, cfg: WorkspaceConfig, name: string, rel: string): string {
  const bad = (rule: string): DataInvalidError => new DataInvalidError(cfg.file, null, `pipelines.${name}: ${rule}`);
  if (isAbsolute(rel)) throw bad(`${rel} must be a path relative to the workspace`);
  const path = resolve(ws.root, rel);
  if (!existsSync(path)) throw bad(`${rel} does not exist`);
  if (/\.(c|m)?tsx?$/.test(rel)) throw bad(`${rel} is TypeScript, which Node 20 does not run: compile it to .js (tsc) and name the .js file`);
  if (statSync(path).isDirectory()) throw bad(`${rel} is a folder, not a module file`);
  if (!/\.(c|m)?js$/.test(rel)) throw bad(`${rel} is not a JavaScript module file (.js, .mjs or .cjs)`);
  // The module and the folders to it stay inside the workspace, links resolved.
  const inside = relative(realpathSync(ws.root), realpathSync(path));
  if (inside.startsWith('..') || isAbsolute(inside)) throw bad(`${rel} leads outside the workspace`);
  return path;
}

async function importDefinition(path: string, name: string): Promise<PipelineDefinition> {
  let mod: Record<string, unknown>;
  try {
    mod = await importSettled(path, (file) => new DataInvalidError(file, null, `pipeline ${name}: the module's top-level await never settles (nothing is left that could settle it)`));
  } catch (err) {
    if (err instanceof ImportNeverSettled) throw err.error;
    // definePipeline checks the definition while the module loads: a broken rule is a usage error
    // (64, one line), not a failure of the import. By name too: the module may load another copy of metaspn.
    if (err instanceof PipelineDefinitionError || (err as Error)?.name === 'PipelineDefinitionError') throw new UsageError(`${(err as Error).message} (${path})`);
    // The module imports `metaspn`, which its folder cannot resolve: say how to make it resolvable.
    const e = err as NodeJS.ErrnoException;
    if (e?.code === 'ERR_MODULE_NOT_FOUND' && /['"]metaspn['"]/.test(e.message ?? '')) {
      throw new UsageError(`pipeline ${name}: ${path} imports metaspn, which is not installed where the module can find it`, {
        hint: 'install it in the workspace (npm install metaspn), or link this copy (npm link, then npm link metaspn in the workspace)',
      });
    }
    // A syntax error is the module file's fault (20, fix the named line), not ours. Node 20 does
    // not say where an ES module's syntax error is; `node --check` does, for the module itself.
    // A SyntaxError the module's code threw while it ran (JSON.parse of bad text, new Function)
    // is a throw on import like any other: its stack has a frame in a module file.
    if ((err instanceof SyntaxError || (err as Error)?.name === 'SyntaxError') && !/\n\s+at (.*\()?(file:\/\/|\/)/.test((err as Error).stack ?? '')) {
      const at = syntaxErrorAt(path);
      throw new DataInvalidError(at?.file ?? path, at?.line ?? null, `pipeline ${name}: ${(err as Error).message} (the module does not parse)`);
    }
    throw new MetaspnError('INTERNAL_ERROR', `pipeline ${name}: importing ${path} failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  }
  const def = (mod.default ?? mod.pipeline) as PipelineDefinition | undefined;
  if (!def || typeof def !== 'object') throw new UsageError(`pipeline ${name}: ${path} exports no pipeline (export default definePipeline({...}))`);
  validatePipeline(def);
  if (def.name !== name) throw new UsageError(`pipeline ${name}: ${path} defines pipeline ${def.name}; the config names it ${name}`);
  return def;
}

/** Where `node --check` finds a syntax error in the module file, or null (it parses, or no line given). */
function syntaxErrorAt(path: string): { file: string; line: number } | null {
  const r = spawnSync(process.execPath, ['--check', path], { encoding: 'utf8', timeout: 10_000 });
  const m = /^(.+):(\d+)\r?\n/.exec(r.stderr ?? '');
  return r.status !== 0 && m ? { file: m[1]!, line: Number(m[2]) } : null;
}
