// The /ops page as operators use it, in a real headless Chromium (Debian's `chromium`): a
// throughput chart, filter, live refresh with a pause switch, task and run detail views, retry all
// and discard all, a layout that works at 390 px in dark mode, and links that work under a path
// prefix behind a proxy, with `/` leading to the page.
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { useChromium } from './browser.js';
import { DEMO_INPUTS, spec } from './cli.js';
import { cliIn } from './in-process.js';
import { http, startServe, type Served } from './serve-process.js';

const TOKEN = 'ops-views-token-0123456789';
/** Set to a folder to keep screenshots of the page at desktop and phone sizes. */
const SHOTS = process.env.OPS_PAGE_SCREENSHOT_DIR;

const browser = useChromium();

async function ok(args: string[], code = 0, env: NodeJS.ProcessEnv = {}): Promise<void> {
  const r = await cliIn(args, { env });
  expect(r.code, `${args.join(' ')}\n${r.stderr}`).toBe(code);
}

/** A workspace with a Season 1 run, two dead letters in `contract`, one in `project_rewards` and a retried task in `flaky`. */
async function workspace(): Promise<string> {
  // Shared by the file's tests (made in beforeAll, where tempWorkspace's failure hook cannot be set).
  const ws = mkdtempSync(join(tmpdir(), 'metaspn-it-'));
  mkdirSync(join(ws, 'inputs'));
  cpSync(DEMO_INPUTS, join(ws, 'inputs', 's1_signals.jsonl'));
  await ok(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-15']);
  await ok(['s1', 'run-local', '--workspace', ws, '--date', '2026-01-16']);
  for (const id of ['c1', 'c2']) await ok(['queue', 'enqueue', 'contract', '--workspace', ws, '--payload', JSON.stringify({ order: id, items: [1, 2] }), '--id', id]);
  await ok(['worker', 'run', spec('Contract'), '--workspace', ws, '--once'], 20);
  await ok(['queue', 'enqueue', 'project_rewards', '--workspace', ws, '--payload', '{"date":"not-a-date"}', '--id', 'bad-task']);
  await ok(['worker', 'run', 'metaspn_ops.workers.s1:ProjectRewardsWorker', '--workspace', ws, '--once'], 20);
  await ok(['queue', 'enqueue', 'flaky', '--workspace', ws, '--payload', '{"fail":1}', '--id', 'f1']);
  // Its retry is not due within the run (on a loaded machine a 10 ms backoff would let --once retry it).
  await ok(['worker', 'run', spec('FailTimes'), '--workspace', ws, '--once'], 11, { METASPN_QUEUE_BACKOFF_BASE_MS: '60000', METASPN_QUEUE_BACKOFF_CAP_MS: '60000' });
  return ws;
}

function ledgerKinds(ws: string): string[] {
  const f = join(ws, 'ledger.jsonl');
  return existsSync(f)
    ? readFileSync(f, 'utf8')
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { kind: string }).kind)
    : [];
}

async function open(url: string, o: { width?: number; height?: number; dark?: boolean; fakeClock?: boolean } = {}): Promise<{ page: Page; errors: string[] }> {
  const page = await browser().newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  if (o.width) await page.setViewportSize({ width: o.width, height: o.height ?? 844 });
  await page.emulateMedia({ colorScheme: o.dark ? 'dark' : 'light' });
  if (o.fakeClock) await page.clock.install();
  // Counts the page's data refreshes (the live switch is judged by them).
  // (Strings, not functions: this project's TypeScript has no DOM types.)
  await page.addInitScript(`
    window.__refreshes = 0;
    const real = window.fetch.bind(window);
    window.fetch = (input, init) => {
      if (/[?&]part=data/.test(String(input))) window.__refreshes++;
      return real(input, init);
    };`);
  const res = await page.goto(url);
  expect(res?.status()).toBe(200);
  return { page, errors };
}

const cell = (page: Page, queue: string, stat: string): Promise<string | null> => page.locator(`#queues-table tr[data-queue="${queue}"] [data-stat="${stat}"]`).textContent();

describe('the /ops page views', () => {
  let ws: string;
  // A server per test (no child process may outlive a test); the workspace is shared, in order.
  let s: Served;
  beforeAll(async () => {
    ws = await workspace();
  }, 120_000);
  beforeEach(async () => {
    s = await startServe(ws, { env: { METASPN_ENV: 'development', METASPN_ADMIN_TOKEN: TOKEN } });
  });
  let failed = false;
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail') failed = true;
    await s.stop();
  });
  afterAll(() => {
    if (failed) process.stderr.write(`kept workspace of failed tests: ${ws}\n`);
    else if (ws) rmSync(ws, { recursive: true, force: true });
  });

  it('desktop: the throughput chart, filter and search, task and run detail views', async () => {
    const { page, errors } = await open(`${s.url}/ops`);
    try {
      // Attempts of the last hour: Season 1's 303 tasks, the two contract errors, one failed retry.
      expect(Number(await page.locator('#chart-completed').textContent())).toBeGreaterThanOrEqual(606);
      expect(Number(await page.locator('#chart-failed').textContent())).toBe(4);
      expect(await page.locator('#chart svg rect.bar-ok').count()).toBeGreaterThan(0);
      expect(await page.locator('#chart svg rect.bar-bad').count()).toBeGreaterThan(0);
      if (SHOTS) await page.screenshot({ path: join(SHOTS, 'ops-desktop.png'), fullPage: true });

      // Filter: only what matches is shown, in every table; clearing it shows everything again.
      const shownQueues = () => page.locator('#queues-table tbody tr:not(.hidden-by-filter)').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-queue')));
      const shownGroups = () => page.locator('#deadletters .dead-group:not(.hidden-by-filter)').evaluateAll((g) => g.map((x) => x.getAttribute('data-queue')));
      await page.locator('#filter').fill('project_rewards');
      expect(await shownQueues()).toEqual(['project_rewards']);
      expect(await shownGroups()).toEqual(['project_rewards']);
      await page.locator('#filter').fill('flaky');
      expect(await shownQueues()).toEqual(['flaky']);
      expect(await shownGroups()).toEqual([]);
      await page.locator('#filter').fill('bad-task');
      expect(await shownGroups()).toEqual(['project_rewards']);
      expect(await page.locator('#deadletters tr[data-task]:not(.hidden-by-filter)').evaluateAll((r) => r.map((x) => x.getAttribute('data-task')))).toEqual(['bad-task']);
      await page.locator('#filter').fill('');
      expect(await page.locator('#data .hidden-by-filter').count()).toBe(0);

      // A dead letter's detail: payload, each attempt's error, its history; back to the page.
      await page.locator('#deadletters tr[data-task="c1"] a').click();
      await page.waitForURL(/\/ops\/task\/contract\/c1$/);
      expect(JSON.parse((await page.locator('#payload pre').textContent())!)).toEqual({ order: 'c1', items: [1, 2] });
      await expect(page.locator('#errors-table tr[data-attempt="1"]').textContent()).resolves.toMatch(/contract[\s\S]*ContractError: missing required column "score"/);
      await expect(page.locator('#history').textContent()).resolves.toContain('Never retried.');
      await page.locator('#back').click();
      await page.waitForURL(/\/ops$/);

      // A run's detail: its four steps, what each read and wrote.
      const runId = (await page.locator('#runs-table tbody tr').first().getAttribute('data-run'))!;
      await page.locator('#runs-table tbody tr').first().locator('a').click();
      await page.waitForURL(new RegExp(`/ops/run/${runId}$`));
      expect(await page.locator('section.step').evaluateAll((x) => x.map((e) => e.getAttribute('data-step')))).toEqual([
        'update_attention_scores',
        'project_rewards',
        'settle_season',
        'publish_season_summary',
      ]);
      await expect(page.locator('section.step[data-step="update_attention_scores"] table.inputs').textContent()).resolves.toContain('s1_signals.jsonl');
      await expect(page.locator('section.step[data-step="update_attention_scores"] table.outputs').textContent()).resolves.toMatch(/s1_attention_scores\.jsonl\s*300/);
      if (SHOTS) await page.screenshot({ path: join(SHOTS, 'ops-run.png'), fullPage: true });
      // Pages of runs and of each queue's dead letters; Refresh keeps the pages looked at.
      await page.goto(`${s.url}/ops?runs_per=1&dl_per=1`);
      const runsShown = () => page.locator('#runs-table tbody tr').evaluateAll((r) => r.map((x) => x.getAttribute('data-run')));
      const deadShown = () => page.locator('#deadletters .dead-group[data-queue="contract"] tr[data-task]').evaluateAll((r) => r.map((x) => x.getAttribute('data-task')));
      const first = await runsShown();
      expect(first).toHaveLength(1);
      await expect(page.locator('[data-pager="runs"]').textContent()).resolves.toBe('runs 1–1 of 2 (page 1 of 2) · older →');
      await page.locator('[data-pager="runs"] a[rel="next"]').click();
      await page.waitForURL(/[?&]runs=2/);
      const second = await runsShown();
      expect(second).toHaveLength(1);
      expect(second).not.toEqual(first);
      expect(await deadShown()).toEqual(['c1']);
      await page.locator('[data-pager="dl_contract"] a[rel="next"]').click();
      await page.waitForURL(/dl_contract=2/);
      expect(await deadShown()).toEqual(['c2']);
      expect(await runsShown()).toEqual(second);
      await page.getByRole('button', { name: 'Refresh' }).click();
      await expect.poll(() => page.locator('#refreshed').textContent()).toMatch(/refreshed/);
      expect(await deadShown()).toEqual(['c2']);
      expect(await runsShown()).toEqual(second);

      // A task that is not a dead letter has its view too: its state, payload and the failed attempt.
      await page.goto(`${s.url}/ops/task/flaky/f1`);
      await expect(page.locator('#task h2').textContent()).resolves.toMatch(/Task f1\s*scheduled/);
      await expect(page.locator('#payload pre').textContent()).resolves.toContain('"fail": 1');
      expect(await page.locator('#errors-table tbody tr').count()).toBe(1);
      await expect(page.locator('#back').getAttribute('href')).resolves.toBe('../../../ops');
      // Unknown ids are a 404 page, not an error.
      expect((await http('GET', `${s.url}/ops/task/contract/nope`)).status).toBe(404);
      expect((await http('GET', `${s.url}/ops/task/no-such-queue/f1`)).status).toBe(404);
      expect((await http('GET', `${s.url}/ops/run/20990101T000000Z-000000`)).status).toBe(404);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('live refresh picks up changes every 5 s until it is paused; Retry all and Discard all act on a whole queue', async () => {
    const { page, errors } = await open(`${s.url}/ops`, { fakeClock: true });
    try {
      const refreshes = (): Promise<number> => page.evaluate('window.__refreshes');
      expect(await page.locator('#live').isChecked()).toBe(true);
      await ok(['queue', 'enqueue', 'settle_season', '--workspace', ws, '--payload', '{"n":1}', '--id', 'live-1']);
      await page.clock.runFor(5_000);
      await expect.poll(() => cell(page, 'settle_season', 'ready')).toBe('1');
      expect(await refreshes()).toBe(1);
      // Paused: the clock runs on, nothing is fetched.
      await page.locator('#live').uncheck();
      await page.clock.runFor(30_000);
      expect(await refreshes()).toBe(1);
      await page.locator('#live').check();
      await page.clock.runFor(5_000);
      await expect.poll(refreshes).toBe(2);

      await page.locator('#token').fill(TOKEN);
      // Retry all: confirmed first; dismissed, nothing happens.
      const group = page.locator('#deadletters .dead-group[data-queue="contract"]');
      page.once('dialog', (d) => void d.dismiss());
      await group.getByRole('button', { name: 'Retry all' }).click();
      await expect.poll(async () => (await http('GET', `${s.url}/api/queues/contract`)).json).toMatchObject({ dead: 2 });
      page.once('dialog', (d) => {
        expect(d.message()).toBe('Retry all 2 dead letter(s) of contract?');
        void d.accept();
      });
      await group.getByRole('button', { name: 'Retry all' }).click();
      await page.locator('#message.ok').waitFor();
      await expect(page.locator('#message').textContent()).resolves.toBe('Retried c1, c2 in contract: back to ready.');
      await group.waitFor({ state: 'detached' });
      expect((await http('GET', `${s.url}/api/queues/contract`)).json).toMatchObject({ dead: 0, ready: 2 });

      // Discard all: asks why, then every dead letter of the queue goes, ledgered.
      const pr = page.locator('#deadletters .dead-group[data-queue="project_rewards"]');
      page.once('dialog', (d) => void d.accept('a test task, not real work'));
      await pr.getByRole('button', { name: 'Discard all' }).click();
      await expect.poll(() => page.locator('#message').textContent()).toBe('Discarded bad-task in project_rewards (ledger entry 4).');
      await pr.waitFor({ state: 'detached' });
      expect(ledgerKinds(ws)).toEqual(['publish', 'publish', 'deadletter_retry', 'deadletter_discard']);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('phone (390 px) in dark mode: nothing wider than the screen, dark colours from the system setting', async () => {
    const { page, errors } = await open(`${s.url}/ops`, { width: 390, height: 844, dark: true });
    try {
      expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
      expect(await page.evaluate('getComputedStyle(document.body).backgroundColor')).toBe('rgb(18, 22, 27)');
      expect(await page.evaluate("getComputedStyle(document.querySelector('section')).backgroundColor")).toBe('rgb(27, 33, 40)');
      // Wide tables scroll inside their panel instead of widening the page.
      const wrap = page.locator('#queues .scroll');
      expect(await wrap.evaluate((e: { scrollWidth: number; clientWidth: number }) => e.scrollWidth > e.clientWidth)).toBe(true);
      // The toolbar's controls fit.
      for (const id of ['token', 'filter', 'refresh']) {
        const box = (await page.locator(`#${id}`).boundingBox())!;
        expect(box.x + box.width, id).toBeLessThanOrEqual(390);
      }
      if (SHOTS) await page.screenshot({ path: join(SHOTS, 'ops-phone-dark.png'), fullPage: true });
      const light = await open(`${s.url}/ops`, { width: 390, height: 844 });
      expect(await light.page.evaluate('getComputedStyle(document.body).backgroundColor')).toBe('rgb(245, 247, 249)');
      if (SHOTS) await light.page.screenshot({ path: join(SHOTS, 'ops-phone-light.png'), fullPage: true });
      await light.page.close();
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('under a path prefix behind a proxy: `/` leads to the page, refresh, writes and detail links stay under the prefix', async () => {
    const target = new URL(s.url);
    const proxy: Server = createServer((req, res) => {
      if (!req.url?.startsWith('/metaspn/')) return void res.writeHead(404).end('not under /metaspn/');
      const up = request({ host: target.hostname, port: target.port, method: req.method, path: req.url.slice('/metaspn'.length), headers: { ...req.headers, host: target.host } }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
    const port = (proxy.address() as { port: number }).port;
    const base = `http://127.0.0.1:${port}/metaspn/`;
    const { page, errors } = await open(base);
    try {
      expect(page.url()).toBe(`${base}ops`);
      const paths: string[] = [];
      page.on('request', (r) => paths.push(new URL(r.url()).pathname));
      await page.getByRole('button', { name: 'Refresh' }).click();
      await expect.poll(() => paths.includes('/metaspn/ops')).toBe(true);
      await page.locator('#token').fill(TOKEN);
      await page.locator('#queues-table tr[data-queue="flaky"]').getByRole('button', { name: 'Pause' }).click();
      await page.locator('#message.ok').waitFor();
      expect(paths).toContain('/metaspn/api/queues/flaky/pause');
      expect((await http('GET', `${s.url}/api/queues/flaky`)).json).toMatchObject({ paused: true });
      expect(paths.filter((p) => !p.startsWith('/metaspn/'))).toEqual([]);
      // A detail page and the way back, under the prefix.
      const runLink = page.locator('#runs-table tbody tr').first().locator('a');
      await runLink.click();
      await page.waitForURL(new RegExp(`^${base}ops/run/`));
      await page.locator('#back').click();
      await page.waitForURL(`${base}ops`);
      // `/ops/` leads back to the page too.
      await page.goto(`${base}ops/`);
      expect(page.url()).toBe(`${base}ops`);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
      proxy.closeAllConnections();
      await new Promise<void>((r) => proxy.close(() => r()));
    }
  });
});
