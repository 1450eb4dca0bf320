import { InvalidArgumentError } from 'commander';
import { existsSync, statSync } from 'node:fs';
import { checkLimit, limitOfFlag, rangeText } from '../config/limits.js';
import { UsageError } from '../guard/errors.js';
import { workspacePaths, type WorkspacePaths } from '../storage/paths.js';

/** Every flag name given to a number parser: a test checks that each one has a range in LIMITS. */
export const NUMBER_FLAGS = new Set<string>();

/**
 * Commander parser of a whole-number flag: a bad value is a usage error (exit 64) that names the
 * flag and its range. The range is the flag's row in LIMITS (src/config/limits.ts); `min` is the
 * fallback for a flag without one.
 */
export function intFlag(name: string, min = 0) {
  NUMBER_FLAGS.add(name);
  const key = limitOfFlag(name);
  return (v: string): number => {
    const n = /^\d+$/.test(v) ? Number(v) : Number.NaN;
    if (key !== undefined) {
      if (checkLimit(key, n) !== null) throw new InvalidArgumentError(`${name} must be ${rangeText(key)}, got "${v}"`);
      return n;
    }
    if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be a whole number >= ${min}, got "${v}"`);
    return n;
  };
}

/** A whole-number flag of at least 1 (or its range in LIMITS). */
export function positiveInt(name: string) {
  return intFlag(name, 1);
}

/** A whole-number flag of at least 0 (or its range in LIMITS). */
export function nonNegativeInt(name: string) {
  return intFlag(name, 0);
}

/** Collects a repeatable option into a list. */
export function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

/** The workspace folder: it must exist (a typo should not quietly create a new one). */
export function openWorkspace(dir: string): WorkspacePaths {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new UsageError(`workspace ${dir} is not a folder`, { hint: 'pass --workspace DIR with an existing folder (the repo root is one)' });
  }
  return workspacePaths(dir);
}
