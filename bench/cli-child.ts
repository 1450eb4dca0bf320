/**
 * Runs one metaspn command in this process (as bin/metaspn.js would, Season 1 plugged in) and
 * prints one JSON line on stderr: exit code, wall ms, peak RSS.
 *
 *   node dist/bench/cli-child.js pipeline run daily-projections --workspace DIR --date D --json
 */
import { main } from '../src/cli/main.js';
import { registerBundled } from '../src/pipeline/bundled.js';
import { s1Bundle } from '../workers/s1/bundle.js';

registerBundled(s1Bundle);
const t0 = performance.now();
const code = await main(['node', 'metaspn', ...process.argv.slice(2)]);
const ms = performance.now() - t0;
process.stderr.write(`${JSON.stringify({ exit_code: code, ms, max_rss_mb: process.resourceUsage().maxRSS / 1024 })}\n`);
// Once stdout is flushed: a pipe takes 64 KiB at a time, and exiting at once cut the end off a
// larger report (the example at 100k players: its check observes every team), which then did not parse.
process.stdout.write('', () => process.exit(code));
