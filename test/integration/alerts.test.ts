// `metaspn alerts check` and `serve`'s periodic check, delivering to a webhook receiver on loopback.
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { spec, tempWorkspace, waitFor } from './cli.js';
import { cliIn } from './in-process.js';
import { hmac, http, startServe, webhookReceiver, type Hit, type Receiver } from './serve-process.js';

const SECRET = 'alert-signing-secret';

interface CheckJson {
  open: { fingerprint: string; rule: string; subject: string; severity: string; delivery: string }[];
  resolved: string[];
  sent: { fingerprint: string; event_id: string }[];
  failed: { fingerprint: string; event_id: string; attempts: number; error: string }[];
  cooling: string[];
  exit_code: number;
}

interface AlertBody {
  event_id: string;
  type: string;
  alert: { fingerprint: string; rule: string; subject: string; severity: string; status: string; message: string };
}

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

/** Checks a delivery the way a receiver should: signature over `<timestamp>.<body>`, timestamp fresh, event id in body and header. */
function verified(h: Hit): AlertBody {
  const ts = String(h.headers['x-metaspn-timestamp']);
  expect(h.method).toBe('POST');
  expect(h.headers['content-type']).toBe('application/json');
  expect(h.headers['x-metaspn-signature']).toBe(hmac(SECRET, ts, h.body));
  expect(Math.abs(Date.now() / 1000 - Number(ts))).toBeLessThan(300);
  const b = JSON.parse(h.body) as AlertBody;
  expect(b.type).toBe('metaspn.alert');
  expect(b.event_id).toMatch(/^alert-\d{8}T\d{6}Z-[0-9a-f]{12}-[0-9a-f]{8}$/);
  expect(h.headers['x-metaspn-event-id']).toBe(b.event_id);
  return b;
}

async function check(ws: string, env: NodeJS.ProcessEnv): Promise<CheckJson> {
  const r = await cliIn(['alerts', 'check', '--workspace', ws, '--json'], { env });
  expect(r.stdout, `alerts check printed no JSON (exit ${r.code}): ${r.stderr}`).toMatch(/^\{/);
  const j = JSON.parse(r.stdout) as CheckJson;
  expect(r.code, r.stderr).toBe(j.exit_code);
  return j;
}

async function cli(ws: string, args: string[], code: number, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await cliIn([...args, '--workspace', ws], { env });
  expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(code);
  return r.stdout;
}

const statePath = (ws: string): string => join(ws, 'ops', 'alerts-state.json');

describe('metaspn alerts check', () => {
  it('sends signed alerts once per cooldown, keeps a failed delivery pending and sends it again at the next check', async () => {
    const hook = await receiver();
    const ws = tempWorkspace({ config: { alerts: { oldest_ready_max_minutes: 0.001 } } });
    const env = { METASPN_ALERT_WEBHOOK_URL: hook.url, METASPN_SIGNING_SECRET: SECRET };

    // Nothing wrong yet: exit 0, nothing sent.
    const clean = await check(ws, env);
    expect(clean).toMatchObject({ open: [], sent: [], exit_code: 0 });
    expect(hook.hits).toHaveLength(0);

    // A dead letter: one signed alert, exit 60.
    await cli(ws, ['queue', 'enqueue', 'contract', '--payload', '{"n":1}'], 0);
    await cli(ws, ['worker', 'run', spec('Contract'), '--once'], 20);
    const first = await check(ws, env);
    expect(first.exit_code).toBe(60);
    expect(first.open.map((a) => a.fingerprint)).toEqual(['dead_letters_grew:contract']);
    expect(hook.hits).toHaveLength(1);
    const sent1 = verified(hook.hits[0]!);
    expect(sent1.alert).toMatchObject({ rule: 'dead_letters_grew', subject: 'contract', severity: 'warning', status: 'open' });
    expect(first.sent).toEqual([{ fingerprint: 'dead_letters_grew:contract', event_id: sent1.event_id }]);

    // The same alert again within the cooldown: still open (60), not sent.
    const second = await check(ws, env);
    expect(second.exit_code).toBe(60);
    expect(second.cooling).toEqual(['dead_letters_grew:contract']);
    expect(hook.hits).toHaveLength(1);

    // The webhook is down when a new alert opens: exit 50, the alert stays pending.
    hook.answer = 503;
    await cli(ws, ['queue', 'enqueue', 'waiting', '--payload', '{"n":2}'], 0);
    // The task must be older than oldest_ready_max_minutes (60 ms): wait until its enqueue is that old.
    const enqueued = Date.now();
    await waitFor(() => Date.now() - enqueued > 100, 5_000, 'the task to age past the threshold');
    const down = await check(ws, env);
    expect(down.exit_code).toBe(50);
    expect(down.failed).toEqual([expect.objectContaining({ fingerprint: 'oldest_ready_age:waiting', attempts: 1, error: 'the webhook answered HTTP 503' })]);
    expect(down.open.find((a) => a.fingerprint === 'oldest_ready_age:waiting')!.delivery).toBe('pending');
    expect(hook.hits).toHaveLength(2);
    const attempt = verified(hook.hits[1]!);
    const pending = JSON.parse(readFileSync(statePath(ws), 'utf8')).alerts['oldest_ready_age:waiting'].pending;
    expect(pending).toMatchObject({ event_id: attempt.event_id, attempts: 1 });

    // Back up: the pending alert is sent again with the same event id and body (freshly signed); the other stays quiet.
    hook.answer = 200;
    const up = await check(ws, env);
    expect(up.exit_code).toBe(60);
    expect(up.sent).toEqual([{ fingerprint: 'oldest_ready_age:waiting', event_id: attempt.event_id }]);
    expect(up.cooling).toEqual(['dead_letters_grew:contract']);
    expect(hook.hits).toHaveLength(3);
    const retried = verified(hook.hits[2]!);
    expect(retried.event_id).toBe(attempt.event_id);
    expect(hook.hits[2]!.body).toBe(hook.hits[1]!.body);

    // Once the cooldown (60 min by default) has passed since the last delivery, an open alert is sent again, with a new event id.
    // An event id names the second it was made in: the resend comes in a later second than the first send.
    const secondNow = (): string => `${new Date().toISOString().replace(/[-:]/g, '').slice(0, 15)}Z`;
    await waitFor(() => secondNow() !== sent1.event_id.split('-')[1], 5_000, 'a second later than the first send');
    const state = JSON.parse(readFileSync(statePath(ws), 'utf8'));
    state.alerts['dead_letters_grew:contract'].last_sent_at = new Date(Date.now() - 61 * 60_000).toISOString();
    writeFileSync(statePath(ws), JSON.stringify(state));
    const later = await check(ws, env);
    expect(later.sent.map((s) => s.fingerprint)).toEqual(['dead_letters_grew:contract']);
    expect(hook.hits).toHaveLength(4);
    const resent = verified(hook.hits[3]!);
    expect(resent.alert.fingerprint).toBe('dead_letters_grew:contract');
    expect(resent.event_id).not.toBe(sent1.event_id);

    // METASPN_ALERT_COOLDOWN_MINUTES sets the cooldown: 0 sends every open alert at every check.
    const noCooldown = await check(ws, { ...env, METASPN_ALERT_COOLDOWN_MINUTES: '0' });
    expect(noCooldown.sent).toHaveLength(2);
    expect(hook.hits).toHaveLength(6);

    // Retrying the dead letter resolves its alert (and, with this tiny threshold, the task now waits as ready: a new alert).
    await cli(ws, ['queue', 'retry', 'contract'], 0);
    // Ready again from the retry on: it must wait past the threshold (60 ms) before the check sees it.
    const retriedAt = Date.now();
    await waitFor(() => Date.now() - retriedAt > 100, 5_000, 'the retried task to age past the threshold');
    const r = await cliIn(['alerts', 'check', '--workspace', ws], { env });
    expect(r.code).toBe(60);
    expect(r.stdout).toContain('resolved: dead_letters_grew:contract');
    expect(r.stdout).toMatch(/WARNING\s+oldest_ready_age\s+contract: the oldest ready task has waited .*\[sent\]/);
    expect(r.stdout).toMatch(/WARNING\s+oldest_ready_age\s+waiting: the oldest ready task has waited .*within the cooldown\]/);
    expect(r.stdout).toMatch(/2 open alert\(s\); sent 1, within the cooldown 1, not delivered 0 \(exit 60\)/);
    expect(hook.hits).toHaveLength(7);
    expect(verified(hook.hits[6]!).alert.fingerprint).toBe('oldest_ready_age:contract');

    // Everything is in the alert log, for the weekly report.
    const events = readFileSync(join(ws, 'ops', 'alerts-log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).event as string);
    expect(events.filter((e) => e === 'opened')).toHaveLength(3);
    expect(events.filter((e) => e === 'sent')).toHaveLength(6);
    expect(events.filter((e) => e === 'delivery_failed')).toHaveLength(1);
    expect(events.filter((e) => e === 'resolved')).toHaveLength(1);

    // `alerts list` shows the open alerts of the last check without sending anything.
    const list = JSON.parse(await cli(ws, ['alerts', 'list', '--json'], 0));
    expect(list.open.map((a: { fingerprint: string }) => a.fingerprint)).toEqual(['oldest_ready_age:contract', 'oldest_ready_age:waiting']);
    expect(hook.hits).toHaveLength(7);
  });

  it('without a webhook it still reports and remembers open alerts; a bad webhook URL is a usage error', async () => {
    const ws = tempWorkspace();
    await cli(ws, ['queue', 'enqueue', 'contract', '--payload', '{"n":1}'], 0);
    await cli(ws, ['worker', 'run', spec('Contract'), '--once'], 20);
    const r = await cliIn(['alerts', 'check', '--workspace', ws]);
    expect(r.code).toBe(60);
    expect(r.stdout).toContain('not sent: no webhook');
    expect(r.stdout).toContain('METASPN_ALERT_WEBHOOK_URL is not set: nothing sent (exit 60)');
    const bad = await cliIn(['alerts', 'check', '--workspace', ws], { env: { METASPN_ALERT_WEBHOOK_URL: 'ftp://example.invalid/x' } });
    expect(bad.code).toBe(64);
    expect(bad.stderr).toMatch(/METASPN_ALERT_WEBHOOK_URL must be an http\(s\) URL/);
    const badConfig = tempWorkspace({ config: { alerts: { failure_ratio_max: 2 } } });
    const c = await cliIn(['alerts', 'check', '--workspace', badConfig]);
    expect(c.code).toBe(20);
    expect(c.stderr).toMatch(/alerts\.failure_ratio_max/);
  });

  it("a failed run, a halted worker and a high failure ratio are alerted by serve's periodic check and listed by GET /api/alerts", async () => {
    const hook = await receiver();
    const ws = tempWorkspace({
      config: {
        queues: { flaky: { stop_window: 3, stop_failure_ratio: 1, max_attempts: 10 } },
        alerts: { failure_min_attempts: 3, failure_ratio_max: 0.5 },
      },
    });
    const env = { METASPN_ALERT_WEBHOOK_URL: hook.url, METASPN_SIGNING_SECRET: SECRET };

    // A first reading of the queue totals: the failure ratio is computed against it.
    await cli(ws, ['queue', 'enqueue', 'flaky', '--file', tasksFile(ws, 5)], 0);
    expect((await check(ws, env)).exit_code).toBe(0);

    // A worker that always fails trips its stop condition (exit 60, queue paused, ledger entry).
    await cli(ws, ['worker', 'run', spec('FailTimes'), '--once'], 60, {});
    // A run whose last stage cannot write its output fails with 50 after its retries.
    mkdirSync(join(ws, 'store', 's1_summaries.jsonl'), { recursive: true });
    await cli(ws, ['s1', 'run-local', '--date', '2026-01-15'], 50);

    const s = await startServe(ws, { env, args: ['--alert-interval-sec', '1'] });
    try {
      const WANT = ['dead_letters_grew:publish_season_summary', 'failure_ratio:flaky', 'run_failed', 'worker_halted:flaky'];
      const key = (a: { fingerprint: string; rule: string }): string => (a.rule === 'run_failed' ? a.rule : `${a.rule}:${a.fingerprint.split(':')[1]}`);
      const open = async () =>
        (await http('GET', `${s.url}/api/alerts`)).json as { checked_at: string; open: { fingerprint: string; rule: string; subject: string; severity: string; message: string }[] };
      let body = await open();
      await waitFor(
        async () => {
          body = await open();
          return WANT.every((w) => body.open.some((a) => key(a) === w));
        },
        20_000,
        `alerts ${WANT.join(', ')} open`,
      );
      const byKey = Object.fromEntries(body.open.map((a) => [key(a), a]));
      expect(Object.keys(byKey)).toEqual(expect.arrayContaining(WANT));
      expect(byKey.run_failed).toMatchObject({ subject: 's1', severity: 'critical' });
      expect(byKey.run_failed!.message).toMatch(/exit 50/);
      expect(byKey['worker_halted:flaky']).toMatchObject({ subject: 'flaky', severity: 'critical' });
      expect(byKey['worker_halted:flaky']!.message).toMatch(/3 of the last 3 tasks failed/);
      expect(byKey['failure_ratio:flaky']).toMatchObject({ severity: 'critical' });
      expect(byKey['failure_ratio:flaky']!.message).toMatch(/(\d+) of \1 attempts failed in the last \d+ s \(ratio 1\.00 > 0\.5\)/);
      expect(byKey['dead_letters_grew:publish_season_summary']).toMatchObject({ severity: 'warning' });

      // The server sent each open alert, signed, once.
      const n = body.open.length;
      await waitFor(() => hook.hits.length >= n, 10_000, `${n} deliveries`);
      expect(hook.hits.map((h) => verified(h).alert.fingerprint).sort()).toEqual(body.open.map((a) => a.fingerprint).sort());

      // The check runs again every second (and sends nothing new within the cooldown).
      const t = body.checked_at;
      await waitFor(() => JSON.parse(readFileSync(statePath(ws), 'utf8')).checked_at > t, 10_000, 'another periodic check');
      expect(hook.hits).toHaveLength(n);
    } finally {
      await s.stop();
    }
    // Stopped with the server: the loop was stopped (waiting out a check in flight) before it exited.
    const log = readFileSync(join(ws, 'logs', 'metaspn.jsonl'), 'utf8');
    expect(log).toContain('"event":"alerts_loop_start"');
    expect(log.indexOf('"event":"alerts_loop_stop"')).toBeGreaterThan(log.lastIndexOf('"event":"alerts_checked"'));
  });
});

function tasksFile(ws: string, n: number): string {
  const f = join(ws, 'flaky-tasks.jsonl');
  for (let i = 0; i < n; i++) appendFileSync(f, `${JSON.stringify({ id: `f${i}`, payload: { fail: 100 } })}\n`);
  return f;
}
