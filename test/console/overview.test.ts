/**
 * The overview draws stored figures (they survive a reload and a restart of the server, and equal
 * both the API's and a count of the instances), and an integration can be run with test input from
 * a form generated from its schema: an async one is followed until it completes, a sync one shows
 * its response, bad input shows the refusal and stores nothing. Headless Chromium, the retail demo
 * after a scripted outage.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ms } from '../../console/src/format.js';
import { waitFor } from '../support/wait.js';
import { ARTIFACTS, collectErrors, LOADED, launchBrowser } from './browser.js';
import { type LiveDemo, scriptedOutage, startLiveDemo } from './live-demo.js';

let demo: LiveDemo;
let browser: Browser;
let page: Page;
let errors: string[];

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  [demo, browser] = await Promise.all([startLiveDemo(), launchBrowser()]);
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  errors = collectErrors(page);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await demo?.stop();
});

const api = async (path: string) => (await fetch(demo.base + path)).json() as Promise<any>;
const screenshot = (name: string) =>
  page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

interface Bucket {
  start: number;
  accepted: number;
  succeeded: number;
  failed: number;
  p95: number | null;
}

/** The figures the page shows: its table of minutes (or hours) with instances, and the work now. */
async function shown() {
  return page.evaluate(`(() => {
    const rows = [...document.querySelectorAll('table.overview-figures tbody tr')].map((row) => ({
      start: Number(row.getAttribute('data-start')),
      cells: [...row.querySelectorAll('td')].slice(0, 4).map((cell) => cell.textContent),
    }));
    const figure = (name) => document.querySelector('[data-figure="' + name + '"]')?.textContent ?? null;
    return { rows, backlog: figure('backlog'), retrying: figure('retrying'), waiting: figure('waiting') };
  })()`);
}

/** What the page should show for an API answer. */
const expected = (answer: { buckets: Bucket[]; backlog: number; retrying: number; waiting: number }) => ({
  rows: answer.buckets
    .filter((b) => b.accepted > 0)
    .map((b) => ({ start: b.start, cells: [b.accepted, b.succeeded, b.failed, ms(b.p95)].map(String) })),
  backlog: String(answer.backlog),
  retrying: String(answer.retrying),
  waiting: String(answer.waiting),
});

/** Opens the overview (or reloads it) and waits until what it shows equals the API's answer. */
async function overviewMatchesApi(window: 'hour' | 'day' = 'hour') {
  await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
  await page.waitForFunction(LOADED);
  const details = page.locator('details', { has: page.locator('table.overview-figures') });
  if ((await details.getAttribute('open')) === null) await details.locator('summary').click();
  let last: unknown;
  const answer = await waitFor(
    async () => {
      const answer = await api(`/api/overview?window=${window}`);
      last = { page: await shown(), api: expected(answer) };
      return JSON.stringify((last as any).page) === JSON.stringify((last as any).api) ? answer : null;
    },
    'the overview to show the figures of the API',
    20_000,
  ).catch((error) => {
    throw new Error(`${error.message}: ${JSON.stringify(last)}`);
  });
  return answer as { buckets: Bucket[]; backlog: number; retrying: number; waiting: number };
}

/** Every instance created in [from, to), counted through the instance list. */
async function instancesBetween(from: number, to: number) {
  const items: { status: string; durationMs: number | null }[] = [];
  let cursor: string | null = null;
  do {
    const page: any = await api(
      `/api/instances?from=${from}&to=${to}&limit=1000${cursor ? `&cursor=${cursor}` : ''}`,
    );
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return items;
}

describe('the overview and running an integration from the console', () => {
  let before: Bucket[];

  it('shows the stored figures of the traffic, equal to the API and to a count of the instances, after a reload', async () => {
    await scriptedOutage(demo);
    // Traffic that succeeds as well, after the outage.
    for (const orderId of ['OK-1', 'OK-2']) {
      const response = await fetch(`${demo.base}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ orderId, email: `${orderId.toLowerCase()}@example.com`, sku: 'KB-1', qty: 1 }),
      });
      expect(response.status).toBe(201);
    }
    await waitFor(
      async () => (await api('/api/instances?integration=fulfil-order&status=succeeded')).items.length === 2,
      'the fulfilments after the outage to succeed',
    );
    await page.goto(`${demo.base}/console/#/`);
    const answer = await overviewMatchesApi();
    await screenshot('overview-hour');

    const busy = answer.buckets.filter((b) => b.accepted > 0);
    // 4 orders + their fulfilments, 3 stock look-ups, an onboarding and a document, 2 orders and theirs.
    expect(busy.reduce((n, b) => n + b.accepted, 0)).toBeGreaterThanOrEqual(4 * 2 + 3 + 2 + 2 * 2);
    expect(busy.reduce((n, b) => n + b.failed, 0)).toBeGreaterThanOrEqual(4 + 3 + 1);
    for (const bucket of busy) {
      const instances = await instancesBetween(bucket.start, bucket.start + 60_000);
      const durations = instances
        .filter((i) => i.status === 'succeeded' || i.status === 'failed')
        .map((i) => i.durationMs!)
        .sort((a, b) => a - b);
      expect(bucket).toEqual({
        start: bucket.start,
        accepted: instances.length,
        succeeded: instances.filter((i) => i.status === 'succeeded').length,
        failed: instances.filter((i) => i.status === 'failed').length,
        p95: durations.length === 0 ? null : durations[Math.ceil(0.95 * durations.length) - 1],
      });
    }
    // The held document waits behind the failed onboarding: unfinished, and the oldest such.
    const held = (await api('/api/instances?integration=attach-document')).items[0];
    expect(await page.locator('[data-figure="oldest"] a').getAttribute('href')).toBe(
      `#/instances/${held.id}`,
    );

    await page.reload();
    await overviewMatchesApi();
    before = busy;
    expect(errors, errors.join('\n')).toEqual([]);
  }, 120_000);

  it('keeps the figures across a restart of the server', async () => {
    await demo.restart();
    await page.reload();
    const answer = await overviewMatchesApi();
    expect(answer.buckets.filter((b) => b.accepted > 0)).toEqual(before);
    await page.getByRole('button', { name: 'Last day, per hour' }).click();
    const day = await overviewMatchesApi('day');
    const total = (buckets: Bucket[]) => buckets.reduce((n, b) => n + b.accepted, 0);
    expect(total(day.buckets)).toBe(total(before));
    await screenshot('overview-day');
    // The page loaded after the restart has no errors of its own (the stream reconnects).
    errors.length = 0;
  }, 60_000);

  it('starts an async integration with test input from a generated form, and follows it until it completes', async () => {
    await page.goto(`${demo.base}/console/#/`);
    await page.getByRole('link', { name: 'Run fulfil-order with test input' }).click();
    await page.getByRole('heading', { level: 1, name: 'Run fulfil-order with test input' }).waitFor();
    // The form is generated from the schema and filled with a sample.
    expect(await page.getByLabel('email (required)').inputValue()).toBe('ada@example.com');
    expect(await page.getByLabel('qty (required)').inputValue()).toBe('1');
    await page.getByLabel('orderId (required)').fill('RUN-1');
    await page.getByLabel('sku (required)').fill('KB-1');

    // Bad input: the refusal is shown in the form and nothing is stored.
    const count = (await instancesBetween(0, Date.now() + 60_000)).length;
    await page.getByLabel('qty (required)').fill('0');
    await page.getByRole('button', { name: 'Start' }).click();
    const problem = page.getByRole('alert').filter({ hasText: 'Nothing was started or stored' });
    await problem.waitFor();
    expect(await problem.textContent()).toContain('qty');
    expect(await page.getByLabel('qty (required)').getAttribute('aria-invalid')).toBe('true');
    await screenshot('run-bad-input');
    expect((await instancesBetween(0, Date.now() + 60_000)).length).toBe(count);
    // The browser reports the refused request (400) as a console error: that one was expected.
    expect(errors.splice(0).every((e) => e.includes('400 (Bad Request)'))).toBe(true);

    await page.getByLabel('qty (required)').fill('2');
    await page.getByRole('button', { name: 'Start' }).click();
    const started = page.getByRole('region', { name: 'Started' });
    await started.locator('.badge-succeeded').waitFor({ timeout: 30_000 });
    const href = await started.getByRole('link').first().getAttribute('href');
    const id = decodeURIComponent(href!.split('/').pop()!);
    const detail = await api(`/api/instances/${id}`);
    expect(detail.instance).toMatchObject({
      integrationId: 'fulfil-order',
      status: 'succeeded',
      input: { orderId: 'RUN-1', sku: 'KB-1', qty: 2, email: 'ada@example.com' },
    });
    expect(detail.events[0]).toMatchObject({ type: 'accepted', data: { source: 'console' } });
    await screenshot('run-async');
    // The instance page says it was started from the console.
    await page.getByRole('link', { name: id }).click();
    await page.getByText('Started from the console').waitFor();
    expect(errors, errors.join('\n')).toEqual([]);
  }, 60_000);

  it('calls a sync integration with test input and shows its response and instance', async () => {
    await page.goto(`${demo.base}/console/#/integrations/current-inventory/run`);
    await page.getByRole('heading', { level: 1, name: 'Run current-inventory with test input' }).waitFor();
    // The route's path parameter is a field of the form; the same request can be written as JSON.
    await page.getByLabel('sku (required)').waitFor();
    await page.getByRole('button', { name: 'JSON' }).click();
    const json = page.getByLabel('Request (params, query, input) as JSON');
    expect(JSON.parse(await json.inputValue())).toEqual({ params: { sku: 'sku-1' } });
    await json.fill('{"params": {"sku": ');
    await page.getByText('Not valid JSON').waitFor();
    expect(await page.getByRole('button', { name: 'Call' }).isDisabled()).toBe(true);
    await json.fill('{"params": {"sku": "KB-1"}}');
    await page.getByRole('button', { name: 'Call' }).click();
    const response = page.getByRole('region', { name: 'Response' });
    await response.waitFor();
    const direct = await fetch(`${demo.base}/inventory/KB-1`);
    const body = await direct.json();
    expect(await response.locator('[data-figure="status"]').textContent()).toBe(String(direct.status));
    expect(JSON.parse((await response.locator('pre').textContent())!)).toEqual(body);
    const id = (await response.getByRole('link').textContent())!;
    const detail = await api(`/api/instances/${id}`);
    expect(detail.instance).toMatchObject({
      integrationId: 'current-inventory',
      mode: 'sync',
      status: 'succeeded',
    });
    expect(detail.events[0]).toMatchObject({ type: 'accepted', data: { source: 'console' } });
    await screenshot('run-sync');
    expect(errors, errors.join('\n')).toEqual([]);
  }, 30_000);
});
