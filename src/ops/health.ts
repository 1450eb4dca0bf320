import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { WorkspacePaths } from '../storage/paths.js';
import { queueNamesOf, queueView } from './workspace-view.js';

export interface ReadinessCheck {
  name: string;
  ok: boolean;
  detail: string;
}

/** Readiness: the workspace reads and writes (a probe file), the disk has room, queue files read cleanly. */
export function readiness(ws: WorkspacePaths, minFreeBytes: number): ReadinessCheck[] {
  const checks: ReadinessCheck[] = [];
  const probe = join(ws.root, `.metaspn-probe-${randomBytes(4).toString('hex')}`);
  try {
    writeFileSync(probe, 'probe');
    const ok = readFileSync(probe, 'utf8') === 'probe';
    checks.push({ name: 'workspace_rw', ok, detail: ok ? 'a probe file was written, read back and removed' : 'the probe file read back differently' });
  } catch (err) {
    checks.push({ name: 'workspace_rw', ok: false, detail: (err as Error).message });
  } finally {
    rmSync(probe, { force: true });
  }
  try {
    const s = statfsSync(ws.root);
    const free = s.bavail * s.bsize;
    checks.push({ name: 'disk_free', ok: free >= minFreeBytes, detail: `${Math.round(free / 2 ** 20)} MiB free (threshold ${Math.round(minFreeBytes / 2 ** 20)} MiB)` });
  } catch (err) {
    checks.push({ name: 'disk_free', ok: false, detail: (err as Error).message });
  }
  const bad: string[] = [];
  for (const q of queueNamesOf(ws)) {
    try {
      const v = queueView(ws, q);
      if (v.corrupt_records > 0) bad.push(`${q}: ${v.corrupt_records} corrupt record(s)`);
    } catch (err) {
      bad.push(`${q}: ${(err as Error).message}`);
    }
  }
  checks.push({ name: 'queues_readable', ok: bad.length === 0, detail: bad.length ? bad.join('; ') : 'every queue log reads cleanly' });
  return checks;
}
