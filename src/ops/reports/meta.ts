import { readFileSync } from 'node:fs';

/** The installed metaspn version (package.json next to dist/), for reports and the webhook's user agent. */
export function metaspnVersion(): string {
  for (const rel of ['../../../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'metaspn' && pkg.version) return pkg.version;
    } catch {
      // not there: try the next layout (compiled under dist/, or run from src/)
    }
  }
  return '0.0.0';
}

/** `2026-01-15T10:20:30.123Z` → `20260115T102030Z`: a timestamp that sorts and fits in a file name. */
export function compactTs(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
}
