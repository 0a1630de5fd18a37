/**
 * The errors page in headless Chromium after the demo's scripted outage: the failures of one outage
 * form one group per integration and step (the circuit-open ones included), the sync stock look-ups
 * form a group without a rerun and say why, a group's rerun queues its async instances (and they
 * succeed), acknowledging every group empties the default view — also after a reload — and the
 * acknowledgement shows in the instance API. An alert's link to a group opens that group alone.
 */
import { mkdirSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
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
import { type LiveDemo, type Outage, scriptedOutage, startLiveDemo } from './live-demo.js';

let demo: LiveDemo;
let outage: Outage;
let browser: Browser;
let page: Page;
let errors: string[];

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  [demo, browser] = await Promise.all([startLiveDemo(), launchBrowser()]);
  outage = await scriptedOutage(demo);
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  errors = collectErrors(page);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await demo?.stop();
});

const api = async (path: string) => (await fetch(demo.base + path)).json() as Promise<any>;

const screenshot = (name: string) => saveScreenshot(page, name);

const open = (hash: string) => openConsolePage(page, demo.base, hash, 'Errors');

const card = (title: string) => page.locator('.group', { has: page.getByRole('heading', { name: title }) });

describe('errors page after an outage', () => {
  it('shows one group per integration and step, the sync group without a rerun and why', async () => {
    const { groups } = await api('/api/errors');
    const of = (integration: string) => groups.filter((g: any) => g.integrationId === integration);
    // Every fulfilment failed in update-inventory, calling inventory: one group, whatever the messages.
    expect(of('fulfil-order')).toHaveLength(1);
    expect(of('fulfil-order')[0]).toMatchObject({
      step: 'update-inventory',
      connection: 'inventory',
      count: outage.orderIds.length,
      rerun: { possible: true },
    });
    expect(of('current-inventory')).toHaveLength(1);
    expect(of('current-inventory')[0]).toMatchObject({
      mode: 'sync',
      connection: 'inventory',
      count: outage.syncFailures,
      rerun: { possible: false },
    });
    expect(of('onboard-employee')).toHaveLength(1);
    // Nothing else failed: the cards on the page are these groups.
    expect(groups).toHaveLength(3);

    await open('/errors');
    await expect(page.locator('.group').count()).resolves.toBe(3);
    const fulfil = card('fulfil-order: update-inventory');
    await fulfil.getByText(`${outage.orderIds.length} instances`, { exact: true }).waitFor();
    await fulfil.getByRole('button', { name: `Rerun all ${outage.orderIds.length}` }).waitFor();
    for (const code of Object.keys(of('fulfil-order')[0].codes)) {
      await expect(fulfil.getByText(code).count()).resolves.toBeGreaterThan(0);
    }
    const stock = card('current-inventory: outside any step');
    await stock.getByText(`${outage.syncFailures} instances`, { exact: true }).waitFor();
    await stock
      .getByText(/^No rerun: Sync instances are never rerun: each caller already had its answer/)
      .waitFor();
    await expect(stock.getByRole('button', { name: /Rerun/ }).count()).resolves.toBe(0);
    await stock.getByRole('button', { name: `Acknowledge ${outage.syncFailures}` }).waitFor();
    // Example messages are inside the group, with their counts, adding up to the group's count.
    const examples = of('current-inventory')[0].examples;
    expect(examples.length).toBeGreaterThan(0);
    for (const example of examples) await stock.getByText(example.message).first().waitFor();
    await screenshot('errors-outage');
    expect(errors, errors.join('\n')).toEqual([]);
  });

  it("an alert's link (?group=<key>) shows that group alone, with the way back to every group", async () => {
    const { groups } = await api('/api/errors');
    const fulfil = groups.find((g: any) => g.integrationId === 'fulfil-order');
    await open(`/errors?group=${encodeURIComponent(fulfil.key)}`);
    await card('fulfil-order: update-inventory').waitFor();
    await expect(page.locator('.group').count()).resolves.toBe(1);
    await page.getByRole('link', { name: 'Show all groups' }).click();
    await waitFor(async () => (await page.locator('.group').count()) === 3, 'every group');
    expect(errors, errors.join('\n')).toEqual([]);
  });

  it('reruns the group of fulfilments: each is queued and succeeds, and a refused one is listed with its reason', async () => {
    const n = outage.orderIds.length;
    // The group as the page loads it names one instance more, which no longer exists (as if purged
    // meanwhile): the server refuses that one, and the page says which and why.
    await page.route('**/api/errors', async (route) => {
      const response = await route.fetch();
      const body = await response.json();
      for (const group of body.groups)
        if (group.integrationId === 'fulfil-order') {
          group.instanceIds.push('gone-instance');
          group.count++;
        }
      await route.fulfill({ response, json: body });
    });
    await open('/errors');
    const fulfil = card('fulfil-order: update-inventory');
    await fulfil.getByRole('button', { name: `Rerun all ${n + 1}` }).click();
    await expect(page.evaluate('document.activeElement.textContent')).resolves.toBe(
      `Confirm rerun of ${n + 1}`,
    );
    await fulfil.getByRole('button', { name: `Confirm rerun of ${n + 1}` }).click();
    // Waits for a reload of the list still in the handler: unrouted under it, its fulfil would throw.
    await page.unrouteAll({ behavior: 'wait' });
    const status = page.getByRole('status');
    await status.getByText(`fulfil-order: update-inventory: ${n} of ${n + 1} queued for rerun.`).waitFor();
    await status.getByText('Not rerun: 1 instance.').waitFor();
    await status
      .getByRole('listitem')
      .filter({ hasText: 'gone-instance: No instance has this id' })
      .waitFor();
    await status.getByText(`Now: ${n} succeeded.`).waitFor({ timeout: 60_000 });
    for (const orderId of outage.orderIds) {
      const found = await api(`/api/instances?integration=fulfil-order&tracking=${orderId}`);
      expect(found.items[0]).toMatchObject({ status: 'succeeded', run: 2 });
    }
    await fulfil.waitFor({ state: 'detached', timeout: 10_000 });
    await screenshot('errors-rerun');
    expect(errors, errors.join('\n')).toEqual([]);
  });

  it('lists each instance a rerun refuses, with its reason', async () => {
    const { groups } = await api('/api/errors');
    const stock = groups.find((g: any) => g.integrationId === 'current-inventory');
    const answer: any = await (
      await fetch(`${demo.base}/api/instances/rerun`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ids: stock.instanceIds }),
      })
    ).json();
    expect(answer.count).toBe(0);
    expect(answer.refused.map((r: any) => [r.instanceId, r.code])).toEqual(
      stock.instanceIds.map((id: string) => [id, 'invalid-state']),
    );
    for (const refusal of answer.refused) expect(refusal.reason).toMatch(/^A sync instance is never rerun/);
  });

  it('acknowledging every group empties the default view, after a reload too; the flag is in the instance API', async () => {
    const before = (await api('/api/errors')).groups as any[];
    expect(before.length).toBeGreaterThan(0);
    for (const group of before) {
      const title = `${group.integrationId}: ${group.step ?? 'outside any step'}`;
      await card(title)
        .getByRole('button', { name: `Acknowledge ${group.count}` })
        .click();
      await page
        .getByRole('status')
        .getByText(`${title}: ${group.count} failure`, { exact: false })
        .waitFor();
      await card(title).waitFor({ state: 'detached' });
    }
    await page.getByText(/^No failure waits for attention/).waitFor();
    await screenshot('errors-acknowledged');
    expect((await api('/api/errors')).groups).toEqual([]);

    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Errors' }).waitFor();
    await page.waitForFunction(LOADED);
    await page.getByText(/^No failure waits for attention/).waitFor();
    await expect(page.locator('.group').count()).resolves.toBe(0);

    // The flag is kept with each instance, sync and async alike, with its event.
    for (const group of before) {
      for (const id of group.instanceIds) {
        const detail = await api(`/api/instances/${id}`);
        expect(detail.instance.status).toBe('failed');
        expect(detail.instance.acknowledgedAt).toEqual(expect.any(Number));
        expect(detail.events.filter((e: any) => e.type === 'acknowledged')).toHaveLength(1);
      }
    }

    // The switch shows them again, acknowledged, and one group can be taken back.
    await page.getByRole('link', { name: 'Show acknowledged failures' }).click();
    await page.waitForFunction(LOADED);
    await expect(page.locator('.group').count()).resolves.toBe(before.length);
    const onboarding = before.find((g) => g.integrationId === 'onboard-employee');
    const title = `onboard-employee: ${onboarding.step ?? 'outside any step'}`;
    await card(title).getByText(`${onboarding.count} acknowledged`, { exact: false }).waitFor();
    await screenshot('errors-acknowledged-shown');
    await card(title)
      .getByRole('button', { name: `Show again (${onboarding.count})` })
      .click();
    await page
      .getByRole('status')
      .getByText(`${title}: ${onboarding.count} failure`, { exact: false })
      .waitFor();
    await waitFor(async () => (await api('/api/errors')).groups.length === 1, 'the onboarding to show again');
    const detail = await api(`/api/instances/${onboarding.instanceIds[0]}`);
    expect(detail.instance.acknowledgedAt).toBeNull();
    expect(detail.events.at(-1).type).toBe('unacknowledged');
    expect(errors, errors.join('\n')).toEqual([]);
  });
});
