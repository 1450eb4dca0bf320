import { afterEach } from 'vitest';
import { assertNoChildren, cleanWorkspaces } from './integration/cli.js';

// Every test: temp workspaces removed (kept when it failed), and no child process left running.
afterEach(() => {
  cleanWorkspaces();
  assertNoChildren();
});
