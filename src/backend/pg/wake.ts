/**
 * Wake-ups by LISTEN/NOTIFY: an enqueue (or a retry of dead letters) that makes tasks ready sends
 * `pg_notify('metaspn_wake', '<schema>.<queue>')` in its transaction, delivered at commit; an idle
 * worker waits on a session of its own that listens, instead of sleeping its whole poll interval.
 * A notification is only a hint: the wait still ends after the poll interval (the fallback), and
 * after the listening session was lost it ends at once once listening again, since anything sent
 * meanwhile is gone (SCALE-OUT §3.7).
 */
import type pg from 'pg';
import { CONNECT_TIMEOUT_MS, driver, KEEPALIVE_DELAY_MS } from './connection.js';

/** The channel every schema's enqueuers notify; the payload names the schema and queue. */
export const WAKE_CHANNEL = 'metaspn_wake';

/** After a failed connect, no new try before this many ms (the waits poll meanwhile). */
const RETRY_MS = 1000;

/** A session that listens for wake-ups of one `<schema>.<queue>` key. */
export class WakeListener {
  private client: Promise<pg.Client | null> | null = null;
  private lost = true;
  private retryAt = 0;
  private readonly waiters = new Set<() => void>();
  private closed = false;

  constructor(
    private readonly url: string,
    private readonly key: string,
  ) {}

  /**
   * Resolves when a wake-up for this key arrives, after `ms`, when `signal` aborts, or at once
   * when the session (re)started listening (notifications sent while it was not were lost).
   */
  async wait(ms: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted || this.closed) return;
    if (this.lost && Date.now() >= this.retryAt) {
      const fresh = await this.listen();
      // Listening anew: whatever was sent before is lost, so look at the queue now.
      if (fresh) return;
    }
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      this.waiters.add(done);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of [...this.waiters]) w();
    const c = await this.client?.catch(() => null);
    await c?.end().catch(() => undefined);
  }

  /** Opens the listening session; true when it listens now. */
  private async listen(): Promise<boolean> {
    const old = await this.client?.catch(() => null);
    await old?.end().catch(() => undefined);
    const c = new (driver().Client)({
      connectionString: this.url,
      keepAlive: true,
      keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      application_name: 'metaspn listen',
    });
    const gone = (): void => {
      this.lost = true;
      // A waiter looks at the queue now, then listens again on its next wait.
      for (const w of [...this.waiters]) w();
    };
    c.on('error', gone);
    c.on('end', gone);
    c.on('notification', (n) => {
      if (n.channel !== WAKE_CHANNEL || n.payload !== this.key) return;
      for (const w of [...this.waiters]) w();
    });
    this.client = (async () => {
      try {
        await c.connect();
        await c.query(`LISTEN ${WAKE_CHANNEL}`);
        this.lost = false;
        return c;
      } catch {
        this.lost = true;
        this.retryAt = Date.now() + RETRY_MS;
        await c.end().catch(() => undefined);
        return null;
      }
    })();
    return (await this.client) !== null;
  }
}
