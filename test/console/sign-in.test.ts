/** The console with an admin token configured: sign-in, the token kept for the tab, live updates. */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectErrors, launchBrowser } from './browser.js';
import { type LiveDemo, startLiveDemo } from './live-demo.js';

const ADMIN_TOKEN = 'console-admin-token-7d41c9e2';
/** What Chromium logs for the 401 that makes the console ask for the token. */
const EXPECTED_401 = /Failed to load resource: the server responded with a status of 401/;

let demo: LiveDemo;
let browser: Browser;
let page: Page;
let errors: string[];

beforeAll(async () => {
  [demo, browser] = await Promise.all([startLiveDemo({ adminToken: ADMIN_TOKEN }), launchBrowser()]);
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  errors = collectErrors(page);
});

afterAll(async () => {
  await browser?.close();
  await demo?.stop();
});

describe('the console behind an admin token', () => {
  it('asks for the token, refuses a wrong one, and signs in with the right one', async () => {
    await page.goto(`${demo.base}/console/`);
    const field = page.getByLabel('Admin token');
    await field.fill('not-the-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').getByText('That is not the admin token.').waitFor();
    await field.fill(ADMIN_TOKEN);
    await field.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    await page.getByRole('row', { name: /fulfil-order/ }).waitFor();
    expect(await page.evaluate('sessionStorage.length')).toBe(1);
    await page.reload();
    await page.getByRole('row', { name: /fulfil-order/ }).waitFor();
    expect(errors.filter((e) => !EXPECTED_401.test(e))).toEqual([]);
  });

  it('follows the live activity with the token', async () => {
    await page.goto(`${demo.base}/console/#/instances?integration=fulfil-order`);
    await page.getByText('Live: new instances appear as they come.').waitFor();
    const response = await fetch(`${demo.base}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ orderId: 'S-1', email: 's-1@example.com', sku: 'KB-1', qty: 1 }),
    });
    expect(response.status).toBe(201);
    await page.getByRole('row', { name: /orderId: S-1/ }).waitFor({ timeout: 10_000 });
    expect(errors.filter((e) => !EXPECTED_401.test(e))).toEqual([]);
  });

  it('signs out and asks again', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Admin token').waitFor();
    expect(await page.evaluate('sessionStorage.length')).toBe(0);
  });
});
