/** One thing `metaspn doctor` found: how bad, where, what, and the fix. */
export interface Finding {
  severity: 'error' | 'warning' | 'info';
  /** queue, deadletter, store, manifest, pointer, ledger, lock, input */
  area: string;
  /** The file or folder, relative to the workspace. */
  path: string;
  message: string;
  fix: string;
  /** Set by --repair when it fixed this. */
  repaired?: boolean;
  /**
   * For an error, the exit code it means on its own when it is not 30 (corrupt): 20 for a config
   * that does not load or a database that refuses the login, 11 for a database that cannot be
   * reached (nothing could be checked there: try again later). `doctor` exits with the most severe
   * of its errors' codes (30 over 20 over 11; docs/EXIT-CODES.md).
   */
  exit_code?: number;
}

export class Findings {
  readonly list: Finding[] = [];

  /** An error; `exitCode` only when it is not 30 (see {@link Finding.exit_code}). */
  error(area: string, path: string, message: string, fix: string, exitCode?: number): void {
    this.list.push(exitCode === undefined ? { severity: 'error', area, path, message, fix } : { severity: 'error', area, path, message, fix, exit_code: exitCode });
  }

  warn(area: string, path: string, message: string, fix: string): void {
    this.list.push({ severity: 'warning', area, path, message, fix });
  }

  info(area: string, path: string, message: string, fix = ''): void {
    this.list.push({ severity: 'info', area, path, message, fix });
  }
}
