/**
 * Each integration as a picture, in Chromium against the demo after an outage and some good
 * traffic: the sync → async hand-off (place-order → fulfil-order), the async chain with its
 * callback wait and three connections (fulfil-order), and the scheduled fan-out (nightly-orders
 * → post-order). The picture and its table show every step and connection with the API's figures,
 * and the API's figures agree with a recount from each instance's own record.
 */
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ms, percent } from '../../console/src/format.js';
import { waitFor } from '../support/wait.js';
import { ARTIFACTS, collectErrors, expectAccessible, LOADED, launchBrowser } from './browser.js';
import { type LiveDemo, type Outage, scriptedOutage, startLiveDemo } from './live-demo.js';

let demo: LiveDemo;
let browser: Browser;
let page: Page;
let errors: string[];
let outage: Outage;

const GOOD_ORDERS = ['P-1', 'P-2'];

const api = async (path: string) => {
  const response = await fetch(demo.base + path);
  expect(response.status, path).toBe(200);
  return response.json() as Promise<any>;
};
const post = (path: string, body: unknown) =>
  fetch(demo.base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  [demo, browser] = await Promise.all([startLiveDemo(), launchBrowser()]);
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  errors = collectErrors(page);
  outage = await scriptedOutage(demo);
  // Good traffic after the outage: one order with the marketing sign-up, one without, and a run
  // of the nightly file (six good rows fanned out to post-order).
  for (const [i, orderId] of GOOD_ORDERS.entries()) {
    const response = await post('/orders', {
      orderId,
      email: `${orderId.toLowerCase()}@example.com`,
      sku: 'KB-1',
      qty: 1,
      marketing: i === 0,
    });
    expect(response.status).toBe(201);
  }
  const nightly = (await (await post('/api/integrations/nightly-orders/run', {})).json()) as {
    instanceId: string;
  };
  await waitFor(
    async () => {
      const fulfilled = await Promise.all(
        GOOD_ORDERS.map(
          async (id) => (await api(`/api/instances?integration=fulfil-order&tracking=${id}`)).items[0],
        ),
      );
      const run = (await api(`/api/instances/${nightly.instanceId}`)).instance;
      return fulfilled.every((i) => i?.status === 'succeeded') && run.status === 'succeeded';
    },
    'the good orders and the nightly run to succeed',
    30_000,
  );
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await demo?.stop();
});

/** Every instance of an integration (the demo has far fewer than a page). */
async function instancesOf(integration: string): Promise<any[]> {
  return (await api(`/api/instances?integration=${integration}&limit=1000`)).items;
}

/** A step's figures as the page writes them (the same words as console/src/picture.tsx). */
function shownFigures(step: any): string[] {
  const what = step.kind === 'wait' ? 'timed out' : 'failed';
  const times = `p50 ${ms(step.p50)} · p95 ${ms(step.p95)}`;
  return [
    step.kind === 'wait' ? `waited ${times}` : times,
    `${what} ${step.failures} of ${step.executions} (${percent(step.failureShare)})`,
  ];
}

/** Opens the picture page, checks the SVG and the table show the API's picture, and saves a screenshot. */
async function showsPicture(id: string) {
  const picture = await api(`/api/integrations/${id}/picture`);
  await page.goto(`${demo.base}/console/#/integrations/${id}`);
  await page.getByRole('heading', { level: 1, name: `Integration ${id}` }).waitFor();
  await page.waitForFunction(LOADED);
  const svg = page.getByRole('img', { name: `${id} as a picture` });
  await svg.waitFor();
  const node = (name: string) => svg.locator(`[data-node="${name}"]`);
  expect(await node('integration').textContent()).toContain(id);
  for (const [i, step] of picture.steps.entries()) {
    const box = (await node(`step-${step.name}`).textContent()) ?? '';
    expect(box).toContain(`${i + 1}. ${step.name}`);
    for (const figure of shownFigures(step)) expect(box).toContain(figure);
    const row = (await page.locator(`tr[data-step="${step.name}"]`).textContent()) ?? '';
    for (const figure of shownFigures(step)) expect(row).toContain(figure);
    for (const use of step.connections) {
      const calls = `${use.calls} call${use.calls === 1 ? '' : 's'}, ${use.failures} failed`;
      expect(await node(`connection-${step.name}-${use.id}`).textContent()).toBe(
        `connection ${use.id}${calls}`,
      );
      expect(row).toContain(`${use.id}: ${calls}`);
    }
  }
  for (const child of picture.children) {
    const instances = `${child.instances} instance${child.instances === 1 ? '' : 's'}`;
    const parents = `${child.parents} recent instance${child.parents === 1 ? '' : 's'}`;
    expect(await node(`child-${child.integrationId}`).textContent()).toContain(
      `${child.integrationId} (${child.mode})${instances} from ${parents}`,
    );
  }
  // The steps' order on the page is the API's.
  const rows = await page.locator('tr[data-step]').all();
  const names = await Promise.all(rows.map((row) => row.getAttribute('data-step')));
  expect(names).toEqual(picture.steps.map((s: any) => s.name));
  // The text alternative names every step and connection; the links lead on.
  const description = (await svg.locator('desc').textContent()) ?? '';
  for (const step of picture.steps) expect(description).toContain(step.name);
  await expect(page.getByRole('link', { name: 'Run with test input' }).getAttribute('href')).resolves.toBe(
    `#/integrations/${id}/run`,
  );
  await expect(page.getByRole('link', { name: `Instances of ${id}` }).getAttribute('href')).resolves.toBe(
    `#/instances?integration=${id}`,
  );
  await expectAccessible(page, `picture of ${id}`);
  const path = join(ARTIFACTS, `picture-${id}.png`);
  await page.screenshot({ path, fullPage: true });
  expect(statSync(path).size).toBeGreaterThan(1_000);
  return picture;
}

/** Recounts a picture's step figures from each instance's own detail (its activity events). */
async function recount(integration: string) {
  const counts = new Map<string, { executions: number; failures: number; calls: Map<string, number> }>();
  for (const instance of await instancesOf(integration)) {
    const { events } = await api(`/api/instances/${instance.id}`);
    for (const event of events) {
      const step = event.data.step;
      if (typeof step !== 'string') continue;
      const entry = counts.get(step) ?? { executions: 0, failures: 0, calls: new Map() };
      if (event.type === 'step.succeeded' || event.type === 'step.failed') entry.executions++;
      if (event.type === 'step.failed') entry.failures++;
      if (event.type === 'wait.started') entry.executions++;
      if (event.type === 'connection.call') {
        entry.calls.set(event.data.connection, (entry.calls.get(event.data.connection) ?? 0) + 1);
      }
      counts.set(step, entry);
    }
  }
  return counts;
}

describe('the integration as a picture', () => {
  it('lists every integration with its mode and triggers, each linked to its picture', async () => {
    const { items } = await api('/api/integrations');
    await page.goto(`${demo.base}/console/#/integrations`);
    await page.getByRole('heading', { level: 1, name: 'Integrations' }).waitFor();
    await page.waitForFunction(LOADED);
    for (const integration of items) {
      const link = page.getByRole('link', { name: integration.id, exact: true });
      await expect(link.getAttribute('href')).resolves.toBe(`#/integrations/${integration.id}`);
    }
    const nightly = (await page.getByRole('row', { name: /nightly-orders/ }).textContent()) ?? '';
    expect(nightly).toContain('scheduled');
    expect(nightly).toContain('Schedule 0 0 2 * * * (Europe/Berlin)');
    await page.screenshot({ path: join(ARTIFACTS, 'integrations.png'), fullPage: true });
    expect(errors).toEqual([]);
  });

  it('draws fulfil-order: its steps in order, the callback wait, crm, marketing, inventory and warehouse', async () => {
    const picture = await showsPicture('fulfil-order');
    expect(picture.pattern).toBe('async');
    expect(picture.steps.map((s: any) => s.name)).toEqual([
      'create-account',
      'marketing-signup',
      'update-inventory',
      'packing-list',
      'send-to-warehouse',
      'shipment',
      'shipping-notice',
    ]);
    const step = (name: string) => picture.steps.find((s: any) => s.name === name);
    expect(step('shipment')).toMatchObject({ kind: 'wait', waitKind: 'callback', failures: 0 });
    const connections = Object.fromEntries(
      picture.steps.map((s: any) => [s.name, s.connections.map((c: any) => c.id)]),
    );
    expect(connections).toEqual({
      'create-account': ['crm'],
      'marketing-signup': ['marketing'],
      'update-inventory': ['inventory'],
      'packing-list': [],
      'send-to-warehouse': ['warehouse'],
      shipment: [],
      'shipping-notice': ['crm'],
    });
    // Started by place-order for every order placed: the outage's and the good ones.
    const orders = outage.orderIds.length + GOOD_ORDERS.length;
    expect(picture.triggers).toContainEqual({
      type: 'parent',
      integrationId: 'place-order',
      instances: orders,
    });
    expect(picture.recent).toMatchObject({ limit: 50, instances: orders });
    // Every outage order failed at update-inventory; each good one went through every step once.
    const recounted = await recount('fulfil-order');
    for (const s of picture.steps) {
      const mine = recounted.get(s.name)!;
      expect({ name: s.name, executions: s.executions, failures: s.failures }).toEqual({
        name: s.name,
        executions: mine.executions,
        failures: mine.failures,
      });
      for (const use of s.connections) expect(use.calls).toBe(mine.calls.get(use.id));
    }
    expect(step('update-inventory').failures).toBeGreaterThanOrEqual(outage.orderIds.length);
    expect(step('update-inventory').failureShare).toBe(
      step('update-inventory').failures / step('update-inventory').executions,
    );
    expect(step('shipping-notice')).toMatchObject({ instances: GOOD_ORDERS.length, failures: 0 });
    expect(step('marketing-signup')).toMatchObject({ instances: 1, executions: 1 });
  }, 60_000);

  it('draws place-order as sync → async: it answers and hands off to fulfil-order', async () => {
    const picture = await showsPicture('place-order');
    const orders = outage.orderIds.length + GOOD_ORDERS.length;
    expect(picture.pattern).toBe('sync-to-async');
    expect(picture.triggers).toEqual([{ type: 'http', method: 'POST', path: '/orders', auth: null }]);
    expect(picture.children).toEqual([
      { integrationId: 'fulfil-order', mode: 'async', instances: orders, parents: orders },
    ]);
    expect((await instancesOf('fulfil-order')).length).toBe(orders);
    const child = (await page.locator('[data-node="child-fulfil-order"]').textContent()) ?? '';
    expect(child).toContain('hands off to fulfil-order');
    expect(picture.recent).toMatchObject({ instances: orders, runs: orders });
  }, 60_000);

  it('draws nightly-orders: its schedule and its fan-out to post-order', async () => {
    const picture = await showsPicture('nightly-orders');
    expect(picture.pattern).toBe('scheduled');
    expect(picture.triggers).toContainEqual({ type: 'cron', cron: '0 0 2 * * *', timezone: 'Europe/Berlin' });
    const [run] = await instancesOf('nightly-orders');
    const children = (await api(`/api/instances?parent=${run.id}&limit=1000`)).items;
    expect(children.length).toBeGreaterThan(1);
    expect(picture.children).toEqual([
      { integrationId: 'post-order', mode: 'async', instances: children.length, parents: 1 },
    ]);
    // The children's own picture names its parent and its two steps with their connections.
    expect(await page.locator('[data-node="child-post-order"]').textContent()).toContain(
      'fans out to post-order',
    );
    const post = await showsPicture('post-order');
    expect(post.triggers).toContainEqual({
      type: 'parent',
      integrationId: 'nightly-orders',
      instances: children.length,
    });
    expect(post.steps.map((s: any) => [s.name, s.connections.map((c: any) => c.id)])).toEqual([
      ['enrich', ['webshop']],
      ['post', ['order-processing']],
    ]);
    expect(errors).toEqual([]);
  }, 60_000);

  it('fits a phone: the picture keeps its size and scrolls within the page, which does not scroll sideways', async () => {
    await page.setViewportSize({ width: 375, height: 800 });
    try {
      await page.goto(`${demo.base}/console/#/integrations/fulfil-order`);
      await page.getByRole('img', { name: 'fulfil-order as a picture' }).waitFor();
      const widths = (await page.evaluate(
        "({ page: document.documentElement.scrollWidth, svg: document.querySelector('svg.picture').getBoundingClientRect().width, scroller: document.querySelector('.picture-scroll').scrollWidth })",
      )) as { page: number; svg: number; scroller: number };
      expect(widths.page).toBeLessThanOrEqual(375);
      expect(widths.svg).toBe(760);
      expect(widths.scroller).toBeGreaterThanOrEqual(760);
      // The scroller is reachable by keyboard and scrolls with the arrow keys.
      const scroller = page.getByRole('region', { name: /^The picture/ });
      await scroller.focus();
      await page.keyboard.press('ArrowRight');
      await page.keyboard.press('ArrowRight');
      await expect
        .poll(() => page.evaluate("document.querySelector('.picture-scroll').scrollLeft"))
        .toBeGreaterThan(0);
      await expectAccessible(page, 'picture at phone width');
      await page.screenshot({ path: join(ARTIFACTS, 'picture-fulfil-order-phone.png'), fullPage: true });
    } finally {
      await page.setViewportSize({ width: 1280, height: 900 });
    }
  });

  it('answers an unknown integration with a 404 problem', async () => {
    const response = await fetch(`${demo.base}/api/integrations/no-such/picture`);
    expect(response.status).toBe(404);
    expect(response.headers.get('content-type')).toContain('application/problem+json');
    expect(((await response.json()) as { type: string }).type).toBe('urn:tandem:error:unknown-integration');
  });
});
