import type { Logger } from 'pino';
import type { PgSetting } from '../backend/pg/setting.js';
import { policyFor, type WorkspaceConfig } from '../config/load.js';
import { openQueue } from '../queue/open.js';
import type { Queue } from '../queue/types.js';
import type { WorkspacePaths } from '../storage/paths.js';

/** Queues the server keeps open at most; the least recently used idle one is closed beyond it. Default 64. */
export const OPEN_QUEUES_MAX = 64;

/**
 * The server's queues, each opened once and kept for the server's lifetime. Opening a queue
 * replays its whole log (hundreds of milliseconds for 300k tasks, on the event loop); a queue
 * kept open catches up with what other processes appended since its last round, so a write costs
 * what the write costs. Beyond `max` open queues, the least recently used one with nothing in
 * flight is closed (a later write reopens it).
 */
export class QueueHandles {
  private readonly open = new Map<string, { q: Queue; busy: number }>();
  private closed = false;

  constructor(
    private readonly ws: WorkspacePaths,
    private readonly cfg: WorkspaceConfig,
    private readonly log: Logger,
    private readonly max = OPEN_QUEUES_MAX,
    /** The PostgreSQL backend (null: the workspace's files; undefined: what the environment and config say). */
    private readonly backend?: PgSetting | null,
  ) {}

  /** Runs `fn` with the queue open; the handle stays open afterwards. */
  async use<T>(worker: string, fn: (q: Queue) => Promise<T>): Promise<T> {
    const h = this.handle(worker);
    h.busy++;
    try {
      return await fn(h.q);
    } finally {
      h.busy--;
      this.evict();
    }
  }

  /** Opens the queues and loads their logs now (a stats round each), so the first write does not pay for it. */
  async preload(workers: readonly string[]): Promise<void> {
    for (const w of workers.slice(0, this.max)) {
      if (this.closed) return;
      await this.use(w, (q) => q.stats());
      // Requests that arrived while this queue loaded are answered before the next one loads.
      await new Promise((r) => setImmediate(r));
    }
  }

  private handle(worker: string): { q: Queue; busy: number } {
    if (this.closed) throw new Error('the server is stopping');
    let h = this.open.get(worker);
    if (h) {
      // Most recently used last.
      this.open.delete(worker);
    } else {
      h = { q: openQueue(this.ws, worker, policyFor(this.cfg, worker), this.log, this.backend), busy: 0 };
    }
    this.open.set(worker, h);
    return h;
  }

  private evict(): void {
    if (this.open.size <= this.max) return;
    for (const [name, h] of this.open) {
      if (this.open.size <= this.max) break;
      if (h.busy > 0) continue;
      this.open.delete(name);
      void h.q.close().catch((err: unknown) => this.log.warn({ event: 'ops_queue_close_failed', queue: name, error: (err as Error).message }, 'closing a queue failed'));
    }
  }

  /** Closes every queue (after in-flight writes have finished: the server closes its connections first). */
  async closeAll(): Promise<void> {
    this.closed = true;
    const all = [...this.open.values()];
    this.open.clear();
    await Promise.all(all.map((h) => h.q.close()));
  }
}
