import { EXIT, type ExitName } from './exit-codes.js';

/**
 * Every error we raise on purpose carries a string `code`; one table maps codes to exit codes.
 * `hint` is the one line that tells the operator the fix.
 */
export type ErrorCode = 'BUSINESS_REJECT' | 'BUSINESS_SKIP' | 'DATA_INVALID' | 'STATE_CORRUPT' | 'LOCK_TIMEOUT' | 'INTERNAL_ERROR' | 'ANOMALY_HALT' | 'USAGE';

export const EXIT_BY_CODE: Record<ErrorCode, number> = {
  BUSINESS_REJECT: EXIT.BUSINESS_REJECT,
  BUSINESS_SKIP: EXIT.BUSINESS_SKIP,
  DATA_INVALID: EXIT.DATA_INVALID,
  STATE_CORRUPT: EXIT.STATE_CORRUPT,
  LOCK_TIMEOUT: EXIT.LOCK_TIMEOUT,
  INTERNAL_ERROR: EXIT.INTERNAL_ERROR,
  ANOMALY_HALT: EXIT.ANOMALY_HALT,
  USAGE: EXIT.USAGE,
} satisfies Record<ErrorCode, number> & Partial<Record<ExitName, number>>;

export interface ErrorOptions {
  hint?: string;
  cause?: unknown;
  details?: Record<string, unknown>;
}

export class MetaspnError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, opts: ErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'MetaspnError';
    this.code = code;
    this.hint = opts.hint;
    this.details = opts.details;
  }

  get exitCode(): number {
    return EXIT_BY_CODE[this.code];
  }
}

/** Bad input data: names the file, the line and the rule. */
export class DataInvalidError extends MetaspnError {
  constructor(file: string, line: number | null, rule: string, opts: ErrorOptions = {}) {
    super('DATA_INVALID', `${file}${line === null ? '' : `:${line}`}: ${rule}`, opts);
    this.name = 'DataInvalidError';
  }
}

/** A bad invocation: unknown command or worker, a flag value that does not parse. */
export class UsageError extends MetaspnError {
  constructor(message: string, opts: ErrorOptions = {}) {
    super('USAGE', message, opts);
    this.name = 'UsageError';
  }
}

export class StateCorruptError extends MetaspnError {
  constructor(message: string, opts: ErrorOptions = {}) {
    super('STATE_CORRUPT', message, opts);
    this.name = 'StateCorruptError';
  }
}

/** The disk (or the user's quota) is full: no task can succeed until an operator frees space. */
export function isDiskFull(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/** Normalise anything thrown into a MetaspnError, keeping the original as `cause`. */
export function toMetaspnError(err: unknown): MetaspnError {
  if (err instanceof MetaspnError) return err;
  const e = err as NodeJS.ErrnoException | undefined;
  if (e && isDiskFull(e)) {
    return new MetaspnError('INTERNAL_ERROR', `disk full while writing${e.path ? ` ${e.path}` : ''} (${e.code})`, {
      cause: err,
      hint: 'free space on the workspace disk, then re-run the same command; nothing was half-written',
    });
  }
  if (e && (e.code === 'EACCES' || e.code === 'EPERM' || e.code === 'EROFS')) {
    return new MetaspnError('INTERNAL_ERROR', `permission denied: ${e.path ?? e.message} (${e.code})`, {
      cause: err,
      hint: 'fix the ownership or mode of the workspace folder, then re-run',
    });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new MetaspnError('INTERNAL_ERROR', message, { cause: err });
}
