import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';

/**
 * A fresh folder under the system's temp folder, removed when the test that made it passes (kept,
 * and named on stderr, when it fails, to look into). Made outside a test, it goes when the test
 * process exits. No test leaves folders behind.
 */
export function tempDir(prefix = 'metaspn-t-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const remove = (): void => rmSync(dir, { recursive: true, force: true });
  try {
    onTestFinished(({ task }) => {
      if (task.result?.state === 'fail') process.stderr.write(`kept the folder of a failed test: ${dir}\n`);
      else remove();
    });
  } catch {
    process.once('exit', remove);
  }
  return dir;
}
