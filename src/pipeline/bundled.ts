/**
 * Pipelines that ship with metaspn (Season 1) plug into the core through this interface, so the
 * core knows pipelines and not any one of them: the entry point (bin/metaspn.js) registers each
 * bundled pipeline before the CLI starts; nothing under src/ imports a bundled pipeline's code.
 */
import type { Command } from 'commander';
import type { WorkspaceConfig } from '../config/load.js';
import type { Findings } from '../doctor/finding.js';
import type { WorkspacePaths } from '../storage/paths.js';
import type { PgSetting } from '../backend/pg/setting.js';

/** What `runs retry` and the ops API need to start a run of a bundled pipeline. */
export interface BundledRunRequest {
  date: string;
  /** `--as-of` as given (null: the default). */
  asOf: string | null;
}

/** The flags `pipeline run|backfill|rollback` parsed (commander's camelCase names), handed on as they are. */
export interface CommandFlags {
  workspace: string;
}

/** What `pipeline run|backfill|rollback <name>` of a bundled pipeline run: the code of its own commands. Each sets the exit code. */
export interface BundledActions {
  run(o: CommandFlags): Promise<void>;
  backfill(o: CommandFlags): Promise<void>;
  rollback(o: CommandFlags): Promise<void>;
}

/** A pipeline that ships with metaspn, with the commands and checks it brings. */
export interface BundledPipeline {
  /** Its name, as in pointers, manifests and the run lock (`s1`). */
  name: string;
  /** The command that runs one partition, e.g. `metaspn s1 run-local`. */
  command: string;
  /** Its steps in order, with their dependencies (`pipeline show`). */
  steps: readonly { name: string; after: readonly string[] }[];
  /**
   * Top-level keys of metaspn.config.json it owns, and their parser: `resolve` gets the raw
   * values of those keys (undefined when the file does not exist) and returns the sections, by
   * name, that `loadConfig` adds to the WorkspaceConfig (pipelines type them by module augmentation).
   * @throws DataInvalidError naming the file, key and rule.
   */
  config?: { keys: readonly string[]; resolve(raw: Record<string, unknown> | undefined, file: string, all: Record<string, unknown>): Record<string, unknown> };
  /** The top-level commands it registers (`s1`, `smoke`): the CLI loads its commands only when one of these is asked for. */
  commandNames?: readonly string[];
  /** `pipeline run|backfill|rollback <name>`: the same code as its own commands (loaded when asked for). */
  actions?(): Promise<BundledActions>;
  /** Registers its commands on the CLI (`metaspn s1 …`, `metaspn smoke`); may load their modules first. */
  commands?(program: Command): void | Promise<void>;
  /** Worker modules `worker run <module>:<Export>` knows by name, as file URLs. */
  workerModules?: Readonly<Record<string, string>>;
  /**
   * The file of each step's rows under store/, by step (default `<pipeline>.<step>.jsonl`; Season 1:
   * `s1_attention_scores.jsonl`, …): where the file backend keeps them and the name `store export`
   * gives them from a database.
   */
  storeFiles?: Readonly<Record<string, string>>;
  /** Queues `queue stats` knows before any task exists. */
  queues?: readonly string[];
  /** Doctor's checks of its inputs and published partitions; `database`: the PostgreSQL backend in effect (null: files), read only. */
  doctor?(ws: WorkspacePaths, cfg: WorkspaceConfig, f: Findings, database: PgSetting | null): Promise<void>;
  /**
   * The CLI arguments that run one partition (ops API run starts), checked first.
   * @throws what planning the run throws (a bad or out-of-range date: 64 or 10).
   */
  runArgs?(ws: WorkspacePaths, cfg: WorkspaceConfig, req: BundledRunRequest): { date: string; as_of: string; args: string[] };
  /** `runs retry` of one of its runs: re-runs the partition as a new run; returns the exit code. */
  retry?(o: { workspace: string; runId: string; date: string; asOf: string; flags: Record<string, unknown> }): Promise<number>;
}

const registry = new Map<string, BundledPipeline>();
const storeFiles = new Map<string, Readonly<Record<string, string>>>();

/** Adds a bundled pipeline (the entry point does it once, before the CLI starts). A second one of the same name replaces the first. */
export function registerBundled(p: BundledPipeline): void {
  registry.set(p.name, p);
  if (p.storeFiles) nameStoreFiles(p.name, p.storeFiles);
}

/**
 * Names the files of a pipeline's steps under store/ (see {@link BundledPipeline.storeFiles}): the
 * module that writes them calls it when it loads, so the stores find them whoever registered what.
 */
export function nameStoreFiles(pipeline: string, files: Readonly<Record<string, string>>): void {
  storeFiles.set(pipeline, files);
}

/** Every bundled pipeline registered, in registration order. */
export function bundledPipelines(): BundledPipeline[] {
  return [...registry.values()];
}

/** The file under store/ that keeps the rows of `pipeline`'s step `step`: `<pipeline>.<step>.jsonl` unless a bundled pipeline names its own. */
export function storeFileOf(pipeline: string, step: string): string {
  return storeFiles.get(pipeline)?.[step] ?? `${pipeline}.${step}.jsonl`;
}

/** The files under store/ a pipeline named for its own steps (without `.jsonl`); none for a workspace pipeline. */
export function namedStoreFiles(pipeline: string): string[] {
  return Object.values(storeFiles.get(pipeline) ?? {}).map((f) => f.replace(/\.jsonl$/, ''));
}

/** The bundled pipeline of that name, or undefined. */
export function bundledPipeline(name: string): BundledPipeline | undefined {
  return registry.get(name);
}
