import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Integration tests drive the compiled CLI, and the run-lock holder fixture runs as compiled
 * (dist/test/fixtures/hold-lock.js, which the build emits but the package does not ship): `npm test`
 * builds both first.
 */
export default function setup(): void {
  const root = join(import.meta.dirname, '..');
  for (const [built, source] of [
    ['dist/src/cli/main.js', 'src/cli/main.ts'],
    ['dist/test/fixtures/hold-lock.js', 'test/fixtures/hold-lock.ts'],
  ] as const) {
    const out = join(root, built);
    if (!existsSync(out)) throw new Error(`${built} is missing: run \`npm run build\` (npm test does it for you)`);
    if (statSync(out).mtimeMs < statSync(join(root, source)).mtimeMs) process.stderr.write(`warning: ${built} is older than ${source}: run \`npm run build\`\n`);
  }
}
