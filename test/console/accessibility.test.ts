/**
 * Every console page (the list in pages.ts) checked with axe-core in Chromium against the demo
 * after an outage, when the pages show failures, retries and held work: no serious or critical
 * violation. And the console works from the keyboard: a skip link first, focus that shows.
 */
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACTS, collectErrors, expectAccessible, launchBrowser, openConsolePage } from './browser.js';
import { type LiveDemo, type Outage, scriptedOutage, startLiveDemo } from './live-demo.js';
import { consolePages } from './pages.js';

let demo: LiveDemo;
let browser: Browser;
let page: Page;
let errors: string[];
let outage: Outage;

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  [demo, browser] = await Promise.all([startLiveDemo(), launchBrowser()]);
  // axe-core opens a page of its own in the context: the page needs a context made for it.
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  errors = collectErrors(page);
  outage = await scriptedOutage(demo);
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await demo?.stop();
});

const api = async (path: string) => (await fetch(demo.base + path)).json() as Promise<any>;

const open = (hash: string, heading: string) =>
  openConsolePage(page, demo.base, hash, heading, { exact: true });

describe('the console for everyone', () => {
  it('has no serious or critical accessibility violation on any page', async () => {
    const failed = await api(`/api/instances?integration=fulfil-order&tracking=${outage.orderIds[0]}`);
    const pages = consolePages({ instanceId: failed.items[0].id });
    for (const { name, hash, heading } of pages) {
      await open(hash, heading);
      await expectAccessible(page, name);
      const path = join(ARTIFACTS, `a11y-${name}.png`);
      await page.screenshot({ path, fullPage: true });
      expect(statSync(path).size).toBeGreaterThan(1_000);
    }
    expect(errors).toEqual([]);
  }, 120_000);

  it('has none at phone width either, where wide tables and the picture scroll sideways', async () => {
    const failed = await api(`/api/instances?integration=fulfil-order&tracking=${outage.orderIds[0]}`);
    await page.setViewportSize({ width: 375, height: 800 });
    try {
      for (const { name, hash, heading } of consolePages({ instanceId: failed.items[0].id })) {
        await open(hash, heading);
        await expectAccessible(page, `${name} at 375 px`);
      }
    } finally {
      await page.setViewportSize({ width: 1280, height: 900 });
    }
  }, 120_000);

  it('the check itself fails on a serious violation (a button without a name)', async () => {
    await open('/connections', 'Connections');
    await page.evaluate("document.getElementById('main').append(document.createElement('button'))");
    await expect(expectAccessible(page, 'a nameless button')).rejects.toThrow(
      /critical button-name: Buttons must have discernible text/,
    );
  });

  it('works from the keyboard: a skip link first, visible focus, every nav entry by Tab and Enter', async () => {
    await open('/errors', 'Errors');
    await page.reload(); // a fresh load: focus starts at the top of the document
    await page.getByRole('heading', { level: 1, name: 'Errors' }).waitFor();
    await page.keyboard.press('Tab');
    const skip = page.getByRole('link', { name: 'Skip to content' });
    await skip.waitFor({ state: 'attached' });
    await expect
      .poll(() =>
        page.evaluate("document.activeElement?.tagName + ' ' + document.activeElement?.textContent"),
      )
      .toBe('A Skip to content');
    // Visible: on screen with an outline, not parked off to the left.
    const shown = (await page.evaluate(
      '({ left: document.activeElement.getBoundingClientRect().left, outline: getComputedStyle(document.activeElement).outlineStyle })',
    )) as { left: number; outline: string };
    expect(shown.left).toBeGreaterThanOrEqual(0);
    expect(shown.outline).not.toBe('none');
    await page.screenshot({ path: join(ARTIFACTS, 'keyboard-skip-link.png') });
    await page.keyboard.press('Enter');
    await expect.poll(() => page.evaluate('document.activeElement?.id')).toBe('main');
    // The page stays where it was: skipping is not navigating.
    expect(new URL(page.url()).hash).toBe('#/errors');
    // Tab from the top reaches each nav entry; Enter opens its page.
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Errors' }).waitFor();
    const entries = await page
      .getByRole('navigation', { name: 'Console' })
      .getByRole('link')
      .allTextContents();
    expect(entries).toContain('Integrations');
    for (let tab = 0; tab < 20; tab++) {
      await page.keyboard.press('Tab');
      if ((await page.evaluate('document.activeElement?.textContent')) === 'Integrations') break;
    }
    const focused = await page.evaluate(
      '({ text: document.activeElement.textContent, outline: getComputedStyle(document.activeElement).outlineStyle })',
    );
    expect(focused).toEqual({ text: 'Integrations', outline: 'solid' });
    await page.screenshot({ path: join(ARTIFACTS, 'keyboard-nav-focus.png') });
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Integrations' }).waitFor();
    // Focus follows to the new page's heading; Tab goes on to the page's first link.
    await expect.poll(() => page.evaluate('document.activeElement?.id')).toBe('page-title');
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement?.tagName')).toBe('A');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: /^Integration / }).waitFor();
    expect(errors).toEqual([]);
  }, 60_000);
});
