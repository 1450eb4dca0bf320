/**
 * Child process of the queue benchmark: opens the FileQueue of a prepared workspace the way a
 * worker does, claims one task (which loads the whole log into memory), reports its memory as one
 * JSON line on stdout, gives the task back and exits.
 *
 *   node dist/bench/rss-child.js <workspace> <queue-name>
 */
import { performance } from 'node:perf_hooks';
import { FileQueue } from '../src/queue/file/file-queue.js';
import { makeOwner } from '../src/queue/owner.js';

export interface RssReport {
  /** Resident set size after the imports, before the queue is opened, MB: what node itself takes. */
  rss_before_mb: number;
  /** Resident set size right after the first claim, MB (2^20 bytes). */
  rss_mb: number;
  /** Peak resident set size of the process so far (getrusage maxrss), MB. */
  max_rss_mb: number;
  heap_used_mb: number;
  /** Typed arrays and Buffers outside the JS heap, MB. */
  array_buffers_mb: number;
  external_mb: number;
  /** Time of the first claim: open, full replay of the log, claim. */
  load_ms: number;
  claimed: number;
  ready_after: number;
}

async function main(): Promise<void> {
  const [workspace, name] = process.argv.slice(2);
  if (!workspace || !name) throw new Error('usage: rss-child <workspace> <queue-name>');
  const MB = 1 << 20;
  const rss_before_mb = process.memoryUsage().rss / MB;
  const queue = new FileQueue({ workspace, name });
  const owner = makeOwner();
  const t0 = performance.now();
  const got = await queue.claim({ owner, max: 1, lease_ms: 60_000 });
  const load_ms = performance.now() - t0;
  const mem = process.memoryUsage();
  const report: RssReport = {
    rss_before_mb,
    rss_mb: mem.rss / MB,
    max_rss_mb: (process.resourceUsage().maxRSS * 1024) / MB,
    heap_used_mb: mem.heapUsed / MB,
    array_buffers_mb: mem.arrayBuffers / MB,
    external_mb: mem.external / MB,
    load_ms,
    claimed: got.length,
    ready_after: 0,
  };
  // Leave the queue as it was found: the claimed task goes back to ready.
  for (const c of got) await queue.release(c.task.id, c.lease);
  report.ready_after = (await queue.stats()).ready;
  await queue.close();
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
