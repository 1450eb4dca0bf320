import { join } from 'node:path';
import { writeAtomicSync } from './atomic.js';
import type { WorkspacePaths } from './paths.js';
import { safeMkdir } from './safe-path.js';

/**
 * reports/incidents/<time>-<kind>-<subject>.json: one JSON file per incident (a replay conflict,
 * an anomaly halt, corruption), written atomically so an operator never reads half of one.
 */
export function writeIncident(ws: WorkspacePaths, kind: string, subject: string, body: Record<string, unknown>): string {
  safeMkdir(ws.incidents);
  const at = new Date();
  const stamp = at
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
  const safe = subject.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 80);
  const path = join(ws.incidents, `${stamp}-${kind}-${safe}.json`);
  writeAtomicSync(path, `${JSON.stringify({ kind, at: at.toISOString(), ...body }, null, 2)}\n`);
  return path;
}
