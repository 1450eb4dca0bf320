import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeAtomicSync } from '../storage/atomic.js';
import type { WorkspacePaths } from '../storage/paths.js';

/** HMAC-SHA256 over `<timestamp>.<body>`, hex: what x-metaspn-signature carries. */
export function sign(secret: string, timestamp: string, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

export function verifySignature(secret: string, timestamp: string | undefined, signature: string | undefined, body: string, toleranceSec: number, nowMs = Date.now()): string | null {
  if (!timestamp || !signature) return 'missing x-metaspn-timestamp or x-metaspn-signature';
  const t = Number(timestamp);
  if (!Number.isFinite(t)) return 'x-metaspn-timestamp is not unix seconds';
  if (Math.abs(nowMs / 1000 - t) > toleranceSec) return `timestamp outside the tolerance window of ${toleranceSec}s`;
  const want = Buffer.from(sign(secret, timestamp, body), 'hex');
  const got = Buffer.from(signature.replace(/^sha256=/, ''), 'hex');
  if (got.length !== want.length || !timingSafeEqual(got, want)) return 'signature does not match';
  return null;
}

/**
 * Event ids already answered: a replayed request gets the first answer back and enqueues nothing
 * twice. One small file per event under ops/events/, written atomically.
 */
export class EventMemory {
  private readonly dir: string;

  constructor(ws: WorkspacePaths) {
    this.dir = join(ws.root, 'ops', 'events');
  }

  private path(eventId: string): string {
    return join(this.dir, `${createHash('sha256').update(eventId).digest('hex').slice(0, 32)}.json`);
  }

  recall(eventId: string): { status: number; body: unknown } | null {
    const p = this.path(eventId);
    if (!existsSync(p)) return null;
    try {
      return JSON.parse(readFileSync(p, 'utf8')) as { status: number; body: unknown };
    } catch {
      return null;
    }
  }

  remember(eventId: string, answer: { status: number; body: unknown }): void {
    mkdirSync(this.dir, { recursive: true });
    writeAtomicSync(this.path(eventId), JSON.stringify({ event_id: eventId, at: new Date().toISOString(), ...answer }));
  }
}
