import { configDefaults, defineConfig } from 'vitest/config';

/**
 * Files that run in a module graph of their own: one that mocks a module (node:fs), and the chaos
 * suites (timing-sensitive, run one at a time by npm test). Every other file shares its worker's
 * modules with the files before it: loading src/ and Season 1 once per worker instead of once per
 * file took the unit tests from 64 s to 20 s. A file that changes process state restores it.
 */
const ISOLATED = ['test/unit/atomic.test.ts', 'test/chaos/**/*.test.ts'];

export default defineConfig({
  test: {
    setupFiles: ['test/setup.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores: two test files at a time.
    maxWorkers: 2,
    // The built CLI that tests run in their own process (test/integration/in-process.ts) is loaded
    // by Node as bin/metaspn.js loads it, not transformed again.
    server: { deps: { external: [/\/dist\/(src|workers)\//] } },
    projects: [
      { extends: true, test: { name: 'isolated', include: ISOLATED } },
      { extends: true, test: { name: 'shared', include: ['test/**/*.test.ts'], exclude: [...configDefaults.exclude, ...ISOLATED], isolate: false } },
    ],
  },
});
