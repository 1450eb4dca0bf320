import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { UsageError } from '../guard/errors.js';
import { envInRange } from '../config/alerts.js';
import { envNumber } from '../config/limits.js';
import { checkHostName } from './host.js';

/**
 * Who may do what on `metaspn serve`, from the environment:
 * - METASPN_ENV: `development` (default) or `production`.
 * - METASPN_ADMIN_TOKEN: bearer token for writes (and for reads from non-loopback addresses).
 * - METASPN_ADMIN_IP_ALLOWLIST: CIDRs allowed to write, comma-separated. Default loopback only.
 * - METASPN_ADMIN_WRITE_ENABLED: `true`/`false`. Default: true in development, false in production.
 * - METASPN_SIGNING_SECRET: HMAC-SHA256 key for signed task submissions (and alerts).
 * - METASPN_SIGNATURE_TOLERANCE_SEC: accepted clock skew of a signature timestamp. Default 300.
 * - METASPN_SIGNATURE_ACCEPT_LEGACY: `true` also accepts task submissions signed in the format
 *   before version 2 (`<timestamp>.<body>`, which does not bind the queue), for a migration. Default false.
 * - METASPN_ALLOWED_HOSTS: comma-separated host names the server answers besides loopback names,
 *   IP addresses and its --host (see host.ts). Default none.
 */
export interface OpsSettings {
  env: 'development' | 'production';
  token: string | null;
  allow: BlockList;
  allowText: string;
  writeEnabled: boolean;
  signingSecret: string | null;
  toleranceSec: number;
  /** Accept the pre-version-2 signature format too. Default false. */
  acceptLegacySignatures: boolean;
  /** Host names from METASPN_ALLOWED_HOSTS (serve's --allowed-host adds to them). */
  allowedHosts: string[];
}

export function opsSettings(e: NodeJS.ProcessEnv = process.env): OpsSettings {
  const env = (e.METASPN_ENV ?? 'development').toLowerCase();
  if (env !== 'development' && env !== 'production') throw new UsageError(`METASPN_ENV must be development or production, got "${e.METASPN_ENV}"`);
  const allowText = e.METASPN_ADMIN_IP_ALLOWLIST ?? '127.0.0.1/32,::1/128';
  const allow = new BlockList();
  for (const raw of allowText.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [net, bits] = raw.split('/');
    const type = isIPv4(net ?? '') ? 'ipv4' : isIPv6(net ?? '') ? 'ipv6' : null;
    const prefix = bits === undefined ? (type === 'ipv4' ? 32 : 128) : Number(bits);
    if (!type || !Number.isInteger(prefix) || prefix < 0 || prefix > (type === 'ipv4' ? 32 : 128)) {
      throw new UsageError(`METASPN_ADMIN_IP_ALLOWLIST: "${raw}" is not a CIDR such as 10.0.0.0/8 or ::1/128`);
    }
    allow.addSubnet(net!, prefix, type);
  }
  const we = e.METASPN_ADMIN_WRITE_ENABLED;
  if (we !== undefined && we !== 'true' && we !== 'false') throw new UsageError(`METASPN_ADMIN_WRITE_ENABLED must be true or false, got "${we}"`);
  const tol = e.METASPN_SIGNATURE_TOLERANCE_SEC ? envNumber(e.METASPN_SIGNATURE_TOLERANCE_SEC) : 300;
  envInRange('METASPN_SIGNATURE_TOLERANCE_SEC', 'signature_tolerance_sec', tol, e.METASPN_SIGNATURE_TOLERANCE_SEC);
  const legacy = e.METASPN_SIGNATURE_ACCEPT_LEGACY;
  if (legacy !== undefined && legacy !== 'true' && legacy !== 'false') throw new UsageError(`METASPN_SIGNATURE_ACCEPT_LEGACY must be true or false, got "${legacy}"`);
  const allowedHosts = (e.METASPN_ALLOWED_HOSTS ?? '')
    .split(',')
    .map((h) => h.trim())
    .filter(Boolean)
    .map((h) => checkHostName(h, 'METASPN_ALLOWED_HOSTS'));
  return {
    env,
    token: e.METASPN_ADMIN_TOKEN || null,
    allow,
    allowText,
    writeEnabled: we === undefined ? env === 'development' : we === 'true',
    signingSecret: e.METASPN_SIGNING_SECRET || null,
    toleranceSec: tol,
    acceptLegacySignatures: legacy === 'true',
    allowedHosts,
  };
}

/** The address as the allowlist sees it (IPv4-mapped IPv6 addresses as plain IPv4). */
export function normalizeIp(ip: string): { address: string; type: 'ipv4' | 'ipv6' } {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return { address: mapped[1]!, type: 'ipv4' };
  return { address: ip, type: isIPv4(ip) ? 'ipv4' : 'ipv6' };
}

export function isLoopback(ip: string): boolean {
  const { address } = normalizeIp(ip);
  return address === '::1' || address.startsWith('127.');
}
