/**
 * What one run of the CLI accumulates: the exit code commands settle on without throwing, the
 * logs they opened (flushed before exit), and whether a JSON document was printed. It lives in an
 * AsyncLocalStorage entered by `main`, not in module variables, so the CLI can run twice in one
 * process (even at once, as tests do) without one run's state leaking into the other.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { EXIT, mostSevere } from '../guard/exit-codes.js';
import type { LogHandle } from '../log.js';

export interface Invocation {
  exitCode: number;
  logs: LogHandle[];
  jsonPrinted: boolean;
}

const store = new AsyncLocalStorage<Invocation>();

/** A fresh invocation state. */
export function newInvocation(): Invocation {
  return { exitCode: EXIT.SUCCESS, logs: [], jsonPrinted: false };
}

/** Runs `fn` with `inv` as the current invocation (main does this once per command line). */
export function withInvocation<T>(inv: Invocation, fn: () => Promise<T>): Promise<T> {
  return store.run(inv, fn);
}

/**
 * The current invocation. Outside `main` (a library caller, a unit test calling a command's code)
 * a state of its own per call chain is made on first use, so nothing is shared either.
 */
export function invocation(): Invocation {
  let inv = store.getStore();
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
