/**
 * Child process of the PostgreSQL bench: a worker's memory while it drains a prepared queue, on
 * PostgreSQL or on files, with the same loop (runWorker, no-op tasks, concurrency 8). Prints one
 * JSON line on stdout.
 *
 *   node dist/bench/pg-rss-child.js pg <database-url> <queue>
 *   node dist/bench/pg-rss-child.js file <workspace> <queue>
 */
import { PgQueue } from '../src/backend/pg/pg-queue.js';
import { FileQueue } from '../src/queue/file/file-queue.js';
import type { Queue } from '../src/queue/types.js';
import { drainOnce } from './lib.js';
import { policyWith } from './queue.js';

/** What the child reports, MB (2^20 bytes). */
export interface PgRssReport {
  /** After the imports, before the queue is opened: what node itself takes. */
  rss_before_mb: number;
  /** Peak resident set size of the process (getrusage maxrss). */
  max_rss_mb: number;
  /** Resident set size sampled every 50 ms during the drain: the highest sample. */
  rss_sampled_max_mb: number;
  completed: number;
}

async function main(): Promise<void> {
  const [backend, where, name] = process.argv.slice(2);
  if ((backend !== 'pg' && backend !== 'file') || !where || !name) throw new Error('usage: pg-rss-child pg|file <url|workspace> <queue>');
  const MB = 1 << 20;
  const rss_before_mb = process.memoryUsage().rss / MB;
  const queue: Queue = backend === 'pg' ? new PgQueue({ name, setting: { url: where, source: 'bench' } }) : new FileQueue({ workspace: where, name });
  let sampled = 0;
  const timer = setInterval(() => (sampled = Math.max(sampled, process.memoryUsage().rss)), 50);
  try {
    const summary = await drainOnce(queue, { name, handle: () => undefined }, policyWith({ concurrency: 8 }), backend === 'file' ? where : '/nonexistent-bench-workspace');
    const report: PgRssReport = { rss_before_mb, max_rss_mb: (process.resourceUsage().maxRSS * 1024) / MB, rss_sampled_max_mb: sampled / MB, completed: summary.completed };
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } finally {
    clearInterval(timer);
    await queue.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
