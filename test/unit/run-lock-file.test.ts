import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';
import { FileRunLocks } from '../../src/storage/run-lock.js';
import { describeRunLocks } from './run-lock-conformance.js';

describeRunLocks('file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'metaspn-runlocks-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return new FileRunLocks(join(dir, 'locks'));
});
