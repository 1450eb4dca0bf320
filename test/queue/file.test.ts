import { tempDir } from '../temp.js';
import { FileQueue, type FileQueueOptions } from '../../src/queue/file/file-queue.js';
import type { Queue } from '../../src/queue/types.js';
import { describeQueueBackend } from './conformance.js';

/** How each queue was opened: a reopen opens the same folder with the same options. */
const opened = new WeakMap<Queue, FileQueueOptions>();

function open(opts: FileQueueOptions): FileQueue {
  const q = new FileQueue(opts);
  opened.set(q, opts);
  return q;
}

describeQueueBackend('file', async (opts) => open({ ...opts, workspace: tempDir('metaspn-q-') }), {
  reopen: async (q, compact) => {
    const opts = opened.get(q)!;
    await q.close();
    const fresh = open(opts);
    if (compact) await fresh.compact();
    return fresh;
  },
});
