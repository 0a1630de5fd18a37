/**
 * The console in headless Chromium against a live server running the retail demo: every page,
 * search by order number, rerun of a failed instance, bulk rerun, and the live list.
 */
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/wait.js';
import {
  ARTIFACTS,
  collectErrors,
  LOADED,
  launchBrowser,
  openConsolePage,
  saveScreenshot,
} from './browser.js';
import { type LiveDemo, startLiveDemo } from './live-demo.js';

let demo: LiveDemo;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let errors: string[];

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  [demo, browser] = await Promise.all([startLiveDemo(), launchBrowser()]);
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  errors = collectErrors(page);
});

afterAll(async () => {
  await browser?.close();
  await demo?.stop();
});

const api = async (path: string) => (await fetch(demo.base + path)).json() as Promise<any>;
const order = (orderId: string) =>
  fetch(`${demo.base}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ orderId, email: `${orderId.toLowerCase()}@example.com`, sku: 'KB-1', qty: 1 }),
  }).then((response) => expect(response.status).toBe(201));
const inventory = (state: '_down' | '_up') =>
  fetch(`${demo.apps.inventory.url}/${state}`, { method: 'POST' });

async function fulfilment(orderId: string, status: string) {
  return waitFor(
    async () => {
      const page = await api(`/api/instances?integration=fulfil-order&tracking=${orderId}`);
      return page.items[0]?.status === status ? page.items[0] : null;
    },
    `the fulfilment of ${orderId} to be ${status}`,
    15_000,
  );
}

const screenshot = (name: string) => saveScreenshot(page, name);

/** Opens a console page and waits for its heading and its data. */
const open = (hash: string, heading: string) => openConsolePage(page, demo.base, hash, heading);

async function circuitNotOpen(connection: string) {
  await waitFor(
    async () =>
      (await api('/api/connections')).items.find((c: any) => c.id === connection)?.circuit !== 'open',
    `the ${connection} circuit to let a call through`,
    15_000,
  );
}

describe('the web console', () => {
  it('loads every page without errors, and saves a screenshot of each', async () => {
    await order('C-1');
    await fulfilment('C-1', 'succeeded');
    for (const [hash, heading, name] of [
      ['/', 'Overview', 'overview'],
      ['/instances', 'Instances', 'instances'],
      ['/errors', 'Errors', 'errors'],
      ['/schedules', 'Schedules', 'schedules'],
      ['/connections', 'Connections', 'connections'],
      ['/advisor', 'Advisor', 'advisor'],
    ] as const) {
      await open(hash, heading);
      if (name === 'overview' || name === 'instances') {
        await page
          .getByRole('row', { name: /fulfil-order/ })
          .first()
          .waitFor();
      }
      await screenshot(name);
    }
    expect(errors, errors.join('\n')).toEqual([]);
  });

  it('finds an instance by its order number and shows its timeline', async () => {
    await order('C-100');
    await fulfilment('C-100', 'succeeded');
    await open('/instances', 'Instances');
    await page.getByLabel('Tracking value').fill('C-100');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.waitForURL(/tracking=C-100/);
    const row = page.getByRole('row', { name: /fulfil-order/ });
    await row.waitFor();
    expect(await row.count()).toBe(1);
    const rows = await page.locator('tbody tr').allTextContents();
    expect(rows.length).toBeGreaterThan(0);
    for (const text of rows) expect(text).toContain('orderId: C-100');
    await row.getByRole('link').click();
    await page.getByText('orderId: C-100').waitFor();
    const timeline = page.getByRole('list', { name: /steps and connection calls/i });
    for (const step of ['create-account', 'update-inventory', 'packing-list', 'send-to-warehouse']) {
      await expect(timeline.getByText(step, { exact: true }).count()).resolves.toBe(1);
    }
    await expect(timeline.getByText(/POST inventory \/reservations → 201/).count()).resolves.toBe(1);
    await screenshot('instance');
    expect(errors, errors.join('\n')).toEqual([]);
  });

  it('reruns a failed instance from the console and shows it succeed', async () => {
    await inventory('_down');
    await order('C-200');
    const failed = await fulfilment('C-200', 'failed');
    await inventory('_up');
    await open(`/instances/${failed.id}`, `Instance ${failed.id.slice(-12)}`);
    await page.locator('.facts .badge', { hasText: 'failed' }).waitFor();
    await page.getByRole('heading', { name: 'Error' }).waitFor();
    await screenshot('instance-failed');
    await circuitNotOpen('inventory');
    await page.getByRole('button', { name: 'Rerun from failed step' }).click();
    await page.locator('.facts .badge', { hasText: 'succeeded' }).waitFor({ timeout: 15_000 });
    await page.getByRole('cell', { name: 'failed-step' }).waitFor();
    expect((await api(`/api/instances/${failed.id}`)).instance.status).toBe('succeeded');
    expect(errors, errors.join('\n')).toEqual([]);
  });

  it('reruns a group of failures in bulk after a confirmation, showing progress', async () => {
    await inventory('_down');
    // Two failures of two attempts each: five in a row would open the inventory circuit, which
    // holds the instances in retrying instead of failing them.
    const ids = ['C-301', 'C-302'];
    for (const id of ids) await order(id);
    for (const id of ids) await fulfilment(id, 'failed');
    await inventory('_up');
    await open('/errors', 'Errors');
    const group = page.locator('.group', { has: page.getByRole('heading', { name: /^fulfil-order:/ }) });
    await group.getByText('2 instances', { exact: true }).waitFor();
    await group.getByRole('button', { name: 'Rerun all 2' }).click();
    await screenshot('errors-confirm');
    await expect(page.evaluate('document.activeElement.textContent')).resolves.toBe('Confirm rerun of 2');
    await circuitNotOpen('inventory');
    await group.getByRole('button', { name: 'Confirm rerun of 2' }).click();
    await page
      .getByRole('status')
      .getByText(/fulfil-order: .* 2 of 2 queued for rerun/)
      .waitFor();
    for (const id of ids) await fulfilment(id, 'succeeded');
    await page.getByRole('status').getByText('Now: 2 succeeded.').waitFor({ timeout: 10_000 });
    await screenshot('errors-rerun');
    await group.waitFor({ state: 'detached', timeout: 10_000 });
    expect(errors, errors.join('\n')).toEqual([]);
  });

  it('edits the input and reruns from the start', async () => {
    const done = await fulfilment('C-1', 'succeeded');
    await open(`/instances/${done.id}`, `Instance ${done.id.slice(-12)}`);
    await page.getByRole('button', { name: 'Edit input and rerun' }).click();
    const input = page.getByLabel('Input (JSON)');
    const edited = { ...JSON.parse(await input.inputValue()), qty: 3 };
    await input.fill(JSON.stringify(edited));
    await page.getByRole('button', { name: 'Rerun with this input' }).click();
    await page.getByRole('row', { name: /^2 start succeeded/ }).waitFor({ timeout: 15_000 });
    const detail = await api(`/api/instances/${done.id}`);
    expect(detail.instance).toMatchObject({ run: 2, status: 'succeeded', input: { orderId: 'C-1', qty: 3 } });
    expect(detail.runs.map((r: any) => r.input.qty)).toEqual([1, 3]);
    await page.getByLabel('Run', { exact: true }).selectOption('1');
    await page.getByRole('heading', { name: 'Timeline of run 1' }).waitFor();
    const timeline = page.getByRole('list', { name: /steps and connection calls/i });
    await expect(timeline.getByText('send-to-warehouse', { exact: true }).count()).resolves.toBe(1);
    expect(errors, errors.join('\n')).toEqual([]);
  });

  it('cancels a failed instance after a confirmation', async () => {
    await inventory('_down');
    await order('C-500');
    const failed = await fulfilment('C-500', 'failed');
    await inventory('_up');
    await open(`/instances/${failed.id}`, `Instance ${failed.id.slice(-12)}`);
    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByRole('button', { name: 'Cancel' }).click();
    await page.locator('.facts .badge', { hasText: 'cancelled' }).waitFor();
    expect((await api(`/api/instances/${failed.id}`)).instance.status).toBe('cancelled');
    expect(errors, errors.join('\n')).toEqual([]);
  });

  it('shows new instances in the list without a reload', async () => {
    await open('/instances?integration=fulfil-order', 'Instances');
    await page.getByText('Live: new instances appear as they come.').waitFor();
    const rows = await page.getByRole('row').count();
    await page.evaluate('window.sameDocument = true');
    await order('C-400');
    await page.getByRole('row', { name: /orderId: C-400/ }).waitFor({ timeout: 10_000 });
    expect(await page.getByRole('row').count()).toBe(rows + 1);
    expect(await page.evaluate('window.sameDocument')).toBe(true);
    expect(errors, errors.join('\n')).toEqual([]);
  });

  it('is usable with the keyboard alone', async () => {
    await open('/', 'Overview');
    await page.reload(); // a fresh load: focus starts at the top of the document
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    await page.keyboard.press('Tab');
    await expect(page.evaluate('document.activeElement.textContent.trim()')).resolves.toBe('Skip to content');
    for (let i = 0; i < 3; i++) await page.keyboard.press('Tab');
    await expect(page.evaluate('document.activeElement.textContent')).resolves.toBe('Errors');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Errors' }).waitFor();
    // Focus follows the navigation to the new page's heading.
    await page.waitForFunction("document.activeElement?.id === 'page-title'");
    // The next Tab reaches the page's first action, and Enter follows it.
    await page.keyboard.press('Tab');
    await expect(page.evaluate('document.activeElement.textContent')).resolves.toBe(
      'Show acknowledged failures',
    );
    await page.keyboard.press('Enter');
    await page.getByRole('link', { name: 'Hide acknowledged failures' }).waitFor();
    expect(errors, errors.join('\n')).toEqual([]);
  });

  it('is readable at phone width', async () => {
    const phone = await context.newPage();
    const phoneErrors = collectErrors(phone);
    await phone.setViewportSize({ width: 375, height: 800 });
    const detail = (await api('/api/instances?integration=fulfil-order&tracking=C-200')).items[0];
    for (const [hash, name] of [
      ['/', 'overview'],
      [`/instances/${detail.id}`, 'instance'],
    ]) {
      await phone.goto(`${demo.base}/console/#${hash}`);
      await phone.getByRole('heading', { level: 1 }).waitFor();
      await phone.waitForFunction(LOADED);
      // Wide tables scroll inside their own box; the page itself does not scroll sideways.
      expect(await phone.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(375);
      const path = join(ARTIFACTS, `phone-${name}.png`);
      await phone.screenshot({ path, fullPage: true });
      expect(statSync(path).size).toBeGreaterThan(1_000);
    }
    await phone.close();
    expect(phoneErrors, phoneErrors.join('\n')).toEqual([]);
  });

  it('runs a schedule now from the Schedules page and the run succeeds', async () => {
    await open('/schedules', 'Schedules');
    await page.getByRole('button', { name: 'Run nightly-orders now' }).click();
    const started = page.getByText('Started:');
    await started.waitFor();
    const href = await started.getByRole('link').getAttribute('href');
    const instanceId = decodeURIComponent(href!.split('/').pop()!);
    const instance = await waitFor(
      async () => {
        const detail = await api(`/api/instances/${instanceId}`);
        return ['succeeded', 'failed'].includes(detail.instance?.status) ? detail.instance : null;
      },
      'the nightly run to finish',
      30_000,
    );
    expect(instance.integrationId).toBe('nightly-orders');
    expect(instance.status).toBe('succeeded');
    await screenshot('schedule-run-now');
    expect(errors, errors.join('\n')).toEqual([]);
  });
});
