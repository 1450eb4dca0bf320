import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { nearest } from '../config/nearest.js';
import { UsageError } from '../guard/errors.js';
import { bundledPipelines } from '../pipeline/bundled.js';
import { importSettled, ImportNeverSettled } from './import-settled.js';
import type { WorkerDefinition } from './worker-api.js';

/** Worker modules of the bundled pipelines, by the dotted name the runbooks use, as file URLs. */
function bundledModules(): Record<string, string> {
  return Object.assign({}, ...bundledPipelines().map((p) => p.workerModules ?? {})) as Record<string, string>;
}

/** Queues of the bundled pipelines: `queue stats <name>` knows them before any task exists. */
export function bundledQueues(): string[] {
  return bundledPipelines().flatMap((p) => [...(p.queues ?? [])]);
}

/**
 * A worker spec with a bundled module name replaced by its file URL: what an isolate (a thread or
 * a child process, where nothing is registered) can load. Other specs are returned as they are.
 */
export function resolveWorkerSpec(spec: string): string {
  const at = spec.lastIndexOf(':');
  const url = at > 0 ? bundledModules()[spec.slice(0, at)] : undefined;
  return url ? `${url}:${spec.slice(at + 1)}` : spec;
}

/**
 * Resolves `<module>:<Export>`: a bundled module (`metaspn_ops.workers.s1:ProjectRewardsWorker`)
 * or a user's file (`./path/to/worker.js:MyWorker`, relative to `cwd`). The export may be a class
 * (instantiated with no arguments) or an object with `name` and `handle`.
 */
export async function loadWorker(spec: string, cwd = process.cwd()): Promise<WorkerDefinition> {
  const at = spec.lastIndexOf(':');
  if (at <= 0 || at === spec.length - 1) {
    throw new UsageError(`worker spec "${spec}" must be <module>:<Export>`, {
      hint: 'e.g. metaspn_ops.workers.s1:ProjectRewardsWorker or ./workers/mine.js:MyWorker',
    });
  }
  const modName = spec.slice(0, at);
  const exportName = spec.slice(at + 1);
  const mod = await importModule(modName, cwd);
  const exported = mod[exportName];
  if (exported === undefined) {
    const names = Object.keys(mod).filter((k) => k !== 'default');
    const near = nearest(exportName, names);
    throw new UsageError(`module ${modName} has no export "${exportName}"${near ? `: did you mean ${near}?` : ''}`, { hint: `exports: ${names.join(', ') || '(none)'}` });
  }
  const worker = instantiate(exported);
  if (!worker || typeof worker.handle !== 'function' || typeof worker.name !== 'string' || worker.name === '') {
    throw new UsageError(`${spec} is not a worker: it needs a queue \`name\` and a \`handle(task, ctx)\` method`);
  }
  return worker;
}

async function importModule(modName: string, cwd: string): Promise<Record<string, unknown>> {
  const bundled = bundledModules()[modName];
  if (bundled) return (await import(bundled)) as Record<string, unknown>;
  if (modName.startsWith('file:')) return (await import(modName)) as Record<string, unknown>;
  const looksLikePath = modName.startsWith('.') || isAbsolute(modName) || /\.[cm]?js$/.test(modName);
  if (!looksLikePath) {
    const near = nearest(modName, Object.keys(bundledModules()));
    throw new UsageError(`unknown worker module "${modName}"${near ? `: did you mean ${near}?` : ''}`, {
      hint: `bundled: ${Object.keys(bundledModules()).join(', ') || '(none)'}; a file of your own is named by its path, e.g. ./my-worker.js:MyWorker`,
    });
  }
  const path = resolve(cwd, modName);
  if (!existsSync(path)) throw new UsageError(`worker module ${path} does not exist`);
  try {
    return await importSettled(path, (file) => new UsageError(`worker module ${file} failed to load: its top-level await never settles (nothing is left that could settle it)`));
  } catch (err) {
    if (err instanceof ImportNeverSettled) throw err.error;
    throw new UsageError(`worker module ${path} failed to load: ${(err as Error).message}`, { cause: err });
  }
}

function instantiate(exported: unknown): WorkerDefinition | null {
  if (typeof exported === 'function') {
    const proto = (exported as { prototype?: { handle?: unknown } }).prototype;
    if (proto && typeof proto.handle === 'function') return new (exported as new () => WorkerDefinition)();
    return null;
  }
  return typeof exported === 'object' && exported !== null ? (exported as WorkerDefinition) : null;
}
