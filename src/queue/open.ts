import type { Logger } from 'pino';
import type { QueuePolicy } from '../config/policy.js';
import type { WorkspacePaths } from '../storage/paths.js';
import { FileQueue } from './file/file-queue.js';
import type { Queue } from './types.js';

/** The one place that picks a backend for a workspace (the file backend; PostgreSQL later). */
export function openQueue(ws: WorkspacePaths, name: string, policy: QueuePolicy, log: Logger): Queue {
  return new FileQueue({
    workspace: ws.root,
    name,
    max_attempts: policy.max_attempts,
    ack_window_ms: policy.ack_window_ms,
    max_queue_size: policy.max_queue_size,
    warn: (msg, details) => log.warn({ queue: name, ...details }, msg),
  });
}
