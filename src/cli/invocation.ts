/**
 * What one run of the CLI accumulates: its command line, the exit code commands settle on without
 * throwing, the logs they opened (closed before exit), and whether a JSON document was printed. It lives in an
 * AsyncLocalStorage entered by `main`, not in module variables, so the CLI can run twice in one
 * process (even at once, as tests do) without one run's state leaking into the other. A command line running alone (every metaspn
 * process's) is entered without the storage and its promise hooks (see `solo`).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { EXIT, mostSevere } from '../guard/exit-codes.js';
import type { LogHandle } from '../log.js';

export interface Invocation {
  /** The command line's arguments (after `metaspn`), as main was given them: never process.argv, which is the process's. */
  argv: readonly string[];
  exitCode: number;
  logs: LogHandle[];
  jsonPrinted: boolean;
}

const store = new AsyncLocalStorage<Invocation>();

/**
 * The invocation running alone, entered without the AsyncLocalStorage: a process that runs one
 * command line at a time (every metaspn process) never turns on its promise hooks, which run for
 * every promise of the process once on (a hundred thousand tasks make millions). Only a command
 * line started while another runs is entered in the storage; the one running alone reads no
 * store in its own call chains (their promises were made before any store existed, or from them).
 */
let solo: Invocation | null = null;
/** Command lines running now (solo's included). */
let running = 0;

/** A fresh invocation state for the command line `argv` (its arguments after `metaspn`). */
export function newInvocation(argv: readonly string[] = []): Invocation {
  return { argv, exitCode: EXIT.SUCCESS, logs: [], jsonPrinted: false };
}

/** Runs `fn` with `inv` as the current invocation (main does this once per command line). */
export function withInvocation<T>(inv: Invocation, fn: () => Promise<T>): Promise<T> {
  const alone = running === 0 && store.getStore() === undefined;
  running++;
  if (alone) solo = inv;
  const ended = (): void => {
    running--;
    if (solo === inv) solo = null;
  };
  let p: Promise<T>;
  try {
    p = alone ? fn() : store.run(inv, fn);
  } catch (err) {
    ended();
    throw err;
  }
  return p.finally(ended);
}

/**
 * The current invocation. Outside `main` (a library caller, a unit test calling a command's code)
 * a state of its own per call chain is made on first use, so nothing is shared either.
 */
export function invocation(): Invocation {
  let inv = store.getStore() ?? solo ?? undefined;
  if (!inv) {
    inv = newInvocation();
    store.enterWith(inv);
  }
  return inv;
}

/** Raises the exit code the command ends with (the most severe wins). */
export function raiseExitCode(c: number): void {
  const inv = invocation();
  inv.exitCode = mostSevere([inv.exitCode, c]);
}

/**
 * Flushes and closes every log this invocation opened (bounded in time); the CLI calls it when the
 * command has ended. Closed, not only flushed: a process that runs the CLI again (a test, an
 * embedder) must not keep a file and a timer per command it ran.
 */
export async function closeLogs(): Promise<void> {
  await Promise.all(
    invocation()
      .logs.splice(0)
      .map((l) => l.close()),
  );
}

/** The log of the workspace the command opened, if it opened one: the CLI logs how it ended there. */
export function commandLog(): LogHandle | undefined {
  const logs = invocation().logs;
  return logs[logs.length - 1];
}
