// Discarding dead letters over `metaspn serve`: POST /api/queues/:worker/discard, guarded like every
// write, and the Discard button of the /ops page in a real headless Chromium (Debian's `chromium`).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { useChromium } from './browser.js';
import { spec, tempWorkspace } from './cli.js';
import { cliIn } from './in-process.js';
import { http, startServe } from './serve-process.js';

const TOKEN = 'ops-discard-token-0123456789';
/** Set to a path (e.g. /tmp/ops-discard.png) to keep a screenshot of the dead letters with their buttons. */
const SCREENSHOT = process.env.OPS_PAGE_SCREENSHOT;

interface LedgerLine {
  kind: string;
  detail: { worker: string; ids: string[]; reason: string; by: string };
}

function ledger(ws: string): LedgerLine[] {
  const f = join(ws, 'ledger.jsonl');
  return existsSync(f)
    ? readFileSync(f, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as LedgerLine)
    : [];
}

const deadFile = (ws: string, id: string): string => join(ws, 'deadletter', 'contract', `${id}.json`);

async function withDeadLetters(ids: string[]): Promise<string> {
  const ws = tempWorkspace({ demo: false });
  for (const id of ids) {
    const r = await cliIn(['queue', 'enqueue', 'contract', '--workspace', ws, '--payload', JSON.stringify({ id }), '--id', id]);
    expect(r.code, r.stderr).toBe(0);
  }
  const w = await cliIn(['worker', 'run', spec('Contract'), '--workspace', ws, '--once']);
  expect(w.code, w.stderr).toBe(20);
  return ws;
}

const browser = useChromium();

describe('discarding dead letters over serve', () => {
  it('POST /api/queues/:worker/discard: guarded like every write; checked before anything changes; ledgered with the caller', async () => {
    const ws = await withDeadLetters(['a', 'b']);
    const s = await startServe(ws, { env: { METASPN_ADMIN_TOKEN: TOKEN } });
    try {
      const url = `${s.url}/api/queues/contract/discard`;
      // No token (what a cross-site form or script gets): refused at the headers. A text/plain body (a form) is refused too.
      expect((await http('POST', url, { body: { task_ids: ['a'], reason: 'x' } })).status).toBe(401);
      expect((await http('POST', url, { raw: 'task_ids=a', headers: { 'content-type': 'text/plain' } })).status).toBe(401);
      expect((await http('POST', url, { token: TOKEN, raw: '{"task_ids":["a"],"reason":"x"}', headers: { 'content-type': 'text/plain' } })).status).toBe(415);
      const refused = async (body: unknown, status: number, error: RegExp): Promise<void> => {
        const r = await http('POST', url, { token: TOKEN, body });
        expect(r.status, JSON.stringify(body)).toBe(status);
        expect((r.json as { error: string }).error).toMatch(error);
      };
      await refused({ task_ids: ['a'] }, 400, /"reason" is required/);
      await refused({ reason: 'x' }, 400, /give "task_ids": \[ids\] or "all": true, one of the two/);
      await refused({ all: true, task_ids: ['a'], reason: 'x' }, 400, /one of the two/);
      await refused({ all: 'yes', reason: 'x' }, 400, /"all" must be true/);
      await refused({ task_ids: 'a', reason: 'x' }, 400, /"task_ids" must be a list/);
      await refused({ task_ids: ['a'], reason: 'x', force: true }, 400, /unknown key\(s\) in the body: force/);
      await refused({ task_ids: ['a', 'nope'], reason: 'x' }, 404, /^not in the dead letters of contract: nope; nothing was discarded$/);
      const typo = await http('POST', `${s.url}/api/queues/contrct/discard`, { token: TOKEN, body: { all: true, reason: 'x' } });
      expect(typo.status).toBe(404);
      expect((typo.json as { error: string }).error).toMatch(/unknown queue "contrct" in \S+: did you mean contract\?/);
      expect(existsSync(deadFile(ws, 'a'))).toBe(true);
      expect(ledger(ws)).toEqual([]);

      const dry = await http('POST', url, { token: TOKEN, body: { all: true, dry_run: true } });
      expect(dry.status).toBe(200);
      expect(dry.json).toMatchObject({ dry_run: true, discarded: ['a', 'b'], ledger_seq: null });
      expect(existsSync(deadFile(ws, 'a'))).toBe(true);

      const ok = await http('POST', url, { token: TOKEN, body: { task_ids: ['a'], reason: 'replaced by a new task' }, headers: { 'x-metaspn-actor': 'alice' } });
      expect(ok.status, ok.text).toBe(200);
      expect(ok.json).toMatchObject({ worker: 'contract', dry_run: false, discarded: ['a'], skipped: [], ledger_seq: 1, by: 'ops 127.0.0.1 alice' });
      expect(existsSync(deadFile(ws, 'a'))).toBe(false);
      expect(existsSync(deadFile(ws, 'b'))).toBe(true);
      expect(ledger(ws)).toMatchObject([{ kind: 'deadletter_discard', detail: { worker: 'contract', ids: ['a'], reason: 'replaced by a new task', by: 'ops 127.0.0.1 alice' } }]);
      const q = await http('GET', `${s.url}/api/queues/contract`);
      expect(q.json).toMatchObject({ dead: 1, cancelled: 1 });
      // Gone from the dead letters: a second discard of it is a 404.
      await refused({ task_ids: ['a'], reason: 'again' }, 404, /not in the dead letters of contract: a/);
    } finally {
      await s.stop();
    }
  });

  it('the /ops page: Discard asks why, discards the task with the token and shows it gone; no reason, nothing happens', async () => {
    const ws = await withDeadLetters(['a', 'b']);
    const s = await startServe(ws, { env: { METASPN_ENV: 'development', METASPN_ADMIN_TOKEN: TOKEN } });
    const page = await browser().newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    try {
      expect((await page.goto(`${s.url}/ops`))?.status()).toBe(200);
      const row = page.locator('#deadletters tr[data-task="b"]');
      await expect(row.getByRole('button', { name: 'Discard' }).count()).resolves.toBe(1);
      await expect(row.getByRole('button', { name: 'Retry' }).count()).resolves.toBe(1);
      if (SCREENSHOT) await page.locator('#deadletters').screenshot({ path: SCREENSHOT });
      await page.locator('#token').fill(TOKEN);

      // Dismissed, then an empty reason: nothing is sent.
      const prompts: string[] = [];
      page.once('dialog', (d) => void (prompts.push(d.message()), d.dismiss()));
      await row.getByRole('button', { name: 'Discard' }).click();
      await expect.poll(() => prompts.length).toBe(1);
      expect(prompts[0]).toBe('Discard contract / b: it leaves the dead letters for good. Why? (recorded in the ledger)');
      page.once('dialog', (d) => void d.accept('   '));
      await row.getByRole('button', { name: 'Discard' }).click();
      await page.locator('#message.error').waitFor();
      await expect(page.locator('#message').textContent()).resolves.toBe('Discard contract / b: a reason is required.');
      expect(existsSync(deadFile(ws, 'b'))).toBe(true);
      expect(ledger(ws)).toEqual([]);

      page.once('dialog', (d) => void d.accept('duplicate of a'));
      await row.getByRole('button', { name: 'Discard' }).click();
      await page.locator('#message.ok').waitFor();
      await expect(page.locator('#message').textContent()).resolves.toBe('Discarded b in contract (ledger entry 1).');
      await row.waitFor({ state: 'detached' });
      await expect(page.locator('#deadletters tr[data-task="a"]').count()).resolves.toBe(1);
      await expect(page.locator('#queues-table tr[data-queue="contract"] [data-stat="dead"]').textContent()).resolves.toBe('1');
      expect(existsSync(deadFile(ws, 'b'))).toBe(false);
      expect(ledger(ws)).toMatchObject([{ kind: 'deadletter_discard', detail: { ids: ['b'], reason: 'duplicate of a', by: 'ops 127.0.0.1 api' } }]);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
      await s.stop();
    }
  });
});
