// Alert webhooks that chat tools accept (`METASPN_ALERT_WEBHOOK_FORMAT` / `alerts.webhook_format`:
// json, slack, teams, discord) and signatures in the Standard Webhooks form, checked here with an
// HMAC computed independently of the code under test.
import { createHmac } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { spec, tempWorkspace } from './cli.js';
import { cliIn } from './in-process.js';
import { webhookReceiver, type Hit, type Receiver } from './serve-process.js';

let receivers: Receiver[] = [];
afterEach(async () => {
  await Promise.all(receivers.map((r) => r.close()));
  receivers = [];
});

async function receiver(): Promise<Receiver> {
  const r = await webhookReceiver();
  receivers.push(r);
  return r;
}

/** A workspace with one dead letter in `contract`: the dead_letters_grew alert is open. */
async function workspaceWithAlert(config?: unknown): Promise<string> {
  const ws = tempWorkspace({ demo: false, ...(config ? { config } : {}) });
  expect((await cliIn(['queue', 'enqueue', 'contract', '--workspace', ws, '--payload', '{"n":1}', '--id', 'c1'])).code).toBe(0);
  expect((await cliIn(['worker', 'run', spec('Contract'), '--workspace', ws, '--once'])).code).toBe(20);
  return ws;
}

async function check(ws: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string }> {
  // Cooldown 0: every open alert is sent at every check.
  return await cliIn(['alerts', 'check', '--workspace', ws], { env: { METASPN_ALERT_COOLDOWN_MINUTES: '0', ...env } });
}

const header = (h: Hit, name: string): string => String(h.headers[name]);

describe('alert webhook formats', () => {
  it('json (default), slack, teams and discord bodies carry what each receiver requires', async () => {
    const hook = await receiver();
    const ws = await workspaceWithAlert();
    const bodies: Record<string, Record<string, unknown>> = {};
    for (const format of ['', 'slack', 'teams', 'discord']) {
      const r = await check(ws, { METASPN_ALERT_WEBHOOK_URL: hook.url, ...(format ? { METASPN_ALERT_WEBHOOK_FORMAT: format } : {}) });
      expect(r.code, r.stderr).toBe(60);
      const h = hook.hits.at(-1)!;
      expect(h.headers['content-type']).toBe('application/json');
      bodies[format || 'json'] = JSON.parse(h.body) as Record<string, unknown>;
    }
    expect(hook.hits).toHaveLength(4);
    // metaspn's event, with a one-line text beside it.
    expect(bodies.json).toMatchObject({ type: 'metaspn.alert', alert: { rule: 'dead_letters_grew', subject: 'contract', severity: 'warning', status: 'open' } });
    expect(bodies.json!.text).toMatch(/^\[metaspn\] WARNING dead_letters_grew: contract: \d+ (new )?dead letter/);
    // Slack: `text` (mrkdwn), nothing else.
    expect(Object.keys(bodies.slack!)).toEqual(['text']);
    expect(bodies.slack!.text).toMatch(/^:warning: \*metaspn warning\* `dead_letters_grew`: contract: /);
    // Discord: `content`, and no mention pings anybody.
    expect(bodies.discord).toEqual({ content: expect.stringMatching(/^\[metaspn\] WARNING dead_letters_grew: contract: /), allowed_mentions: { parse: [] } });
    // Teams (Workflows): a message with an Adaptive Card.
    expect(bodies.teams).toMatchObject({ type: 'message', attachments: [{ contentType: 'application/vnd.microsoft.card.adaptive', content: { type: 'AdaptiveCard', version: '1.4' } }] });
    const card = (bodies.teams!.attachments as { content: { body: { type: string; text?: string; facts?: { title: string; value: string }[] }[] } }[])[0]!.content;
    expect(card.body[0]!.text).toBe('metaspn warning: dead_letters_grew');
    expect(card.body[1]!.text).toMatch(/^contract: \d+ (new )?dead letter/);
    expect(card.body[2]!.facts!.map((f) => f.title)).toEqual(['Subject', 'Since', 'Host', 'Workspace', 'Event']);
  });

  it('the format can be set in metaspn.config.json; a bad one is refused at once (64)', async () => {
    const hook = await receiver();
    const ws = await workspaceWithAlert({ alerts: { webhook_format: 'discord' } });
    const r = await check(ws, { METASPN_ALERT_WEBHOOK_URL: hook.url });
    expect(r.code, r.stderr).toBe(60);
    expect(Object.keys(JSON.parse(hook.hits[0]!.body) as object)).toEqual(['content', 'allowed_mentions']);
    const bad = await check(ws, { METASPN_ALERT_WEBHOOK_URL: hook.url, METASPN_ALERT_WEBHOOK_FORMAT: 'irc' });
    expect(bad.code).toBe(64);
    expect(bad.stderr).toMatch(/^error: METASPN_ALERT_WEBHOOK_FORMAT must be one of json, slack, teams, discord, got "irc"\n/);
    const cfg = tempWorkspace({ demo: false, config: { alerts: { webhook_format: 'irc' } } });
    const badCfg = await check(cfg, {});
    expect(badCfg.code).toBe(20);
    expect(badCfg.stderr).toMatch(/webhook_format/);
    expect(hook.hits).toHaveLength(1);
  });

  it("signed deliveries carry a Standard Webhooks signature (a whsec_ secret or a plain one) beside metaspn's own", async () => {
    const hook = await receiver();
    const ws = await workspaceWithAlert();
    const key = Buffer.from('0123456789abcdef0123456789abcdef');
    for (const secret of [`whsec_${key.toString('base64')}`, 'a-plain-secret']) {
      const r = await check(ws, { METASPN_ALERT_WEBHOOK_URL: hook.url, METASPN_SIGNING_SECRET: secret, METASPN_ALERT_WEBHOOK_FORMAT: 'slack' });
      expect(r.code, r.stderr).toBe(60);
      const h = hook.hits.at(-1)!;
      const id = header(h, 'webhook-id');
      const ts = header(h, 'webhook-timestamp');
      expect(id).toMatch(/^alert-\d{8}T\d{6}Z-[0-9a-f]{12}-[0-9a-f]{8}$/);
      expect(header(h, 'x-metaspn-event-id')).toBe(id);
      expect(Math.abs(Date.now() / 1000 - Number(ts))).toBeLessThan(300);
      const bytes = secret.startsWith('whsec_') ? key : Buffer.from(secret);
      const expected = createHmac('sha256', bytes).update(`${id}.${ts}.${h.body}`).digest('base64');
      expect(header(h, 'webhook-signature')).toBe(`v1,${expected}`);
      expect(header(h, 'x-metaspn-signature')).toBe(createHmac('sha256', secret).update(`${ts}.${h.body}`).digest('hex'));
    }
    // Unsigned: the id for dedup, no signature.
    const r = await check(ws, { METASPN_ALERT_WEBHOOK_URL: hook.url });
    expect(r.code, r.stderr).toBe(60);
    expect(hook.hits.at(-1)!.headers['webhook-id']).toMatch(/^alert-/);
    expect(hook.hits.at(-1)!.headers['webhook-signature']).toBeUndefined();
  });
});
