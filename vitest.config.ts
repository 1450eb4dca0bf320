import { configDefaults, defineConfig } from 'vitest/config';
import { LongestFirst } from './test/sequencer.js';

/**
 * Three projects, all run by one `vitest run` (npm test), their files side by side on the two cores:
 * - chaos: the chaos suites (test/chaos);
 * - isolated: a file that mocks a module (node:fs), in a module graph of its own;
 * - shared: every other file.
 * The files of chaos and shared share their worker's modules with the files before them: loading
 * src/ and Season 1 once per worker instead of once per file took the unit tests from 64 s to 20 s
 * (and spares each chaos suite about 2 s of loading). A file that changes process state restores it.
 * Files start longest first (test/sequencer.ts: the longest files as measured, then vitest's order:
 * the durations of an earlier run when it has them, else by size), so that no long file starts last.
 */
const CHAOS = ['test/chaos/**/*.test.ts'];
const ISOLATED = ['test/unit/atomic.test.ts'];

export default defineConfig({
  test: {
    setupFiles: ['test/setup.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Four test files at a time on two cores: most files spend most of their time waiting (on the
    // processes they start and kill, on PostgreSQL, on leases and stopped lock holders), and with
    // two at a time the cores were idle about two thirds of the run (npm test took 495 s on a quiet
    // machine for 330-370 s of CPU). The suites are written to pass at load 15 (others' benches
    // beside them).
    maxWorkers: 4,
    sequence: { sequencer: LongestFirst },
    // The built CLI that tests run in their own process (test/integration/in-process.ts) is loaded
    // by Node as bin/metaspn.js loads it, not transformed again.
    server: { deps: { external: [/\/dist\/(src|workers)\//] } },
    projects: [
      { extends: true, test: { name: 'chaos', include: CHAOS, isolate: false } },
      { extends: true, test: { name: 'isolated', include: ISOLATED } },
      { extends: true, test: { name: 'shared', include: ['test/**/*.test.ts'], exclude: [...configDefaults.exclude, ...CHAOS, ...ISOLATED], isolate: false } },
    ],
  },
});
