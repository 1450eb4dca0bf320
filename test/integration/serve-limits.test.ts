// The HTTP API holds task submissions to the same limits as `queue enqueue` (one validation for both),
// and the ops environment variables to their documented ranges.
import { describe, expect, it } from 'vitest';
import { alertSettings } from '../../src/config/alerts.js';
import { opsSettings } from '../../src/ops/settings.js';
import { thrownMetaspnError } from '../thrown.js';
import { tempWorkspace } from './cli.js';
import { cliIn } from './in-process.js';
import { http, startServe } from './serve-process.js';

const TOKEN = 'test-admin-token-0123456789';

describe('serve: task submissions checked like queue enqueue', () => {
  it('numbers JSON cannot carry, unknown task keys and bad max_attempts are 400 naming the rule; nothing is enqueued', async () => {
    const ws = tempWorkspace({ demo: false });
    const s = await startServe(ws, { env: { METASPN_ADMIN_TOKEN: TOKEN } });
    try {
      const url = `${s.url}/api/queues/lim/tasks`;
      const big = await http('POST', url, { token: TOKEN, raw: '{"tasks":[{"id":"a","payload":{"n":1e400}}]}' });
      expect(big.status).toBe(400);
      expect(big.text).toMatch(/1e400|cannot be carried|exactly/i);
      const wide = await http('POST', url, { token: TOKEN, raw: '{"tasks":[{"id":"b","payload":{"n":12345678901234567891}}]}' });
      expect(wide.status).toBe(400);
      const typo = await http('POST', url, { token: TOKEN, body: { tasks: [{ id: 'c', payload: {}, max_attempt: 3 }] } });
      expect(typo.status).toBe(400);
      expect(typo.text).toContain('did you mean \\"max_attempts\\"');
      const range = await http('POST', url, { token: TOKEN, body: { tasks: [{ id: 'd', payload: {}, max_attempts: 100000 }] } });
      expect(range.status).toBe(400);
      expect(range.text).toContain('max_attempts');
      const ok = await http('POST', url, { token: TOKEN, body: { payload: { fine: true }, id: 'e' } });
      expect(ok.status, ok.text).toBe(201);
    } finally {
      await s.stop();
    }
    const stats = JSON.parse((await cliIn(['queue', 'stats', 'lim', '--workspace', ws, '--json'])).stdout) as { ready: number };
    expect(stats.ready).toBe(1);
  });
});

describe('ops environment variables have ranges (exit 20 naming the variable)', () => {
  it('METASPN_ALERT_TIMEOUT_MS, METASPN_ALERT_COOLDOWN_MINUTES and METASPN_SIGNATURE_TOLERANCE_SEC', () => {
    const cfg = { cooldown_minutes: 60 } as Parameters<typeof alertSettings>[0];
    for (const [env, name] of [
      [{ METASPN_ALERT_TIMEOUT_MS: '3000000000' }, 'METASPN_ALERT_TIMEOUT_MS'],
      [{ METASPN_ALERT_COOLDOWN_MINUTES: '1e12' }, 'METASPN_ALERT_COOLDOWN_MINUTES'],
    ] as const) {
      const e = thrownMetaspnError(() => alertSettings(cfg, env));
      expect(e.exitCode).toBe(20);
      expect(e.message).toContain(name);
    }
    expect(alertSettings(cfg, { METASPN_ALERT_TIMEOUT_MS: '600000' }).timeoutMs).toBe(600_000);
    const tol = thrownMetaspnError(() => opsSettings({ METASPN_SIGNATURE_TOLERANCE_SEC: '99999999' }));
    expect(tol.exitCode).toBe(20);
    expect(tol.message).toContain('METASPN_SIGNATURE_TOLERANCE_SEC');
  });
});
