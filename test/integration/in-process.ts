import { AsyncLocalStorage } from 'node:async_hooks';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BIN, cliEnv, ROOT, type Run } from './cli.js';

/**
 * The CLI run in the test's own process: the built CLI (dist/, what bin/metaspn.js loads, with
 * Season 1 registered as it does), the same argv, and its exit code, stdout and stderr.
 *
 * What one invocation writes to process.stdout and process.stderr, and the environment it reads,
 * are its own: both are routed through an AsyncLocalStorage entered for that invocation (two at
 * once stay apart), and a write or a read made outside one goes to the real stream or environment
 * as before. Inside one, stdout and stderr are pipes (no TTY), as for a subprocess under test.
 *
 * For a command line whose subprocess adds nothing. A crash (SIGKILL, SIGSTOP), a signal, a TTY,
 * bin/ itself, the package, or processes running side by side still need `cli`, `run` or `start`;
 * so does a child the command starts that must see `env` (a child process or a worker thread
 * gets the real environment).
 */
type Main = (argv: string[]) => Promise<number>;

interface Capture {
  stdout: string;
  stderr: string;
  env: NodeJS.ProcessEnv;
}

/**
 * One per process, kept on globalThis: a test file evaluated again in the same process (vitest
 * without isolation, or a re-run) finds the streams and the environment already routed through it.
 */
const KEY = Symbol.for('metaspn.test.in-process');
const shared = globalThis as unknown as Record<symbol, { current: AsyncLocalStorage<Capture>; main?: Promise<Main> } | undefined>;
const state = (shared[KEY] ??= { current: new AsyncLocalStorage<Capture>() });
const current = state.current;

function routeOutput(name: 'stdout' | 'stderr'): void {
  const stream = process[name];
  const write = stream.write.bind(stream) as (...a: unknown[]) => boolean;
  stream.write = function (chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
    const c = current.getStore();
    if (!c) return write(chunk, encoding, cb);
    c[name] += typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString(typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
    const done = typeof encoding === 'function' ? encoding : cb;
    if (typeof done === 'function') process.nextTick(done as () => void);
    return true;
  } as typeof stream.write;
  const tty = stream.isTTY;
  Object.defineProperty(stream, 'isTTY', { configurable: true, get: () => (current.getStore() ? false : tty) });
}

function routeEnv(): void {
  const real = process.env;
  const env = (): NodeJS.ProcessEnv => current.getStore()?.env ?? real;
  process.env = new Proxy(real, {
    get: (_, k) => Reflect.get(env(), k),
    set: (_, k, v) => Reflect.set(env(), k, String(v)),
    has: (_, k) => Reflect.has(env(), k),
    deleteProperty: (_, k) => Reflect.deleteProperty(env(), k),
    ownKeys: () => Reflect.ownKeys(env()),
    getOwnPropertyDescriptor: (_, k) => {
      const d = Reflect.getOwnPropertyDescriptor(env(), k);
      return d && { ...d, configurable: true };
    },
  });
}

const nativeImport = (url: string): Promise<Record<string, unknown>> => import(url) as Promise<Record<string, unknown>>;

function loadMain(): Promise<Main> {
  state.main ??= (async () => {
    routeOutput('stdout');
    routeOutput('stderr');
    routeEnv();
    const dist = (p: string): string => pathToFileURL(join(ROOT, 'dist', p)).href;
    const { main } = (await nativeImport(dist('src/cli/main.js'))) as { main: Main };
    const { registerBundled } = (await nativeImport(dist('src/pipeline/bundled.js'))) as { registerBundled: (b: unknown) => void };
    const { s1Bundle } = await nativeImport(dist('workers/s1/bundle.js'));
    registerBundled(s1Bundle);
    return main;
  })();
  return state.main;
}

/** What a command may leave listening on the process; a command that ended must have left none. */
const PROCESS_EVENTS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'exit', 'beforeExit', 'uncaughtException', 'unhandledRejection', 'warning'] as const;
const listening = (): number[] => PROCESS_EVENTS.map((e) => process.listenerCount(e));

/**
 * Runs `metaspn ...args` in this process and waits for it: `{code, stdout, stderr}` as `run`
 * gives them (`signal` is always null). `env` is added to the test process's environment and
 * cliEnv's fast retries, for this invocation only (a value `undefined` removes a variable);
 * `cwd` must be the test process's own (it is the process's, not an invocation's). One still
 * running after `ms` (default 120 s) fails the test.
 * Fails if the command left a process listener (a signal handler) behind.
 */
export async function cliIn(args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv; ms?: number } = {}): Promise<Run> {
  if (o.cwd !== undefined && resolve(o.cwd) !== process.cwd()) throw new Error(`cliIn runs in ${process.cwd()}; use run() for a command in ${o.cwd}`);
  const main = await loadMain();
  const env = cliEnv(o.env);
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  const c: Capture = { stdout: '', stderr: '', env };
  const before = listening();
  const startedAt = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`metaspn ${args.join(' ')} did not end within ${o.ms} ms`)), o.ms ?? 120_000);
  });
  const code = await Promise.race([current.run(c, () => main([process.execPath, BIN, ...args])), late]).finally(() => clearTimeout(timer));
  const ms = performance.now() - startedAt;
  const after = listening();
  const left = PROCESS_EVENTS.filter((_, i) => after[i]! > before[i]!);
  if (left.length) throw new Error(`metaspn ${args.join(' ')} left process listeners behind: ${left.join(', ')}`);
  return { code, signal: null, stdout: c.stdout, stderr: c.stderr, ms };
}
