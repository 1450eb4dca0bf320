import { InvalidArgumentError } from 'commander';
import { existsSync, statSync } from 'node:fs';
import { UsageError } from '../guard/errors.js';
import { workspacePaths, type WorkspacePaths } from '../storage/paths.js';

/** Commander parsers: a bad value is a usage error (exit 64) with a message that says the fix. */
export function positiveInt(name: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v) || Number(v) < 1 || !Number.isSafeInteger(Number(v))) {
      throw new InvalidArgumentError(`${name} must be a whole number >= 1, got "${v}"`);
    }
    return Number(v);
  };
}

export function nonNegativeInt(name: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new InvalidArgumentError(`${name} must be a whole number >= 0, got "${v}"`);
    return Number(v);
  };
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
