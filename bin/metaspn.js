#!/usr/bin/env node
// Loads the compiled CLI. `npm ci` builds it (the prepare script); so does `npm run build`.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write(`error: metaspn is not built (no ${fileURLToPath(entry)})\nhint: run \`npm ci\` or \`npm run build\` in ${fileURLToPath(new URL('..', import.meta.url))}\n`);
  process.exit(50);
}
const { main } = await import(entry.href);
const code = await main(process.argv);
// Exit explicitly: a hung task or an open handle must not keep cron waiting.
process.exit(code);
