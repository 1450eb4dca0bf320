import { join, resolve } from 'node:path';
import { registerWorkspaceRoot, safeReaddirEntries } from './safe-path.js';

/** The workspace on disk: the contract users see (docs/ARCHITECTURE.md). */
export interface WorkspacePaths {
  root: string;
  config: string;
  inputs: string;
  queues: string;
  deadletters: string;
  store: string;
  manifests: string;
  locks: string;
  logs: string;
  logFile: string;
  ledger: string;
  incidents: string;
  quarantine: string;
}

export function workspacePaths(root: string): WorkspacePaths {
  const r = resolve(root);
  registerWorkspaceRoot(r);
  return {
    root: r,
    config: join(r, 'metaspn.config.json'),
    inputs: join(r, 'inputs'),
    queues: join(r, 'queue'),
    deadletters: join(r, 'deadletter'),
    store: join(r, 'store'),
    manifests: join(r, 'manifests'),
    locks: join(r, 'locks'),
    logs: join(r, 'logs'),
    logFile: join(r, 'logs', 'metaspn.jsonl'),
    ledger: join(r, 'ledger.jsonl'),
    incidents: join(r, 'reports', 'incidents'),
    quarantine: join(r, 'quarantine'),
  };
}

export function queueDir(ws: WorkspacePaths, worker: string): string {
  return join(ws.queues, worker);
}

export function deadletterDir(ws: WorkspacePaths, worker: string): string {
  return join(ws.deadletters, worker);
}

/**
 * The one list of the queues a workspace has on disk: the folders under queue/ (and, with
 * `deadLetters`, those under deadletter/: a queue whose log is gone may still hold dead letters),
 * sorted. A linked queue/ or deadletter/ is refused (30), never listed through.
 */
export function queueFolders(ws: WorkspacePaths, o: { deadLetters?: boolean } = {}): string[] {
  const names = new Set<string>();
  for (const root of o.deadLetters ? [ws.queues, ws.deadletters] : [ws.queues]) {
    for (const d of safeReaddirEntries(root)) if (d.isDirectory()) names.add(d.name);
  }
  return [...names].sort();
}
