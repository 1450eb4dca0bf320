import { isIP } from 'node:net';
import { UsageError } from '../guard/errors.js';

/**
 * Which Host headers the server answers. A browser page can reach a loopback server under a name
 * of its own (DNS rebinding: the attacker's name resolves to 127.0.0.1), and the page is then
 * same-origin with the API. The Host header gives it away: it carries the attacker's name. So
 * a request is answered only when its Host is
 * - an IP address (a page can only send that from the address's own origin),
 * - `localhost` or a name under `.localhost`,
 * - the name the server listens on (`--host`), or
 * - a name listed with `--allowed-host` / METASPN_ALLOWED_HOSTS (a proxy's or a DNS name).
 * A request without Host (HTTP/1.0 tools, not browsers) is answered.
 */
export interface HostPolicy {
  /** Lower-case names besides loopback and IP addresses. */
  names: ReadonlySet<string>;
}

const NAME = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*\.?$/;

/** A host name as given to `--allowed-host`: a DNS name, lower-cased; an IP address is always allowed anyway. */
export function checkHostName(raw: string, what: string): string {
  const v = raw.trim().toLowerCase().replace(/\.$/, '');
  if (isIP(v) || NAME.test(v)) return v;
  throw new UsageError(`${what}: "${raw}" is not a host name such as ops.example.com`);
}

export function hostPolicy(listenHost: string, allowed: readonly string[]): HostPolicy {
  const names = new Set<string>();
  const listen = listenHost.trim().toLowerCase().replace(/^\[|\]$/g, '');
  if (listen && !isIP(listen)) names.add(listen.replace(/\.$/, ''));
  for (const a of allowed) names.add(checkHostName(a, '--allowed-host'));
  return { names };
}

/** The name part of a Host header: without the port, brackets, trailing dot; lower case. Null when malformed. */
export function hostName(header: string): string | null {
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    if (end < 0) return null;
    const rest = h.slice(end + 1);
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return null;
    return h.slice(1, end);
  }
  const m = /^([^:]*)(?::(\d{1,5}))?$/.exec(h);
  if (!m || !m[1]) return null;
  return m[1].replace(/\.$/, '');
}

/** Null when the Host is served; else why not. */
export function checkHost(p: HostPolicy, header: string | undefined): string | null {
  if (header === undefined) return null;
  const name = hostName(header);
  if (name === null) return `Host "${header.slice(0, 100)}" is malformed`;
  if (isIP(name)) return null;
  if (name === 'localhost' || name.endsWith('.localhost')) return null;
  if (p.names.has(name)) return null;
  return `Host "${name.slice(0, 100)}" is not served here`;
}
