/**
 * The console with an admin token configured: the server's sign-in page before any of the
 * console's files, an HttpOnly session cookie the page cannot read, live updates, sign-out.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectErrors, launchBrowser } from './browser.js';
import { type LiveDemo, startLiveDemo } from './live-demo.js';

const ADMIN_TOKEN = 'console-admin-token-7d41c9e2';
/** What Chromium logs for the sign-in page, which answers 401 until signed in. */
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
  it('serves only the sign-in page, refuses a wrong token, and signs in with the right one', async () => {
    const first = await page.goto(`${demo.base}/console/`);
    expect(first?.status()).toBe(401);
    // None of the console's own files came with the sign-in page.
    expect(await page.locator('script').count()).toBe(0);
    const field = page.getByLabel('Token');
    await field.fill('not-the-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').getByText('That is not a management token.').waitFor();
    await page.getByLabel('Token').fill(ADMIN_TOKEN);
    await page.getByLabel('Token').press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    await page.getByRole('row', { name: /fulfil-order/ }).waitFor();
    // The session is an HttpOnly, SameSite=Strict cookie: not readable by the page, not the token.
    expect(await page.evaluate('document.cookie')).toBe('');
    expect(await page.evaluate('sessionStorage.length + localStorage.length')).toBe(0);
    const [cookie] = await page.context().cookies();
    expect(cookie).toMatchObject({ name: 'tandem_console', httpOnly: true, sameSite: 'Strict' });
    expect(cookie!.value).not.toContain(ADMIN_TOKEN);
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
    await page.getByLabel('Token').waitFor();
    expect(await page.context().cookies()).toEqual([]);
    const again = await page.goto(`${demo.base}/console/`);
    expect(again?.status()).toBe(401);
    await page.getByLabel('Token').waitFor();
  });
});
