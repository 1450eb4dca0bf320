/**
 * The exit-code taxonomy. Cron and CI read these; docs/EXIT-CODES.md explains each.
 * Only the CLI layer turns an error into `process.exitCode`.
 */
export const EXIT = {
  SUCCESS: 0,
  BUSINESS_REJECT: 10,
  BUSINESS_SKIP: 11,
  DATA_INVALID: 20,
  STATE_CORRUPT: 30,
  LOCK_TIMEOUT: 40,
  INTERNAL_ERROR: 50,
  ANOMALY_HALT: 60,
  USAGE: 64,
} as const;

export type ExitName = keyof typeof EXIT;

/** The most severe of several exit codes (a backfill reports its worst date). */
export function mostSevere(codes: readonly number[]): number {
  const rank = (c: number): number => (c === 0 ? 0 : c === 10 ? 1 : c === 11 ? 2 : 3 + c);
  return codes.reduce((worst, c) => (rank(c) > rank(worst) ? c : worst), 0);
}
