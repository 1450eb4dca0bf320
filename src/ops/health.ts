import { randomBytes } from 'node:crypto';
import { statfsSync } from 'node:fs';
import { safeReadFile, safeRm, safeWriteFile } from '../storage/safe-path.js';
import { join, relative } from 'node:path';
import { MetaspnError } from '../guard/errors.js';
import type { WorkspacePaths } from '../storage/paths.js';
import type { StateFileProblem } from '../storage/state-file.js';
import { stateFileProblems } from './problems.js';
import { fileSource, type OpsSource } from './source.js';

export interface ReadinessCheck {
  name: string;
  ok: boolean;
  /** A failed critical check fails readiness (503); a failed other one degrades it (200, status "degraded"). */
  critical: boolean;
  detail: string;
}

export interface Readiness {
  status: 'ok' | 'degraded' | 'fail';
  checks: ReadinessCheck[];
}

/**
 * Readiness: the workspace reads and writes (a probe file), the disk has room, the queues read
 * cleanly (their files, or on PostgreSQL the database answers their counters; each failing: 503),
 * and the run and ops state files read back (failing: "degraded", still 200: the server serves
 * everything else, and the damaged files are named).
 */
export async function readiness(
  ws: WorkspacePaths,
  minFreeBytes: number,
  problemsOf: (ws: WorkspacePaths) => StateFileProblem[] = stateFileProblems,
  source: OpsSource = fileSource(ws),
): Promise<Readiness> {
  const checks: ReadinessCheck[] = [];
  const probe = join(ws.root, `.metaspn-probe-${randomBytes(4).toString('hex')}`);
  try {
    safeWriteFile(probe, 'probe');
    const ok = safeReadFile(probe) === 'probe';
    checks.push({ name: 'workspace_rw', ok, critical: true, detail: ok ? 'a probe file was written, read back and removed' : 'the probe file read back differently' });
  } catch (err) {
    checks.push({ name: 'workspace_rw', ok: false, critical: true, detail: (err as Error).message });
  } finally {
    safeRm(probe, { force: true });
  }
  try {
    const s = statfsSync(ws.root);
    const free = s.bavail * s.bsize;
    checks.push({ name: 'disk_free', ok: free >= minFreeBytes, critical: true, detail: `${Math.round(free / 2 ** 20)} MiB free (threshold ${Math.round(minFreeBytes / 2 ** 20)} MiB)` });
  } catch (err) {
    checks.push({ name: 'disk_free', ok: false, critical: true, detail: (err as Error).message });
  }
  const bad: string[] = [];
  let names: string[] = [];
  try {
    names = await source.queueNames();
  } catch (err) {
    bad.push(`${source.where}: ${(err as Error).message}`);
  }
  for (const q of names) {
    try {
      const v = await source.queueView(q);
      if (v.corrupt_records > 0) bad.push(`${q}: ${v.corrupt_records} corrupt record(s)`);
    } catch (err) {
      bad.push(`${q}: ${(err as Error).message}`);
    }
  }
  const fine = source.backend === 'files' ? 'every queue log reads cleanly' : `${source.where} answers every queue's counters`;
  checks.push({ name: 'queues_readable', ok: bad.length === 0, critical: true, detail: bad.length ? bad.join('; ') : fine });
  let problems: StateFileProblem[];
  try {
    problems = problemsOf(ws);
  } catch (err) {
    // A link inside the workspace (refused, never read through) or a folder that cannot be listed:
    // named here, and the server goes on serving the rest.
    if (!(err instanceof MetaspnError)) throw err;
    const at = (err.details as { path?: string } | undefined)?.path;
    problems = [{ path: at ? relative(ws.root, at) : 'manifests', kind: 'manifest', error: err.message.replace(`${at}: `, '') }];
  }
  checks.push({
    name: 'state_files_readable',
    ok: problems.length === 0,
    critical: false,
    detail: problems.length
      ? `${problems.length} damaged: ${problems
          .slice(0, 5)
          .map((p) => `${p.path} (${p.error})`)
          .join('; ')}${problems.length > 5 ? '; …' : ''}; \`metaspn doctor --repair\` fixes them`
      : 'every manifest, pointer and ops record reads back',
  });
  const failed = checks.some((c) => !c.ok && c.critical);
  const degraded = checks.some((c) => !c.ok);
  return { status: failed ? 'fail' : degraded ? 'degraded' : 'ok', checks };
}
