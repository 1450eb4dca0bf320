#!/usr/bin/env node
// `npm test`: everything CI checks, in one command. The checks that do not depend on each other run
// at once, so that two cores are kept busy:
//   1. one TypeScript pass over every file (src, workers, bench, scripts, test) that both type-checks
//      and emits dist/ (what `npm run build` emits, plus the tests' own JavaScript, which nothing
//      loads), beside eslint and prettier;
//   2. then every test file, the chaos suites among them (vitest.config.ts has the projects).
// A failure in step 1 stops before the tests, as `build && typecheck && lint && vitest` did.
// Extra arguments go to vitest (`npm test -- test/unit`).
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (pkg, file) => join(root, 'node_modules', pkg, file);

/** Runs one command; its output is held and printed whole when it ends (no interleaving), unless `live`. */
function step(name, file, args, live = false) {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file, ...args], { cwd: root, stdio: live ? 'inherit' : ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout?.on('data', (d) => (out += d));
    child.stderr?.on('data', (d) => (out += d));
    child.on('close', (code, signal) => {
      const s = ((performance.now() - t0) / 1000).toFixed(1);
      if (out) process.stdout.write(out.endsWith('\n') ? out : `${out}\n`);
      process.stdout.write(`${code === 0 ? 'ok' : 'FAILED'}: ${name} (${s} s)${code === 0 ? '' : `, exit ${code ?? signal}`}\n`);
      resolve(code === 0);
    });
  });
}

const t0 = performance.now();
const checks = await Promise.all([
  step('tsc: typecheck and build', bin('typescript', 'bin/tsc'), ['-p', 'tsconfig.json', '--declaration']),
  step('eslint', bin('eslint', 'bin/eslint.js'), ['.', '--cache', '--cache-strategy', 'content', '--cache-location', 'node_modules/.cache/eslint/']),
  step('prettier', bin('prettier', 'bin/prettier.cjs'), ['--check', '.', '--cache', '--cache-strategy', 'content', '--log-level', 'warn']),
]);
let ok = checks.every(Boolean);
if (ok) ok = await step('vitest', bin('vitest', 'vitest.mjs'), ['run', ...process.argv.slice(2)], true);
process.stdout.write(`npm test: ${ok ? 'passed' : 'FAILED'} in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
process.exitCode = ok ? 0 : 1;
