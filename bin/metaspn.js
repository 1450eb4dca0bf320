#!/usr/bin/env node
// Loads the compiled CLI. `npm ci` builds it (the prepare script); so does `npm run build`.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write(`error: metaspn is not built (no ${fileURLToPath(entry)})\nhint: run \`npm ci\` or \`npm run build\` in ${fileURLToPath(new URL('..', import.meta.url))}\n`);
  process.exit(50);
}
// A reader that goes away (`metaspn … | head`) is no failure of the run: what is left to print is
// dropped, the run goes on and exits with its own code (no stack trace).
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err) => {
    if (err.code !== 'EPIPE' && err.code !== 'ERR_STREAM_DESTROYED') throw err;
  });
}
const { main } = await import(entry.href);
// The pipelines that ship with metaspn plug into the core here (the core never imports them).
const { registerBundled } = await import(new URL('../dist/src/pipeline/bundled.js', import.meta.url).href);
const { s1Bundle } = await import(new URL('../dist/workers/s1/bundle.js', import.meta.url).href);
registerBundled(s1Bundle);
const code = await main(process.argv);
// Output to a pipe is written asynchronously: let it drain (a --json document of any size must
// reach `jq` whole), but never wait more than 10 s on a reader that stopped reading.
const drained = (stream) => new Promise((resolve) => (stream.writableLength === 0 ? resolve() : stream.write('', () => resolve())));
await Promise.race([Promise.all([drained(process.stdout), drained(process.stderr)]), new Promise((resolve) => setTimeout(resolve, 10_000).unref())]);
// Exit explicitly: a hung task or an open handle must not keep cron waiting.
process.exit(code);
