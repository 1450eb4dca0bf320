/**
 * Runs `metaspn s1 run-local` in this process (as bin/metaspn.js would) and prints one JSON line:
 * exit code, wall ms, CPU ms (user + system, this process), peak RSS.
 * `node dist/bench/s1-child.js WORKSPACE DATE`
 */
import { main } from '../src/cli/main.js';
import { registerBundled } from '../src/pipeline/bundled.js';
import { s1Bundle } from '../workers/s1/bundle.js';

// As bin/metaspn.js does: the core never imports Season 1, the entry point plugs it in.
registerBundled(s1Bundle);

const [ws, date] = process.argv.slice(2);
const t0 = performance.now();
const code = await main(['node', 'metaspn', 's1', 'run-local', '--workspace', ws!, '--date', date!, '--json']);
const ms = performance.now() - t0;
const cpu = process.cpuUsage();
process.stderr.write(`${JSON.stringify({ exit_code: code, ms, cpu_ms: (cpu.user + cpu.system) / 1000, max_rss_mb: process.resourceUsage().maxRSS / 1024 })}\n`);
process.exit(code);
