/**
 * The instance page in headless Chromium on the demo after a scripted outage: every connection call
 * is drawn under the step and attempt that made it (the failed inventory calls under
 * `update-inventory`, in attempt bands), retries show their error and backoff, the duration shown is
 * the API's accepted → finished, and the same figures come out of the API, `tandem instances show`
 * and the page; the document held behind the failed onboarding names it, with a working link.
 */
import { mkdirSync } from 'node:fs';
import { Writable } from 'node:stream';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { instancesCommand } from '../../src/cli/remote.js';
import type { ApiResponse } from '../../src/server/api/routes.js';
import { timelineRows } from '../../src/server/api/timeline-rows.js';
import { waitFor } from '../support/wait.js';
import { ARTIFACTS, collectErrors, LOADED, launchBrowser, saveScreenshot } from './browser.js';
import { type LiveDemo, type Outage, scriptedOutage, startLiveDemo } from './live-demo.js';

type Detail = ApiResponse<'getInstance'>;

let demo: LiveDemo;
let outage: Outage;
let browser: Browser;
let page: Page;
let errors: string[];
/** The fulfilment rerun from its failed step after the outage (run 1 failed, run 2 succeeded). */
let rerunId: string;
let onboardingId: string;

async function get<T>(path: string): Promise<T> {
  const response = await fetch(demo.base + path);
  expect(response.status, path).toBe(200);
  return (await response.json()) as T;
}
const detailOf = (id: string) => get<Detail>(`/api/instances/${id}`);
const firstOf = async (integration: string, tracking: string) =>
  (await get<{ items: { id: string }[] }>(`/api/instances?integration=${integration}&tracking=${tracking}`))
    .items[0]!.id;

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  [demo, browser] = await Promise.all([startLiveDemo(), launchBrowser()]);
  outage = await scriptedOutage(demo);
  rerunId = await firstOf('fulfil-order', outage.orderIds[0]!);
  onboardingId = await firstOf('onboard-employee', outage.employeeId);
  const rerun = await fetch(`${demo.base}/api/instances/${rerunId}/rerun`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ from: 'failed-step' }),
  });
  expect(rerun.status).toBe(200);
  await waitFor(
    async () => (await detailOf(rerunId)).instance.status === 'succeeded',
    'the rerun to succeed',
  );
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  errors = collectErrors(page);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await demo?.stop();
});

const screenshot = (name: string) => saveScreenshot(page, name);

async function openInstance(id: string) {
  // A fresh load: a change of the hash alone would keep the page's state (the run chosen).
  await page.goto('about:blank');
  await page.goto(`${demo.base}/console/#/instances/${id}`);
  await page.getByRole('heading', { level: 1, name: `Instance ${id.slice(-12)}` }).waitFor();
  await page.waitForFunction(LOADED);
  await page.locator('.duration').waitFor();
}

/** What the page draws of the shown run: per attempt band, its steps and the calls under each. */
function drawnAttempts() {
  return page.locator('.tl-attempt').evaluateAll((bands) =>
    bands.map((band) => ({
      attempt: Number(band.getAttribute('data-attempt')),
      outcome: band.getAttribute('data-outcome'),
      error: band.querySelector('.tl-error')?.textContent ?? null,
      ms: Number(band.querySelector('.tl-attempt-head data')?.getAttribute('value')),
      steps: [...band.querySelectorAll('.tl-step')].map((step) => ({
        name: step.getAttribute('data-step'),
        calls: [...step.querySelectorAll('.tl-call')].map(
          (call) => `${call.getAttribute('data-call')}:${call.getAttribute('data-status')}`,
        ),
      })),
    })),
  );
}

/** The API's attempts in the same shape: the ones the page draws as bands (a long series of waits is one row). */
const apiAttempts = (run: Detail['timeline']['runs'][number]) =>
  timelineRows(run).flatMap((row) =>
    row.kind === 'attempt'
      ? [
          {
            attempt: row.attempt.attempt,
            outcome: row.attempt.outcome,
            ms: row.attempt.ms,
            steps: row.attempt.steps.map((s) => ({
              name: s.name,
              calls: s.calls.map((c) => `${c.connection}:${c.status ?? 'none'}`),
            })),
          },
        ]
      : [],
  );

describe('the instance timeline after an outage', () => {
  it('draws each call under the step and attempt that made it, retries with their error and backoff', async () => {
    const detail = await detailOf(rerunId);
    const failedRun = detail.timeline.runs[0]!;
    expect(failedRun.status).toBe('failed');
    // The demo's fulfilment tries twice: two bands, each with its inventory calls under update-inventory.
    expect(failedRun.attempts.length).toBeGreaterThanOrEqual(2);
    await openInstance(rerunId);
    await page.getByLabel('Run', { exact: true }).selectOption('1');
    await page.getByRole('heading', { name: 'Timeline of run 1' }).waitFor();
    const drawn = await drawnAttempts();
    expect(drawn.map(({ error: _, ...rest }) => rest)).toEqual(apiAttempts(failedRun));
    const inventoryCalls = drawn
      .flatMap((a) => a.steps)
      .filter((s) => s.calls.some((c) => c.startsWith('inventory:')));
    expect(inventoryCalls.length).toBeGreaterThanOrEqual(2);
    for (const step of inventoryCalls) expect(step.name).toBe('update-inventory');
    // No call of the failed run is drawn under send-to-warehouse (the run never got there).
    expect(drawn.flatMap((a) => a.steps).some((s) => s.name === 'send-to-warehouse')).toBe(false);
    const retried = drawn.filter((a) => a.outcome === 'retry');
    expect(retried.length).toBeGreaterThanOrEqual(1);
    for (const band of retried)
      expect(band.error).toMatch(/^Error.*: .+ — next attempt at .+ after the (retry delay|circuit of)/);
    expect(drawn.at(-1)!.outcome).toBe('failed');
    // The wait between the attempts is drawn as one.
    const waits = await page
      .locator('.tl-interval[data-interval]')
      .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-interval')));
    expect(waits).toEqual(
      timelineRows(failedRun).flatMap((row) => (row.kind === 'interval' ? [row.interval.kind] : [])),
    );
    expect(waits.some((kind) => kind === 'backoff' || kind === 'circuit-open')).toBe(true);
    await screenshot('timeline-failed-run');
  });

  it('shows the duration from acceptance to the end, and the same figures as the API and the CLI', async () => {
    const detail = await detailOf(rerunId);
    const current = detail.timeline.runs.at(-1)!;
    expect(current).toMatchObject({ run: 2, from: 'failed-step', status: 'succeeded' });
    expect(current.totalMs).toBe(current.finishedAt! - current.acceptedAt);
    expect(current.runningMs + current.waitingMs).toBe(current.totalMs);
    await openInstance(rerunId);
    const shown = await page
      .locator('.duration data')
      .evaluateAll((els) => els.map((e) => Number(e.getAttribute('value'))));
    expect(shown).toEqual([current.totalMs, current.runningMs, current.waitingMs]);
    await expect
      .poll(() => page.locator('.run-figures data').first().getAttribute('value'))
      .toBe(String(current.totalMs));
    // The rerun took the steps before update-inventory from run 1, and ran the rest.
    await expect.poll(() => page.locator('.carried').textContent()).toContain('create-account');
    const drawn = await drawnAttempts();
    expect(drawn.map(({ error: _, ...rest }) => rest)).toEqual(apiAttempts(current));
    expect(drawn.flatMap((a) => a.steps).find((s) => s.name === 'send-to-warehouse')?.calls).toEqual([
      expect.stringMatching(/^warehouse:2\d\d$/),
    ]);
    await screenshot('timeline-rerun');

    // The first run, as the API gives it: accepted → failed, which the old "Duration" did not say.
    const first = detail.timeline.runs[0]!;
    expect(first.acceptedAt).toBe(detail.instance.createdAt);
    expect(first.totalMs).toBe(first.finishedAt! - detail.instance.createdAt);

    let printed = '';
    const out = new Writable({
      write(chunk, _encoding, done) {
        printed += String(chunk);
        done();
      },
    });
    expect(await instancesCommand('show', [rerunId], {}, { url: demo.base, json: false, out })).toBe(0);
    expect(printed).toContain(
      `duration: ${current.totalMs} ms (accepted → finished), running ${current.runningMs} ms, waiting ${current.waitingMs} ms, attempts ${current.attempts.length}`,
    );
    for (const row of timelineRows(current))
      if (row.kind === 'attempt')
        expect(printed).toContain(
          `attempt ${row.attempt.attempt} ${row.attempt.outcome} ${row.attempt.ms} ms`,
        );
    expect(printed).toContain('carried over: ');
  });

  it('names the blocker of the held document, links to it, and does not call its run running', async () => {
    const held = await detailOf(outage.heldDocumentId);
    expect(held.instance.status).toBe('queued');
    expect(held.waitingFor).toEqual({
      kind: 'ordering',
      orderingKey: held.instance.orderingKey,
      holder: { id: onboardingId, integrationId: 'onboard-employee', status: 'failed' },
    });
    expect(held.timeline.runs[0]!.intervals.at(-1)).toMatchObject({ kind: 'held', to: null });
    await openInstance(outage.heldDocumentId);
    const why = page.locator('.why');
    await expect
      .poll(() => why.textContent())
      .toMatch(/^Queued behind onboard-employee .+failed.+ of ordering key /);
    const runStatus = page.locator('table tbody tr').first().locator('.badge');
    expect(await runStatus.textContent()).toBe('held');
    await screenshot('timeline-held');
    await why.getByRole('link').click();
    await page.getByRole('heading', { level: 1, name: `Instance ${onboardingId.slice(-12)}` }).waitFor();
    await page.waitForFunction(LOADED);
    await expect.poll(() => page.locator('.facts .badge').first().textContent()).toBe('failed');
    expect(page.url()).toContain(`#/instances/${onboardingId}`);

    // The CLI says the same.
    let printed = '';
    const out = new Writable({
      write(chunk, _encoding, done) {
        printed += String(chunk);
        done();
      },
    });
    await instancesCommand('show', [outage.heldDocumentId], {}, { url: demo.base, json: false, out });
    expect(printed).toContain(
      `waiting for: queued behind onboard-employee ${onboardingId} (failed) of ordering key ${held.instance.orderingKey}`,
    );
    expect(errors).toEqual([]);
  });
});
