/**
 * Checks that a FileQueue round holding the queue mutex for a long time (the full replay of a big
 * log on open, or a compaction at ~1M tasks, with the event loop blocked) keeps it: the mutex is a
 * kernel lock (src/storage/file-lock.ts), so a second process waits however long the first takes.
 * (With the mtime-judged lock this replaced, the second process took it over after 5 s while the
 * first was still inside its critical section.)
 *
 *   node dist/bench/lock-hold.js [tasks=2000000]
 *
 * Prints when each process acquires and releases; "B: LOCK ACQUIRED" must come after
 * "A: releasing lock": both holding it at once would be a bug.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { FileQueue } from '../src/queue/file/file-queue.js';
import { fmtInt, parseCount, withTempWorkspace } from './lib.js';

const QUEUE = 'bench';
const t = (): string => new Date().toISOString().slice(11, 23);

/** Logs the acquisitions and releases of the queue's private mutex (found by shape). */
function traceMutex(q: FileQueue, who: string): void {
  for (const v of Object.values(q as unknown as Record<string, unknown>)) {
    const m = v as { acquire?: (...a: unknown[]) => Promise<void>; releaseLock?: () => Promise<void> } | null;
    if (m && typeof m === 'object' && typeof m.acquire === 'function' && typeof m.releaseLock === 'function') {
      const acquire = m.acquire.bind(m);
      const release = m.releaseLock.bind(m);
      m.acquire = async (...a: unknown[]): Promise<void> => {
        await acquire(...a);
        console.log(`${t()} ${who}: LOCK ACQUIRED`);
      };
      m.releaseLock = async (): Promise<void> => {
        console.log(`${t()} ${who}: releasing lock`);
        await release();
      };
      return;
    }
  }
  throw new Error('no mutex field on FileQueue');
}

async function role(who: 'A' | 'B', workspace: string): Promise<void> {
  const q = new FileQueue({ workspace, name: QUEUE, warn: (msg, d) => console.log(`${t()} ${who} warn: ${msg} ${JSON.stringify(d)}`) });
  traceMutex(q, who);
  if (who === 'A') {
    console.log(`${t()} A: opening the queue (full replay inside the first locked round)`);
    const s = await q.stats();
    console.log(`${t()} A: replay done, ${fmtInt(s.ready)} ready`);
  } else {
    console.log(`${t()} B: enqueue of 1 task, waiting for the lock`);
    const r = await q.enqueue([{ id: 'late-1', payload: {} }]);
    console.log(`${t()} B: enqueue returned ${JSON.stringify(r)}`);
  }
  await q.close();
}

async function main(): Promise<void> {
  const [first, second] = process.argv.slice(2);
  if ((first === 'A' || first === 'B') && second) return role(first, second);
  const size = first ? parseCount(first) : 2_000_000;
  const self = fileURLToPath(import.meta.url);
  await withTempWorkspace('lock-hold', async (ws) => {
    const q = new FileQueue({ workspace: ws, name: QUEUE });
    for (let i = 0; i < size; i += 10_000) {
      const batch = [];
      for (let j = i; j < Math.min(size, i + 10_000); j++) batch.push({ id: `t${j}`, payload: { n: j } });
      await q.enqueue(batch);
    }
    await q.close();
    console.log(`${t()} setup: ${fmtInt(size)} tasks enqueued`);
    const run = (who: string): Promise<unknown> => new Promise((r) => spawn(process.execPath, [self, who, ws], { stdio: 'inherit' }).on('exit', r));
    const a = run('A');
    await new Promise((r) => setTimeout(r, 1000));
    await Promise.all([a, run('B')]);
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
