/**
 * The console's manners, in Chromium against the demo with the browser in another zone than the
 * schedule's: schedule times name both zones, the last firing shows after run-nows, and the
 * advisor speaks in words, never in the API's keys.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/wait.js';
import { ARTIFACTS, collectErrors, expectAccessible, launchBrowser, openConsolePage } from './browser.js';
import { type LiveDemo, startLiveDemo } from './live-demo.js';

/** The browser's zone: neither the schedule's (Europe/Berlin) nor the machine's. */
const VIEWER_ZONE = 'America/New_York';

let demo: LiveDemo;
let browser: Browser;
let page: Page;
let errors: string[];

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  [demo, browser] = await Promise.all([startLiveDemo(), launchBrowser()]);
  const context = await browser.newContext({
    viewport: { width: 1280, height: 900 },
    timezoneId: VIEWER_ZONE,
  });
  page = await context.newPage();
  errors = collectErrors(page);
});

afterAll(async () => {
  await browser?.close();
  await demo?.stop();
});

const api = async (path: string) => (await fetch(demo.base + path)).json() as Promise<any>;

const open = (hash: string, heading: string) => openConsolePage(page, demo.base, hash, heading);

/**
 * `YYYY-MM-DD HH:mm` of a time in a zone, worked out here another way than the console does (the
 * Swedish locale writes dates and times in ISO order).
 */
function wallClock(ms: number, timeZone: string): string {
  return new Date(ms).toLocaleString('sv-SE', { timeZone, hourCycle: 'h23' }).slice(0, 16);
}

describe('the console’s manners', () => {
  it('labels schedule times with the schedule’s zone and the viewer’s', async () => {
    const [schedule] = (await api('/api/schedules')).items;
    expect(schedule).toMatchObject({ integrationId: 'nightly-orders', timezone: 'Europe/Berlin' });
    await open('/schedules', 'Schedules');
    const card = page
      .getByRole('listitem')
      .filter({ has: page.getByRole('heading', { name: 'nightly-orders' }) });
    const firings = await card
      .getByRole('list', { name: 'Next firings' })
      .getByRole('listitem')
      .allTextContents();
    expect(firings).toHaveLength(schedule.nextSlots.length);
    for (const [i, at] of schedule.nextSlots.entries()) {
      // Cron 0 0 2 * * * in Berlin: 02:00 there, whatever the browser's zone.
      expect(wallClock(at, 'Europe/Berlin')).toMatch(/ 02:00$/);
      expect(firings[i]).toContain(`${wallClock(at, 'Europe/Berlin')} Europe/Berlin`);
      expect(firings[i]).toContain(`${wallClock(at, VIEWER_ZONE)} ${VIEWER_ZONE}`);
    }
    // Every other time on the console is the viewer's, and the header says which zone that is.
    await expect(page.getByRole('banner').textContent()).resolves.toContain(`Times in ${VIEWER_ZONE}`);
    await expectAccessible(page, 'schedules');
  });

  it('shows the last firing right after run-nows, with the instance it started', async () => {
    await open('/schedules', 'Schedules');
    const card = page
      .getByRole('listitem')
      .filter({ has: page.getByRole('heading', { name: 'nightly-orders' }) });
    const run = card.getByRole('button', { name: 'Run nightly-orders now' });
    const startedLink = card.locator('p[aria-live] a');
    const started: string[] = [];
    for (let i = 0; i < 2; i++) {
      await run.click();
      await waitFor(async () => {
        const href = (await startedLink.count()) === 1 ? await startedLink.getAttribute('href') : null;
        return href !== null && !started.includes(href) ? started.push(href) : false;
      }, 'the run to start');
    }
    const newest = (await api('/api/instances?integration=nightly-orders&limit=1')).items[0];
    expect(started.at(-1)).toBe(`#/instances/${newest.id}`);
    // The card shows the firing at once, without waiting for the next refresh.
    const last = card.locator('dt:text-is("Last firing") + dd');
    await expect.poll(() => last.textContent(), { timeout: 5_000 }).toContain(newest.id.slice(-12));
    const text = (await last.textContent()) ?? '';
    expect(text).toContain(`${wallClock(newest.createdAt, 'Europe/Berlin')} Europe/Berlin`);
    expect(text).toContain('run now');
    await expect(last.getByRole('link').getAttribute('href')).resolves.toBe(`#/instances/${newest.id}`);
    const schedule = (await api('/api/schedules')).items[0];
    expect(schedule.lastFiring).toEqual({ at: newest.createdAt, instanceId: newest.id, by: 'run-now' });
    await page.screenshot({ path: join(ARTIFACTS, 'schedules-last-firing.png'), fullPage: true });
    expect(errors).toEqual([]);
  });

  it('shows the advisor’s figures with human labels, never raw keys', async () => {
    // Three stock look-ups fail while inventory is down, then seventeen succeed: enough calls for
    // advice (20), and enough downstream failures (3, 15 %) for the sync → async advice.
    const inventory = (state: string) => fetch(`${demo.apps.inventory.url}/${state}`, { method: 'POST' });
    await inventory('_down');
    for (let i = 0; i < 3; i++)
      expect((await fetch(`${demo.base}/inventory/KB-1`)).status).toBeGreaterThanOrEqual(500);
    await inventory('_up');
    await waitFor(
      async () =>
        (await api('/api/connections')).items.find((c: any) => c.id === 'inventory')?.circuit !== 'open',
      'the inventory circuit to let a call through',
      15_000,
    );
    for (let i = 0; i < 17; i++) expect((await fetch(`${demo.base}/inventory/KB-1`)).status).toBe(200);
    const advice = await waitFor(async () => {
      const item = (await api('/api/integrations')).items.find((i: any) => i.id === 'current-inventory');
      return item.advice.length > 0 ? item.advice : null;
    }, 'advice for current-inventory');
    expect(Object.keys(advice[0].figures)).toEqual(['downstreamFailures', 'calls', 'sharePercent']);
    await open('/advisor', 'Advisor');
    const section = page
      .getByRole('listitem')
      .filter({ has: page.getByRole('heading', { name: /current-inventory/ }) });
    const text = (await section.textContent()) ?? '';
    for (const key of ['downstreamFailures', 'sharePercent', 'p95Ms', 'deadlineMs', 'split-sync-to-async']) {
      expect(text).not.toContain(key);
    }
    const split = section.locator('dl').first();
    const facts = await split.locator('dt').allTextContents();
    expect(facts).toEqual(['Failed because a downstream application failed', 'Calls', 'Share']);
    const values = await split.locator('dd').allTextContents();
    expect(values).toEqual(['3', '20', `${advice[0].figures.sharePercent} %`]);
    for (const key of ['connection', 'failures', 'totalFailures']) {
      expect(await section.locator('dt').allTextContents()).not.toContain(key);
    }
    // The decision names its pattern in words too.
    const decision = (await page.locator('.decision').textContent()) ?? '';
    expect(decision).not.toMatch(/Pattern: (sync|async|sync-to-async)$/m);
    await expectAccessible(page, 'advisor');
    await page.screenshot({ path: join(ARTIFACTS, 'advisor-labels.png'), fullPage: true });
    expect(errors).toEqual([]);
  }, 60_000);
});
