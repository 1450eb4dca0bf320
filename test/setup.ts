import { afterEach } from 'vitest';
import { registerBundled } from '../src/pipeline/bundled.js';
import { s1Bundle } from '../workers/s1/bundle.js';
import { assertNoChildren, cleanWorkspaces } from './integration/cli.js';

// In-process tests see what the CLI sees: Season 1 registered as bundled (bin/metaspn.js does it).
registerBundled(s1Bundle);

// Every test: temp workspaces removed (kept when it failed), and no child process left running.
afterEach(() => {
  cleanWorkspaces();
  assertNoChildren();
});
