import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { isLoopback, normalizeIp, type OpsSettings } from './settings.js';

/** Constant-time token check: both sides hashed first, so their lengths never leak either. */
export function tokenMatches(given: string | null, expected: string | null): boolean {
  if (!given || !expected) return false;
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

function bearer(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  const m = h ? /^Bearer\s+(.+)$/i.exec(h) : null;
  return m ? m[1]!.trim() : null;
}

/**
 * Writes need all of: writes enabled (production is read-only unless enabled explicitly), the
 * caller's address in the allowlist, and the bearer token. Anything else: 401/403 with the reason.
 */
export function checkWrite(s: OpsSettings, req: FastifyRequest): { status: 401 | 403; reason: string } | null {
  if (!s.writeEnabled) {
    return { status: 403, reason: `writes are disabled in ${s.env.toUpperCase()} (METASPN_ADMIN_WRITE_ENABLED=${s.env === 'production' ? 'false by default in production' : 'false'})` };
  }
  const ip = normalizeIp(req.ip);
  if (!s.allow.check(ip.address, ip.type)) return { status: 403, reason: `address ${ip.address} is not in METASPN_ADMIN_IP_ALLOWLIST (${s.allowText})` };
  if (!s.token) return { status: 403, reason: 'no METASPN_ADMIN_TOKEN is set on the server: writes are refused' };
  const given = bearer(req);
  if (!given) return { status: 401, reason: 'missing Authorization: Bearer <METASPN_ADMIN_TOKEN>' };
  if (!tokenMatches(given, s.token)) return { status: 401, reason: 'invalid token' };
  return null;
}

/** Reads are open on loopback; from anywhere else they need the token. */
export function checkRead(s: OpsSettings, req: FastifyRequest): { status: 401; reason: string } | null {
  if (isLoopback(req.ip)) return null;
  if (s.token && tokenMatches(bearer(req), s.token)) return null;
  return { status: 401, reason: 'reads from outside loopback need Authorization: Bearer <METASPN_ADMIN_TOKEN>' };
}

export function refuse(reply: FastifyReply, r: { status: number; reason: string }): FastifyReply {
  return reply.code(r.status).send({ error: r.reason });
}
