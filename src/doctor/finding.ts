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
}

export class Findings {
  readonly list: Finding[] = [];

  error(area: string, path: string, message: string, fix: string): void {
    this.list.push({ severity: 'error', area, path, message, fix });
  }

  warn(area: string, path: string, message: string, fix: string): void {
    this.list.push({ severity: 'warning', area, path, message, fix });
  }

  info(area: string, path: string, message: string, fix = ''): void {
    this.list.push({ severity: 'info', area, path, message, fix });
  }
}
