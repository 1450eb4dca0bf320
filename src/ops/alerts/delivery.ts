import { createHmac } from 'node:crypto';
import { sign } from '../signature.js';

export interface DeliveryTarget {
  url: string;
  signingSecret: string | null;
  timeoutMs: number;
  userAgent: string;
}

/**
 * The Standard Webhooks signature (standardwebhooks.com): `v1,` and the base64 HMAC-SHA256 of
 * `<id>.<timestamp>.<body>`. A secret in its `whsec_<base64>` form is the key those bytes decode to;
 * any other secret is used as it is written (its UTF-8 bytes).
 */
export function standardWebhookSignature(secret: string, id: string, timestamp: string, body: string): string {
  const key = secret.startsWith('whsec_') ? Buffer.from(secret.slice('whsec_'.length), 'base64') : Buffer.from(secret, 'utf8');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

/**
 * POSTs one alert event. With a signing secret it is signed twice over: in the Standard Webhooks
 * form (`webhook-id`, `webhook-timestamp`, `webhook-signature`), which receivers' libraries verify,
 * and with metaspn's own `x-metaspn-timestamp` (unix seconds) and `x-metaspn-signature`
 * (HMAC-SHA256 hex over `<timestamp>.<body>`). `webhook-id` (the event id) is sent either way, for
 * dedup. Any 2xx is a delivery; anything else (status, timeout, refused connection) is an error
 * message, and the caller keeps the event pending.
 */
export async function deliver(target: DeliveryTarget, eventId: string, body: string, nowMs = Date.now()): Promise<string | null> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': target.userAgent,
    'x-metaspn-event-id': eventId,
    'webhook-id': eventId,
  };
  if (target.signingSecret) {
    const ts = String(Math.floor(nowMs / 1000));
    headers['webhook-timestamp'] = ts;
    headers['webhook-signature'] = standardWebhookSignature(target.signingSecret, eventId, ts, body);
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
