import { sign } from '../signature.js';

export interface DeliveryTarget {
  url: string;
  signingSecret: string | null;
  timeoutMs: number;
  userAgent: string;
}

/**
 * POSTs one alert event. With a signing secret it carries `x-metaspn-timestamp` (unix seconds) and
 * `x-metaspn-signature` (HMAC-SHA256 hex over `<timestamp>.<body>`), exactly like a signed task
 * submission, so a receiver verifies both with the same code. Any 2xx is a delivery; anything else
 * (status, timeout, refused connection) is an error message, and the caller keeps the event pending.
 */
export async function deliver(target: DeliveryTarget, eventId: string, body: string, nowMs = Date.now()): Promise<string | null> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': target.userAgent,
    'x-metaspn-event-id': eventId,
  };
  if (target.signingSecret) {
    const ts = String(Math.floor(nowMs / 1000));
    headers['x-metaspn-timestamp'] = ts;
    headers['x-metaspn-signature'] = sign(target.signingSecret, ts, body);
  }
  try {
    const res = await fetch(target.url, { method: 'POST', headers, body, signal: AbortSignal.timeout(target.timeoutMs), redirect: 'manual' });
    await res.arrayBuffer().catch(() => undefined);
    if (res.status >= 200 && res.status < 300) return null;
    return `the webhook answered HTTP ${res.status}`;
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    if (e.name === 'TimeoutError' || e.name === 'AbortError') return `no answer within ${target.timeoutMs} ms`;
    return e.cause?.code ? `${e.cause.code}${e.cause.message ? `: ${e.cause.message}` : ''}` : e.message;
  }
}
