import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { onTestFailed } from 'vitest';

/** The repository root: the CLI under test is bin/metaspn.js (built by `npm run build`). */
export const ROOT = resolve(import.meta.dirname, '../..');
export const BIN = join(ROOT, 'bin', 'metaspn.js');
export const DEMO_INPUTS = join(ROOT, 'inputs', 's1_signals.jsonl');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Env for child CLIs: quiet logs unless asked, fast retries so backoff does not slow tests. */
export function cliEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, METASPN_QUEUE_BACKOFF_BASE_MS: '10', METASPN_QUEUE_BACKOFF_CAP_MS: '50', ...extra };
}

/** Runs the real CLI as a subprocess and waits for it. */
export function cli(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {}): CliResult {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: opts.cwd ?? ROOT, env: cliEnv(opts.env), encoding: 'utf8', input: opts.input ?? '', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Starts the CLI in the background (for locks held, workers killed). The test kills it. */
export function cliSpawn(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): ChildProcess {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: opts.cwd ?? ROOT, env: cliEnv(opts.env), stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

/** The fixture workers, named as `worker run` takes them: `${WORKERS}:Export`. */
export const WORKERS = join(ROOT, 'test', 'fixtures', 'workers.mjs');
export const spec = (exportName: string): string => `${WORKERS}:${exportName}`;

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit. */
  ms: number;
}

export interface Proc {
  child: ChildProcess;
  /** Settles when the process has exited and its output is read. */
  exited: Promise<Run>;
}

/** Starts the CLI in the background with its output collected. */
export function start(args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Proc {
  const startedAt = performance.now();
  const child = cliSpawn(args, o);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<Run>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, ms: performance.now() - startedAt })));
  return { child, exited };
}

/** Waits for the process to exit by itself; one still running after `ms` fails the test (and is killed). */
export async function exit(p: Proc, ms = 20_000): Promise<Run> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      p.child.kill('SIGKILL');
      reject(new Error(`metaspn (pid ${p.child.pid}) did not exit within ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([p.exited, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs the CLI to its end without blocking this process's event loop. */
export function run(args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv; ms?: number } = {}): Promise<Run> {
  return exit(start(args, o), o.ms);
}

const children = new Set<ChildProcess>();

/** Fails the calling test if it left a child process running, and kills it. */
export function assertNoChildren(): void {
  const left = [...children].filter((c) => c.exitCode === null && c.signalCode === null);
  for (const c of left) c.kill('SIGKILL');
  children.clear();
  if (left.length) throw new Error(`test left ${left.length} child process(es) running`);
}

export interface WorkspaceOptions {
  /** Copy the bundled demo signals into inputs/ (default true). */
  demo?: boolean;
  signals?: string;
  config?: unknown;
}

/** A fresh workspace for one test; kept (and its path printed) when the test fails. */
export function tempWorkspace(o: WorkspaceOptions = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'metaspn-it-'));
  mkdirSync(join(dir, 'inputs'), { recursive: true });
  if (o.signals !== undefined) writeFileSync(join(dir, 'inputs', 's1_signals.jsonl'), o.signals);
  else if (o.demo !== false) cpSync(DEMO_INPUTS, join(dir, 'inputs', 's1_signals.jsonl'));
  if (o.config !== undefined) writeFileSync(join(dir, 'metaspn.config.json'), JSON.stringify(o.config));
  let failed = false;
  onTestFailed(() => {
    failed = true;
    process.stderr.write(`kept workspace of failed test: ${dir}\n`);
  });
  cleanups.push(() => {
    if (!failed) rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/**
 * A fresh copy of the example pipeline's workspace (examples/daily-projections: config, module,
 * model and inputs; none of its run state), with `metaspn` installed beside it (linked to this
 * repository, as `npm link` would). Removed with the other workspaces.
 */
export function exampleWorkspace(): string {
  const dir = tempWorkspace({ demo: false });
  for (const f of ['metaspn.config.json', 'pipeline.mjs', 'model.mjs', 'inputs']) cpSync(join(ROOT, 'examples', 'daily-projections', f), join(dir, f), { recursive: true });
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(ROOT, join(dir, 'node_modules', 'metaspn'), 'dir');
  return dir;
}

const cleanups: (() => void)[] = [];

export function cleanWorkspaces(): void {
  for (const c of cleanups.splice(0)) c();
}

/** Waiting on conditions: test/wait.ts. */
export { until, waitFor } from '../wait.js';
