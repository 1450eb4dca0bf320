import type { Lease } from '../../queue/types.js';

/**
 * Group commit of lease operations: the calls made within one window become one batch per kind,
 * written by the caller's `write` (one statement each). Pure scheduling, no SQL.
 *
 * An id already in the window waits for the next one, so a batch changes each id at most once
 * and calls on one id keep their order.
 */
export type AckKind = 'start' | 'renew' | 'complete' | 'release';

/** One call waiting for its batch. */
export interface AckOp {
  kind: AckKind;
  id: string;
  lease: Lease;
  /** renew: the lease length in ms; 0 otherwise. */
  ms: number;
  resolve(ok: boolean): void;
  reject(err: unknown): void;
}

/** The kinds, in the order a window writes them. */
const KINDS: readonly AckKind[] = ['start', 'renew', 'complete', 'release'];

/**
 * The group-commit window both batchers share: ops added within `windowMs` are written together by
 * `write`; an op whose id is already in the batch waits for the next one (a batch changes an id at
 * most once; calls on one id keep their order). Pure scheduling, no SQL.
 */
export class GroupWindow<Op extends { id: string }> {
  private pending: Op[] = [];
  private timer: NodeJS.Timeout | NodeJS.Immediate | null = null;
  private flushing = false;

  /**
   * @param windowMs the window in ms (0: the next turn of the event loop).
   * @param write writes one batch and settles each of its ops; it must not throw.
   */
  constructor(
    private readonly windowMs: number,
    private readonly write: (ops: Op[]) => Promise<void>,
  ) {}

  /** Queues one op for the current window. */
  add(op: Op): void {
    this.pending.push(op);
    if (this.timer === null && !this.flushing) this.timer = this.windowMs > 0 ? setTimeout(() => void this.flush(), this.windowMs) : setImmediate(() => void this.flush());
  }

  /** Writes everything queued now, without waiting for the window (before a close). */
  async drain(): Promise<void> {
    if (this.timer !== null) {
      clearTimeout(this.timer as NodeJS.Timeout);
      clearImmediate(this.timer as NodeJS.Immediate);
      this.timer = null;
    }
    while (this.pending.length || this.flushing) {
      if (!this.flushing) await this.flush();
      else await new Promise((r) => setImmediate(r));
    }
  }

  private async flush(): Promise<void> {
    this.timer = null;
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.pending.length) {
        const now: Op[] = [];
        const later: Op[] = [];
        const ids = new Set<string>();
        for (const op of this.pending) {
          if (ids.has(op.id)) later.push(op);
          else {
            ids.add(op.id);
            now.push(op);
          }
        }
        this.pending = later;
        await this.write(now);
      }
    } finally {
      this.flushing = false;
    }
  }
}

export class AckBatcher {
  private readonly window: GroupWindow<AckOp>;

  /**
   * @param windowMs the group-commit window in ms (0: the next turn of the event loop).
   * @param write writes one batch of one kind and settles each of its ops; it must not throw.
   */
  constructor(windowMs: number, write: (kind: AckKind, ops: AckOp[]) => Promise<void>) {
    this.window = new GroupWindow<AckOp>(windowMs, async (now) => {
      await Promise.all(KINDS.map((k) => now.filter((o) => o.kind === k)).map((ops) => (ops.length ? write(ops[0]!.kind, ops) : undefined)));
    });
  }

  /** Queues one call; resolves with whether its lease was held. */
  push(kind: AckKind, id: string, lease: Lease, ms = 0): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => this.window.add({ kind, id, lease, ms, resolve, reject }));
  }

  /** Writes everything queued now, without waiting for the window (before a close). */
  drain(): Promise<void> {
    return this.window.drain();
  }
}
