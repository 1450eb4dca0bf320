import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores: two test files at a time.
    maxWorkers: 2,
    // The built CLI that tests run in their own process (test/integration/in-process.ts) is loaded
    // by Node as bin/metaspn.js loads it, not transformed again.
    server: { deps: { external: [/\/dist\/(src|workers)\//] } },
  },
});
