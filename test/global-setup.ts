import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Integration tests drive the compiled CLI, and the run-lock holder fixture runs as compiled
 * (dist/test/fixtures/hold-lock.js, which the build emits but the package does not ship): `npm test`
 * builds both first.
 */
export default function setup(): void {
  dropCaCerts();
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

/**
 * NODE_EXTRA_CA_CERTS costs every node process about 50 ms of CPU at its start (scripts/test.mjs):
 * a `vitest run` started by hand drops it here, before its workers start, so that they and the
 * processes they start go without it; npm in the package test gets it back
 * (METASPN_TEST_NPM_CA_CERTS).
 */
function dropCaCerts(): void {
  const ca = process.env.NODE_EXTRA_CA_CERTS;
  if (ca === undefined) return;
  process.env.METASPN_TEST_NPM_CA_CERTS = ca;
  delete process.env.NODE_EXTRA_CA_CERTS;
}
