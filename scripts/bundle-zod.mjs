#!/usr/bin/env node
// After TypeScript's emit (`npm run build`, scripts/test.mjs): replaces dist/src/zod.js, which
// TypeScript emits as a re-export of the `zod` package, with one ES module holding only the zod code
// those exports reach (rolldown, tree-shaken; src/zod.ts says why). Idempotent: a file that is
// already the bundle (its first line is BANNER) is left as it is, so an incremental build that did
// not emit src/zod.ts again costs nothing.
import { readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rolldown } from 'rolldown';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const target = join(root, 'dist/src/zod.js');
const BANNER = '// zod, the parts src/zod.ts exports, tree-shaken by scripts/bundle-zod.mjs (rolldown)';

if (!readFileSync(target, 'utf8').startsWith(BANNER)) {
  const bundle = await rolldown({ input: target, platform: 'node', logLevel: 'warn' });
  const staging = `${target}.${process.pid}.tmp`;
  await bundle.write({ file: staging, format: 'esm', banner: BANNER, sourcemap: false });
  await bundle.close();
  renameSync(staging, target);
  // TypeScript's map described the re-export, not this file.
  rmSync(`${target}.map`, { force: true });
}
