import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';

/** Debian's chromium, which the /ops page tests drive through playwright-core (.ci/run installs it). */
export const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/**
 * A headless Chromium for a test file: launched before its tests (1280×900, a fresh profile) and
 * closed after them, profile removed. Call at the top level of the file; the function it returns
 * gives the browser inside a test.
 */
export function useChromium(): () => BrowserContext {
  let browser: BrowserContext | undefined;
  let profile: string | undefined;
  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does it)`);
    profile = mkdtempSync(join(tmpdir(), 'metaspn-chromium-'));
    browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1280, height: 900 } });
  });
  afterAll(async () => {
    await browser?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });
  return () => {
    if (!browser) throw new Error('Chromium is not running (useChromium must be called at the top level of the file)');
    return browser;
  };
}
