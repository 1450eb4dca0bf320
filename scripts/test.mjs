#!/usr/bin/env node
// `npm test`: everything CI checks, in one command. The checks that do not depend on each other run
// at once, so that two cores are kept busy:
//   1. one TypeScript pass over every file (src, workers, bench, scripts, test) that both type-checks
//      and emits dist/ (what `npm run build` emits, plus the tests' own JavaScript, which nothing
//      loads), incremental (dist/.tsbuildinfo), with eslint and prettier started beside it;
//   2. as soon as that pass is clean, every test file, the chaos suites among them (vitest.config.ts
//      has the projects), while eslint and prettier finish: the tests wait on processes and the
//      database much of the time, and the linters use that time instead of holding the tests back.
// A type error stops before the tests; a lint or format failure fails `npm test` once the tests end
// (its output is printed then, not into the tests' live output).
// Extra arguments go to vitest (`npm test -- test/unit`).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (pkg, file) => join(root, 'node_modules', pkg, file);

// NODE_EXTRA_CA_CERTS (set on this machine and many CI images to the system's CA bundle, 220 kB)
// makes Node read and parse the bundle at every start: `node -e 0` 70 ms with it, 20 ms without,
// over the 300-odd node processes of a run (tsc, the linters, vitest's workers, the CLIs the tests
// start). Only npm in the package test may go out over TLS: the value is kept aside for it
// (METASPN_TEST_NPM_CA_CERTS, test/integration/package.test.ts gives it back to npm), and every
// step here runs without it. test/global-setup.ts does the same for a `vitest run` started by hand.
const env = { ...process.env };
if (env.NODE_EXTRA_CA_CERTS !== undefined) {
  env.METASPN_TEST_NPM_CA_CERTS = env.NODE_EXTRA_CA_CERTS;
  delete env.NODE_EXTRA_CA_CERTS;
}

/**
 * Runs one command. `printed`: its output and its one-line result printed when it ends (no
 * interleaving); 'live': its output goes straight to the terminal; 'held': output and result are
 * handed back (`{ok, text}`) for the caller to print when it chooses.
 */
function step(name, file, args, mode = 'printed') {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file, ...args], { cwd: root, env, stdio: mode === 'live' ? 'inherit' : ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout?.on('data', (d) => (out += d));
    child.stderr?.on('data', (d) => (out += d));
    child.on('close', (code, signal) => {
      const s = ((performance.now() - t0) / 1000).toFixed(1);
      const text = `${out && !out.endsWith('\n') ? `${out}\n` : out}${code === 0 ? 'ok' : 'FAILED'}: ${name} (${s} s)${code === 0 ? '' : `, exit ${code ?? signal}`}\n`;
      if (mode === 'held') return resolve({ ok: code === 0, text });
      process.stdout.write(text);
      resolve(code === 0);
    });
  });
}

const t0 = performance.now();
// Prettier keeps one cache file, keyed by absolute path and rewritten whole by each run: the
// checkouts of one machine that share node_modules (git worktrees) would throw each other's
// entries away, and a check with none cached costs 8-14 s of CPU instead of about 1 s. Each
// checkout keeps its own (eslint already names its cache file after the working directory).
const prettierCache = `node_modules/.cache/prettier/${createHash('sha256').update(root).digest('hex').slice(0, 12)}`;
const lint = Promise.all([
  step('eslint', bin('eslint', 'bin/eslint.js'), ['.', '--cache', '--cache-strategy', 'content', '--cache-location', 'node_modules/.cache/eslint/'], 'held'),
  step('prettier', bin('prettier', 'bin/prettier.cjs'), ['--check', '.', '--cache', '--cache-strategy', 'content', '--cache-location', prettierCache, '--log-level', 'warn'], 'held'),
]);
// Incremental: what a run after a small change re-checks and re-emits is that change and what depends
// on it (3.7 s of CPU instead of 15-17 s for the whole tree). The build state lives in dist/, so a
// removed dist/ is a full pass again.
let ok = await step('tsc: typecheck and build', bin('typescript', 'bin/tsc'), ['-p', 'tsconfig.json', '--declaration', '--incremental', '--tsBuildInfoFile', 'dist/.tsbuildinfo']);
// What `npm run build` does after tsc: zod's parts in one tree-shaken module (src/zod.ts).
if (ok) ok = await step('zod bundle', join(root, 'scripts/bundle-zod.mjs'), []);
if (ok) ok = await step('vitest', bin('vitest', 'vitest.mjs'), ['run', ...process.argv.slice(2)], 'live');
// The linters' reports, whole, after the tests' live output.
for (const report of await lint) {
  process.stdout.write(report.text);
  ok &&= report.ok;
}
process.stdout.write(`npm test: ${ok ? 'passed' : 'FAILED'} in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
process.exitCode = ok ? 0 : 1;
