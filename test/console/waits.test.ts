/**
 * The console in headless Chromium with waiting instances: the status `waiting` in its own colour
 * and in the status filter, an instance's version and waits (what each waits for, until when, how
 * it ended), and cancel of a waiting instance.
 */
import { mkdirSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import { waitForStatus } from '../support/engine.js';
import { type TestServer, testServer } from '../support/server.js';
import { waitFor } from '../support/wait.js';
import {
  ARTIFACTS,
  collectErrors,
  LOADED,
  launchBrowser,
  openConsolePage,
  saveScreenshot,
} from './browser.js';

const urls = new Map<string, string>();
/** Waits for the warehouse's callback, then for the payment event. */
const shipOrder = defineIntegration({
  id: 'ship-order',
  mode: 'async',
  version: '2',
  input: z.object({ orderId: z.string() }),
  track: { orderId: 'orderId' },
  async handler(ctx) {
    await ctx.step('pack', () => ({ parcels: 1 }));
    const shipment = await ctx.callback('shipment', { timeout: '3d' });
    await ctx.step('send-to-warehouse', () => {
      urls.set(ctx.input.orderId, shipment.url);
      return null;
    });
    const shipped = await shipment.wait();
    const paid = await ctx.waitForEvent('paid', {
      event: 'payment.booked',
      match: { orderId: ctx.input.orderId },
    });
    return { shipped, paid };
  },
});
const recheck = defineIntegration({
  id: 'recheck-payment',
  mode: 'async',
  async handler(ctx) {
    await ctx.sleep('later', '2h');
    return 'checked';
  },
});

let server: TestServer;
let browser: Browser;
let page: Page;
let errors: string[];

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  [server, browser] = await Promise.all([testServer([shipOrder, recheck]), launchBrowser()]);
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  errors = collectErrors(page);
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

const screenshot = (name: string) => saveScreenshot(page, name);

const open = (hash: string, heading: string) => openConsolePage(page, server.url, hash, heading);

/** The facts list of an instance page, as term → description. */
async function facts(): Promise<Record<string, string>> {
  // Evaluated in the page (a string: the tests compile without the DOM's types).
  return page.evaluate<Record<string, string>>(`Object.fromEntries(
    [...document.querySelectorAll('.facts dt')].map((dt) => [
      dt.textContent,
      (dt.nextElementSibling?.textContent ?? '').trim(),
    ]),
  )`);
}

describe('the console and durable waits', () => {
  it("shows a waiting instance's version and its waits, resolved and open", async () => {
    const { instanceId } = await server.engine.accept('ship-order', { orderId: 'W-1' });
    const url = await waitFor(async () => urls.get('W-1') ?? null, 'the callback URL');
    await waitForStatus(server.engine, instanceId, ['waiting']);
    const answered = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ carrier: 'DHL', trackingNo: 'JD014600' }),
    });
    expect(answered.status).toBe(202);
    // Resumed, it now waits for the payment.
    await waitFor(async () => {
      const { waits } = await server.engine.getDetail(instanceId);
      return waits.length === 2 && (await server.engine.getInstance(instanceId)).status === 'waiting';
    }, 'the second wait');
    const { waits } = await server.engine.getDetail(instanceId);

    await open(`/instances/${instanceId}`, `Instance ${instanceId.slice(-12)}`);
    await page.getByRole('heading', { name: 'Waits' }).waitFor();
    const shown = await facts();
    expect(shown).toMatchObject({ Status: 'waiting', Version: '2', 'Waiting until': 'no timeout' });
    const rows = await page
      .locator('table', { has: page.getByRole('columnheader', { name: 'Waits for' }) })
      .locator('tbody tr')
      .evaluateAll((trs) => trs.map((tr) => [...tr.children].map((cell) => cell.textContent?.trim())));
    const local = (ms: number) => page.evaluate((at) => new Date(at).toLocaleString(), ms);
    expect(rows).toEqual([
      [
        '1',
        'shipment',
        'callback',
        'a call to its callback URL',
        await local(waits[0]!.createdAt),
        await local(waits[0]!.until!),
        `callback answered, ${await local(waits[0]!.resolvedAt!)}`,
      ],
      [
        '1',
        'paid',
        'event',
        'event payment.booked where {"orderId":"W-1"}',
        await local(waits[1]!.createdAt),
        'no timeout',
        'waiting',
      ],
    ]);
    // The timeout is the one the handler asked for: three days after the wait began.
    expect(waits[0]!.until! - waits[0]!.createdAt).toBe(3 * 86_400_000);
    // A waiting instance is not finished: cancel, but no rerun.
    await page.getByRole('button', { name: 'Cancel' }).waitFor();
    expect(await page.getByRole('button', { name: /^Rerun/ }).count()).toBe(0);
    await screenshot('waits-instance-waiting');

    // The event arrives: the page follows the instance to its end.
    const sent = await fetch(`${server.url}/api/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'payment.booked', payload: { orderId: 'W-1', amount: 42 }, id: 'pay-77' }),
    });
    expect(((await sent.json()) as { resumed: string[] }).resumed).toEqual([instanceId]);
    await page.locator('.facts .badge', { hasText: 'succeeded' }).waitFor({ timeout: 15_000 });
    await page.getByRole('cell', { name: /^event pay-77, / }).waitFor();
    expect((await facts())['Waiting until']).toBeUndefined();
    await screenshot('waits-instance-resumed');
    expect(errors, errors.join('\n')).toEqual([]);
  });

  it('lists waiting instances in their own colour, filters by the status, and cancels one', async () => {
    const { instanceId } = await server.engine.accept('recheck-payment', {});
    const waiting = await waitForStatus(server.engine, instanceId, ['waiting']);
    await open('/instances', 'Instances');
    await page.getByLabel('Status').selectOption('waiting');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.waitForURL(/status=waiting/);
    // The filter shows what it filters by.
    await page.waitForFunction(LOADED);
    expect(await page.getByLabel('Status').inputValue()).toBe('waiting');
    const row = page.locator(`tr[data-instance="${instanceId}"]`);
    await row.waitFor();
    expect(await page.locator('tbody tr').count()).toBe(1);
    const badge = row.locator('.badge');
    expect(await badge.textContent()).toBe('waiting');
    /** The colour and border style of a badge of a status, as the page draws it. */
    const drawn = (status: string) =>
      page.evaluate<{ color: string; border: string }>(`(() => {
        const probe = document.createElement('span');
        probe.className = 'badge badge-${status}';
        document.body.append(probe);
        const style = getComputedStyle(probe);
        const drawn = { color: style.color, border: style.borderTopStyle };
        probe.remove();
        return drawn;
      })()`);
    expect(await badge.getAttribute('class')).toBe('badge badge-waiting');
    const style = await drawn('waiting');
    expect(style).toEqual({ color: 'rgb(91, 63, 176)', border: 'dashed' });
    // Not the colour of any other status.
    for (const other of ['queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled']) {
      expect((await drawn(other)).color, other).not.toBe(style.color);
    }
    await screenshot('waits-instances-waiting');

    await row.getByRole('link').click();
    await page.getByRole('heading', { level: 1, name: `Instance ${instanceId.slice(-12)}` }).waitFor();
    await page.getByRole('heading', { name: 'Waits' }).waitFor();
    const local = await page.evaluate((at) => new Date(at).toLocaleString(), waiting.runAt);
    expect(await facts()).toMatchObject({
      Status: 'waiting',
      Version: 'unversioned',
      'Waiting until': local,
    });
    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByRole('button', { name: 'Cancel' }).click();
    await page.locator('.facts .badge', { hasText: 'cancelled' }).waitFor();
    expect((await server.engine.getInstance(instanceId)).status).toBe('cancelled');
    expect(errors, errors.join('\n')).toEqual([]);
  });
});
