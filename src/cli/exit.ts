import { EXIT } from '../guard/exit-codes.js';
import { invocation, raiseExitCode } from './invocation.js';

/** The exit code a command settled on without throwing (e.g. 11: tasks remain scheduled); the most severe wins. */
export function setExitCode(c: number): void {
  raiseExitCode(c);
}

/** The exit code settled on so far in this invocation, reset to 0. */
export function takeExitCode(): number {
  const inv = invocation();
  const c = inv.exitCode;
  inv.exitCode = EXIT.SUCCESS;
  return c;
}
