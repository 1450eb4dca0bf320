#!/usr/bin/env node
// `npm run chaos [-- --iterations N] [--seed S] [--suite NAME ...] [--out DIR] [--keep]`
// Runs the chaos suites long (test/chaos/*.test.ts with CHAOS_FULL=1), writes each suite's figures
// to DIR/<suite>.json and prints a summary. `npm test` runs the same suites short.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const SUITES = ['crash', 'concurrency', 'corruption', 'diskfull', 'fuzz', 'locks', 'lock-holders', 'fair-attempts', 'clock-steps', 'pg-effects', 'pg-s1', 'pg-run-lock'];
const root = resolve(import.meta.dirname, '..');

function usage(msg) {
  process.stderr.write(`chaos: ${msg}\nusage: npm run chaos -- [--iterations 200] [--seed N] [--suite ${SUITES.join('|')}]... [--out DIR] [--keep]\n`);
  process.exit(64);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      iterations: { type: 'string', default: '200' },
      seed: { type: 'string' },
      suite: { type: 'string', multiple: true },
      out: { type: 'string' },
      keep: { type: 'boolean', default: false },
    },
    strict: true,
  }));
} catch (err) {
  usage(err.message);
}
if (!/^[1-9]\d*$/.test(values.iterations)) usage(`--iterations must be a whole number >= 1, got "${values.iterations}"`);
if (values.seed !== undefined && !/^-?\d+$/.test(values.seed)) usage(`--seed must be an integer, got "${values.seed}"`);
for (const s of values.suite ?? []) if (!SUITES.includes(s)) usage(`unknown suite "${s}"`);

const seed = values.seed ?? String(Math.floor(Math.random() * 2 ** 31));
const out = resolve(values.out ?? join(tmpdir(), `metaspn-chaos-results-${new Date().toISOString().replace(/[:.]/g, '-')}`));
mkdirSync(out, { recursive: true });
const files = (values.suite ?? SUITES).map((s) => join('test', 'chaos', `${s}.test.ts`));
process.stdout.write(`chaos: ${values.iterations} iterations, seed ${seed}, suites ${(values.suite ?? SUITES).join(', ')}; figures in ${out}\n`);

const t0 = Date.now();
const child = spawn(process.execPath, [join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '--config', join('chaos', 'vitest.config.mjs'), ...files], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, CHAOS_FULL: '1', CHAOS_ITERATIONS: values.iterations, CHAOS_SEED: seed, CHAOS_RESULTS: out, ...(values.keep ? { CHAOS_KEEP: '1' } : {}) },
});
child.on('close', (code) => {
  const minutes = ((Date.now() - t0) / 60_000).toFixed(1);
  process.stdout.write(`\nchaos: finished in ${minutes} min, exit ${code}; replay with --seed ${seed}\n`);
  if (existsSync(out)) {
    for (const f of readdirSync(out).sort()) {
      const r = JSON.parse(readFileSync(join(out, f), 'utf8'));
      const { suite, at: _at, ...rest } = r;
      process.stdout.write(`  ${suite}: ${JSON.stringify(rest).slice(0, 400)}\n`);
    }
  }
  process.exitCode = code ?? 1;
});
