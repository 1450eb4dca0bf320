// The /ops page in a real headless Chromium (Debian's `chromium`, driven by playwright-core):
// it loads, shows the queues, a Retry click moves a dead letter back to ready, everything it
// renders is escaped, and in production the controls are disabled and a forged POST gets 403.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { useChromium } from './browser.js';
import { cliSpawn, tempWorkspace, waitFor } from './cli.js';
import { cliIn } from './in-process.js';

const TOKEN = `ops-page-${randomBytes(12).toString('hex')}`;
/** Set to a path (e.g. /tmp/ops-page.png) to keep a full-page screenshot of the development page. */
const SCREENSHOT = process.env.OPS_PAGE_SCREENSHOT;

const HOSTILE_MESSAGE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> & "quoted"';

interface QueueStats {
  queue: string;
  ready: number;
  dead: number;
  paused: boolean;
}

/**
 * A workspace with one run and two dead letters: `bad-task` in project_rewards (a payload that
 * breaks the contract, as in runbook 000) and `evil-1` in `hostile`, whose error message is markup.
 */
async function workspaceWithDeadLetters(): Promise<string> {
  const ws = tempWorkspace();
  // Made in this process (cliIn): the page and the server under test are what this file is about.
  const ok = async (args: string[], code = 0): Promise<void> => {
    const r = await cliIn(args);
    expect(r.code, `${args.join(' ')}\n${r.stderr}`).toBe(code);
  };
  await ok(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15']);
  await ok(['queue', 'enqueue', 'project_rewards', '--workspace', ws, '--payload', '{"date":"not-a-date"}', '--id', 'bad-task']);
  await ok(['worker', 'run', 'metaspn_ops.workers.s1:ProjectRewardsWorker', '--workspace', ws, '--once'], 20);
  writeFileSync(
    join(ws, 'hostile.mjs'),
    `export const Hostile = { name: 'hostile', handle() { const e = new Error(${JSON.stringify(HOSTILE_MESSAGE)}); e.name = 'ContractError'; e.unrecoverable = true; throw e; } };\n`,
  );
  await ok(['queue', 'enqueue', 'hostile', '--workspace', ws, '--payload', '{}', '--id', 'evil-1']);
  await ok(['worker', 'run', `${join(ws, 'hostile.mjs')}:Hostile`, '--workspace', ws, '--once'], 20);
  return ws;
}

interface Server {
  url: string;
  child: ChildProcess;
}

/** `metaspn serve` on a random high port (another one when it is taken), up once it prints its URL. */
async function serve(ws: string, env: NodeJS.ProcessEnv): Promise<Server> {
  for (let attempt = 0; attempt < 8; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 40_000);
    const child = cliSpawn(['serve', '--workspace', ws, '--host', '127.0.0.1', '--port', String(port)], { env });
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const url = await new Promise<string | null>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`metaspn serve did not start within 20 s\n${stderr}`)), 20_000);
      child.stdout?.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        const m = /metaspn serve: (http:\/\/\S+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
      child.on('exit', () => {
        clearTimeout(timer);
        if (stderr.includes('EADDRINUSE')) resolve(null);
        else reject(new Error(`metaspn serve exited with ${child.exitCode}\n${stderr}`));
      });
    });
    if (url) return { url, child };
  }
  throw new Error('no free port found for metaspn serve');
}

/** SIGTERM (serve closes cleanly), SIGKILL if it lingers: no child is left running. */
async function stop(s: Server): Promise<void> {
  if (s.child.exitCode !== null || s.child.signalCode !== null) return;
  const exited = new Promise<void>((r) => s.child.once('exit', () => r()));
  s.child.kill('SIGTERM');
  const timer = setTimeout(() => s.child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

async function api<T>(s: Server, path: string, init: RequestInit = {}): Promise<{ status: number; body: T }> {
  const r = await fetch(`${s.url}${path}`, init);
  return { status: r.status, body: (await r.json()) as T };
}

/** serve checks alerts once at start: wait for that check, so the page and the test see the same open alerts. */
async function alertsChecked(s: Server): Promise<void> {
  await waitFor(
    async () => {
      const r = await api<{ checked_at?: string | null }>(s, '/api/alerts');
      return r.status !== 200 || Boolean(r.body.checked_at);
    },
    15_000,
    'serve to check alerts once it started',
    100,
  );
}

const statsOf = async (s: Server, q: string): Promise<QueueStats> => (await api<QueueStats>(s, `/api/queues/${q}`)).body;

/** The text of one cell of the queues table, by queue and stat. */
const cell = (page: Page, queue: string, stat: string): Promise<string | null> => page.locator(`#queues-table tr[data-queue="${queue}"] [data-stat="${stat}"]`).textContent();

const browser = useChromium();

describe('the /ops page in headless Chromium', () => {
  it('development: shows queues, dead letters, runs and the lock; Retry with the token moves the dead letter back to ready', async () => {
    const ws = await workspaceWithDeadLetters();
    const s = await serve(ws, { METASPN_ENV: 'development', METASPN_ADMIN_TOKEN: TOKEN });
    await alertsChecked(s);
    const page = await browser().newPage();
    const consoleErrors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(e.message));
    try {
      const res = await page.goto(`${s.url}/ops`);
      expect(res?.status()).toBe(200);
      expect(res?.headers()['content-security-policy']).toContain("script-src 'nonce-");
      await expect(page.locator('#env').textContent()).resolves.toBe('DEVELOPMENT');
      await expect(page.locator('#writes').textContent()).resolves.toBe('Write controls enabled');

      // Every queue, with its stats; the dead letter counted in project_rewards.
      for (const q of ['update_attention_scores', 'project_rewards', 'settle_season', 'publish_season_summary', 'hostile']) {
        await expect(page.locator(`#queues-table tr[data-queue="${q}"]`).count()).resolves.toBe(1);
      }
      expect(await cell(page, 'project_rewards', 'dead')).toBe('1');
      expect(await cell(page, 'project_rewards', 'ready')).toBe('0');
      expect(await cell(page, 'project_rewards', 'paused')).toBe('running');
      expect(await page.locator('#queues-table th').allTextContents()).toEqual(expect.arrayContaining(['Ready', 'Scheduled', 'Leased', 'Completed', 'Dead', 'State', 'Oldest ready']));

      // The dead letter with its last error; the run with status, duration and exit code; the lock.
      const bad = page.locator('#deadletters tr[data-task="bad-task"]');
      await expect(bad.textContent()).resolves.toContain('payload invalid: date: must be a YYYY-MM-DD date');
      const run = page.locator('#runs-table tbody tr').first();
      await expect(run.textContent()).resolves.toMatch(/s1[\s\S]*2026-01-15[\s\S]*success[\s\S]*\d+(\.\d)? (ms|s)[\s\S]*\b0\b/);
      await expect(page.locator('#lock-s1').textContent()).resolves.toMatch(/State\s*free/);
      // Open alerts: exactly what GET /api/alerts answers (the panel stays hidden when it is not 200).
      const alerts = await api<{ checked_at: string | null; open: { rule: string; message: string }[] }>(s, '/api/alerts');
      if (alerts.status === 200) {
        await expect(page.locator('#alerts').isVisible()).resolves.toBe(true);
        await expect(page.locator('#alerts li.alert').count()).resolves.toBe(alerts.body.open.length);
        const shown = await page.locator('#alerts').textContent();
        for (const a of alerts.body.open) expect(shown).toContain(a.message);
        if (alerts.body.open.length === 0) expect(shown).toContain('No open alerts.');
      } else {
        await expect(page.locator('#alerts').isHidden()).resolves.toBe(true);
      }

      // The markup in an error message is shown as text: no element injected, no script run.
      const evil = page.locator('#deadletters tr[data-task="evil-1"] td.err');
      await expect(evil.textContent()).resolves.toContain(HOSTILE_MESSAGE);
      await expect(page.locator('img').count()).resolves.toBe(0);
      await expect(page.locator('#data script').count()).resolves.toBe(0);
      expect(await page.evaluate('window.__pwned')).toBeUndefined();

      if (SCREENSHOT) await page.screenshot({ path: SCREENSHOT, fullPage: true });

      // Without the token the click asks for it, and nothing changes.
      await bad.getByRole('button', { name: 'Retry' }).click();
      await expect(page.locator('#message').textContent()).resolves.toContain('enter the admin token first');
      expect(await statsOf(s, 'project_rewards')).toMatchObject({ dead: 1, ready: 0 });

      // With the token: back to ready, and the page shows it.
      await page.locator('#token').fill(TOKEN);
      await bad.getByRole('button', { name: 'Retry' }).click();
      await page.locator('#message.ok').waitFor();
      await expect(page.locator('#message').textContent()).resolves.toBe('Retried bad-task in project_rewards: back to ready.');
      await page.locator('#deadletters tr[data-task="bad-task"]').waitFor({ state: 'detached' });
      expect(await statsOf(s, 'project_rewards')).toMatchObject({ dead: 0, ready: 1 });
      const cliStats = await cliIn(['queue', 'stats', 'project_rewards', '--workspace', ws, '--json']);
      expect(JSON.parse(cliStats.stdout)).toMatchObject({ dead: 0, ready: 1 });
      expect(await cell(page, 'project_rewards', 'dead')).toBe('0');
      expect(await cell(page, 'project_rewards', 'ready')).toBe('1');
      expect(await page.evaluate('sessionStorage.getItem("metaspn.ops.token")')).toBe(TOKEN);

      // Pause and resume from the queues table.
      await page.locator('#queues-table tr[data-queue="project_rewards"]').getByRole('button', { name: 'Pause' }).click();
      await page.locator('#queues-table tr[data-queue="project_rewards"]').getByRole('button', { name: 'Resume' }).waitFor();
      expect((await statsOf(s, 'project_rewards')).paused).toBe(true);
      await page.locator('#queues-table tr[data-queue="project_rewards"]').getByRole('button', { name: 'Resume' }).click();
      await page.locator('#queues-table tr[data-queue="project_rewards"]').getByRole('button', { name: 'Pause' }).waitFor();
      expect((await statsOf(s, 'project_rewards')).paused).toBe(false);

      // A wrong token is refused with the server's reason.
      await page.locator('#token').fill('not-the-token');
      await page.locator('#deadletters tr[data-task="evil-1"]').getByRole('button', { name: 'Retry' }).click();
      await page.locator('#message.error').waitFor();
      await expect(page.locator('#message').textContent()).resolves.toContain('refused (HTTP 401): invalid token');
      expect((await statsOf(s, 'hostile')).dead).toBe(1);

      // Refresh re-reads the workspace (a change made by the CLI shows up).
      expect((await cliIn(['queue', 'enqueue', 'settle_season', '--workspace', ws, '--payload', '{"note":"x"}', '--id', 'fresh-1'])).code).toBe(0);
      await page.getByRole('button', { name: 'Refresh' }).click();
      await expect.poll(() => cell(page, 'settle_season', 'ready')).toBe('1');
      expect(consoleErrors.filter((e) => !/\b(401|404)\b/.test(e))).toEqual([]);
    } finally {
      await page.close();
      await stop(s);
    }
  });

  it('production: write controls are disabled and a forged POST with the right token gets 403 and changes nothing', async () => {
    const ws = await workspaceWithDeadLetters();
    const s = await serve(ws, { METASPN_ENV: 'production', METASPN_ADMIN_TOKEN: TOKEN });
    const page = await browser().newPage();
    try {
      await page.goto(`${s.url}/ops`);
      await expect(page.locator('#env').textContent()).resolves.toBe('PRODUCTION');
      await expect(page.locator('#writes').textContent()).resolves.toBe('Write controls disabled');
      await expect(page.locator('#writes-off').isVisible()).resolves.toBe(true);
      expect(await cell(page, 'project_rewards', 'dead')).toBe('1');

      const controls = page.locator('button[data-action]');
      const n = await controls.count();
      expect(n).toBeGreaterThanOrEqual(7); // 5 pause buttons + 2 retries
      for (let i = 0; i < n; i++) await expect(controls.nth(i).isDisabled()).resolves.toBe(true);
      await expect(page.locator('#token').isEditable()).resolves.toBe(true);
      await expect(page.getByRole('button', { name: 'Refresh' }).isEnabled()).resolves.toBe(true);

      // Forged from the page itself, with the right token: 403 and the reason.
      const forged = (await page.evaluate(
        `fetch('/api/queues/project_rewards/retry', { method: 'POST', headers: { Authorization: 'Bearer ${TOKEN}', 'Content-Type': 'application/json' }, body: JSON.stringify({ task_id: 'bad-task' }) })
          .then(async (r) => ({ status: r.status, body: await r.json() }))`,
      )) as { status: number; body: { error: string } };
      expect(forged.status).toBe(403);
      expect(forged.body.error).toMatch(/writes are disabled in PRODUCTION/);

      // Re-enabling a disabled button by hand does not help either: the server refuses.
      await page.locator('#token').fill(TOKEN);
      await page.evaluate(`document.querySelector('#deadletters tr[data-task="bad-task"] button').removeAttribute('disabled')`);
      await page.locator('#deadletters tr[data-task="bad-task"]').getByRole('button', { name: 'Retry' }).click();
      await page.locator('#message.error').waitFor();
      await expect(page.locator('#message').textContent()).resolves.toContain('refused (HTTP 403)');

      // And straight over HTTP, for every write: 403, nothing changed.
      const auth = { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' };
      for (const [path, body] of [
        ['/api/queues/project_rewards/retry', {}],
        ['/api/queues/project_rewards/pause', {}],
        ['/api/queues/project_rewards/tasks', { payload: { date: '2026-01-15' } }],
        ['/api/runs', { date: '2026-01-16' }],
      ] as const) {
        const r = await api<{ error: string }>(s, path, { method: 'POST', headers: auth, body: JSON.stringify(body) });
        expect(r.status, path).toBe(403);
      }
      expect(await statsOf(s, 'project_rewards')).toMatchObject({ dead: 1, ready: 0, paused: false });
      expect(existsSync(join(ws, 'deadletter', 'project_rewards', 'bad-task.json'))).toBe(true);
      await page.getByRole('button', { name: 'Refresh' }).click();
      await page.locator('#generated').waitFor();
      expect(await cell(page, 'project_rewards', 'dead')).toBe('1');
    } finally {
      await page.close();
      await stop(s);
    }
  });
});
