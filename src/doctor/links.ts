import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { WorkspacePaths } from '../storage/paths.js';
import type { Findings } from './finding.js';

/**
 * The folders and files metaspn manages. inputs/ and metaspn.config.json are the user's: a link
 * there is read, never written, and is left alone.
 */
export function managedPaths(ws: WorkspacePaths): string[] {
  return [ws.queues, ws.deadletters, ws.store, ws.manifests, ws.locks, ws.logs, ws.ledger, join(ws.root, 'reports'), join(ws.root, 'ops'), ws.quarantine];
}

/**
 * Every symbolic link inside the managed folders, as an error naming it: metaspn refuses to open
 * through one (exit 30), so each stops whatever command reaches it. The walk never follows a link.
 * Returns the links found (absolute paths).
 */
export function checkLinks(ws: WorkspacePaths, f: Findings): string[] {
  const found: string[] = [];
  const visit = (path: string): void => {
    let st;
    try {
      st = lstatSync(path);
    } catch {
      return;
    }
    if (st.isSymbolicLink()) {
      found.push(path);
      let target = '?';
      try {
        target = readlinkSync(path);
      } catch {
        // named all the same
      }
      f.error(
        'link',
        relative(ws.root, path),
        `is a symbolic link (to ${target}); metaspn does not follow links inside the workspace, so commands that reach it exit 30`,
        'remove the link; if the file it points to belongs to the workspace, move it here in its place',
      );
      return;
    }
    if (!st.isDirectory()) return;
    let names: string[];
    try {
      names = readdirSync(path);
    } catch {
      return;
    }
    for (const n of names) visit(join(path, n));
  };
  for (const p of managedPaths(ws)) visit(p);
  return found;
}
