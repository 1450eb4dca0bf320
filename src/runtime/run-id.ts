import { randomBytes } from 'node:crypto';
import { UsageError } from '../guard/errors.js';

/** A run id: sortable by start time, unique across hosts; it names folders, so it stays plain. */
export function newRunId(now = new Date()): string {
  return `${now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z')}-${randomBytes(3).toString('hex')}`;
}

const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

export function checkRunId(id: string): string {
  if (!RUN_ID.test(id) || id.includes('..')) throw new UsageError(`--run-id "${id.slice(0, 60)}" must match ${RUN_ID.source}`);
  return id;
}
