import { parsePrometheusText } from './prom-text.js';

export interface VerifyCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface VerifyResult {
  url: string;
  env: string | null;
  status: 'pass' | 'fail';
  checks: VerifyCheck[];
}

interface Answer {
  status: number;
  contentType: string;
  text: string;
}

/** A write that changes nothing even if it were accepted: retrying a dead letter that does not exist. */
export const PROBE_WORKER = 'update_attention_scores';
export const PROBE_TASK_ID = 'metaspn-verify-probe';

/**
 * After a deployment: health, readiness, metrics (parsed as Prometheus text), and that writes are
 * refused where they should be: a POST without a token (and with a wrong one) gets 401 or 403, and
 * 403 in production, which must also report writes disabled. Nothing it sends can change the
 * workspace: the only write it tries is a retry of a dead letter that does not exist.
 */
export async function verifyDeployment(base: string, o: { token: string | null; timeoutMs: number }): Promise<VerifyResult> {
  const root = base.replace(/\/+$/, '');
  const checks: VerifyCheck[] = [];
  const add = (name: string, ok: boolean, detail: string): void => void checks.push({ name, ok, detail });
  const call = async (method: 'GET' | 'POST', path: string, auth: string | null, body?: unknown): Promise<Answer | string> => {
    const headers: Record<string, string> = { 'x-metaspn-actor': 'metaspn verify' };
    if (auth !== null) headers.authorization = `Bearer ${auth}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    try {
      const res = await fetch(`${root}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}), signal: AbortSignal.timeout(o.timeoutMs), redirect: 'manual' });
      return { status: res.status, contentType: res.headers.get('content-type') ?? '', text: await res.text() };
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      if (e.name === 'TimeoutError' || e.name === 'AbortError') return `${method} ${path}: no answer within ${o.timeoutMs} ms`;
      return `${method} ${path}: ${e.cause?.code ?? e.message}`;
    }
  };
  const json = (a: Answer): Record<string, unknown> | null => {
    try {
      const v = JSON.parse(a.text) as unknown;
      return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : null;
    } catch {
      return null;
    }
  };
  const reason = (a: Answer): string => {
    const e = json(a)?.error;
    return typeof e === 'string' ? `: ${e}` : '';
  };

  const health = await call('GET', '/health', null);
  if (typeof health === 'string') add('health', false, health);
  else {
    const b = json(health);
    add('health', health.status === 200 && b?.status === 'ok', health.status === 200 ? `200, status ${String(b?.status)}, version ${String(b?.version)}, up ${String(b?.uptime_s)}s` : `GET /health answered ${health.status}`);
  }

  const ready = await call('GET', '/health/test', null);
  if (typeof ready === 'string') add('readiness', false, ready);
  else {
    const b = json(ready);
    const checksOf = Array.isArray(b?.checks) ? (b.checks as { name: string; ok: boolean; detail: string }[]) : [];
    const failed = checksOf.filter((c) => !c.ok);
    add(
      'readiness',
      ready.status === 200,
      ready.status === 200
        ? `200, checks ${checksOf.map((c) => c.name).join(', ')}${failed.length ? `; DEGRADED: ${failed.map((c) => `${c.name} (${c.detail})`).join('; ')}` : ''}`
        : `GET /health/test answered ${ready.status}${failed.length ? `: ${failed.map((c) => `${c.name} (${c.detail})`).join('; ')}` : ''}`,
    );
  }

  const metrics = await call('GET', '/metrics', o.token);
  if (typeof metrics === 'string') add('metrics', false, metrics);
  else if (metrics.status !== 200) add('metrics', false, `GET /metrics answered ${metrics.status}${reason(metrics)}`);
  else {
    const p = parsePrometheusText(metrics.text);
    const samples = [...p.families.values()].reduce((a, f) => a + f.samples.length, 0);
    if (p.errors.length) add('metrics', false, `not valid Prometheus text: ${p.errors.slice(0, 3).join('; ')}`);
    else if (!p.families.has('metaspn_queue_ready')) add('metrics', false, `valid Prometheus text but no metaspn_queue_ready: is ${root} a metaspn server?`);
    else add('metrics', true, `200, ${p.families.size} families, ${samples} samples, valid Prometheus text`);
  }

  let env: string | null = null;
  let writeEnabled: boolean | null = null;
  const settings = await call('GET', '/api/settings', o.token);
  if (typeof settings === 'string') add('settings', false, settings);
  else if (settings.status !== 200) add('settings', false, `GET /api/settings answered ${settings.status}${reason(settings)}${settings.status === 401 && !o.token ? ' (reads from this address need --token)' : ''}`);
  else {
    const b = json(settings);
    env = typeof b?.env === 'string' ? b.env : null;
    writeEnabled = typeof b?.write_enabled === 'boolean' ? b.write_enabled : null;
    add('settings', env !== null, `env ${env ?? 'unknown'}, writes ${writeEnabled ? 'enabled' : 'disabled'}, signed submissions ${b?.signing ? 'on' : 'off'}`);
  }
  const prod = env === 'production';
  if (prod) add('production_read_only', writeEnabled === false, writeEnabled === false ? 'writes are disabled' : 'PRODUCTION with writes enabled (METASPN_ADMIN_WRITE_ENABLED=true): expected read-only');

  const probePath = `/api/queues/${PROBE_WORKER}/retry`;
  const refused = (name: string, a: Answer | string, what: string): void => {
    if (typeof a === 'string') return add(name, false, a);
    const ok = prod ? a.status === 403 : a.status === 401 || a.status === 403;
    add(name, ok, ok ? `${what} refused with ${a.status}${reason(a)}` : `${what} answered ${a.status}, expected ${prod ? '403 in production' : '401 or 403'}${reason(a)}`);
  };
  refused('write_without_token', await call('POST', probePath, null, { task_id: PROBE_TASK_ID }), `POST ${probePath} without a token`);
  if (o.token) {
    refused('write_wrong_token', await call('POST', probePath, `${o.token}-metaspn-verify-wrong`, { task_id: PROBE_TASK_ID }), `POST ${probePath} with a wrong token`);
    const reads = await call('GET', '/api/queues', o.token);
    if (typeof reads === 'string') add('token_reads', false, reads);
    else add('token_reads', reads.status === 200, reads.status === 200 ? 'GET /api/queues with the token: 200' : `GET /api/queues with the token answered ${reads.status}${reason(reads)}`);
  }
  return { url: root, env, status: checks.every((c) => c.ok) ? 'pass' : 'fail', checks };
}
