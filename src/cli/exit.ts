import { EXIT, mostSevere } from '../guard/exit-codes.js';

/** The exit code a command settled on without throwing (e.g. 11: tasks remain scheduled). */
let code: number = EXIT.SUCCESS;

export function setExitCode(c: number): void {
  code = mostSevere([code, c]);
}

export function takeExitCode(): number {
  const c = code;
  code = EXIT.SUCCESS;
  return c;
}
