import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Integration tests drive the compiled CLI: `npm test` builds it first. */
export default function setup(): void {
  const root = join(import.meta.dirname, '..');
  const main = join(root, 'dist', 'src', 'cli', 'main.js');
  if (!existsSync(main)) throw new Error('dist/ is missing: run `npm run build` (npm test does it for you)');
  const src = statSync(join(root, 'src', 'cli', 'main.ts')).mtimeMs;
  if (statSync(main).mtimeMs < src) process.stderr.write('warning: dist/ is older than src/: run `npm run build`\n');
}
