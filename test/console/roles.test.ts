/**
 * The console signed in with a viewer, an operator and an admin token: each sees the actions its
 * role has and none that it lacks (the API would refuse them), a viewer sees no input, and the
 * header names the token signed in with.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import { BODY_HIDDEN } from '../../src/server/api/access.js';
import { waitForStatus } from '../support/engine.js';
import { type TestServer, testServer } from '../support/server.js';
import { collectErrors, launchBrowser, openConsolePage } from './browser.js';

const ADMIN = 'console-roles-admin-4e1f9a';
const OPERATOR = 'console-roles-operator-8b2c';
const VIEWER = 'console-roles-viewer-3d7e5f';

const payments = defineIntegration({
  id: 'payments',
  mode: 'async',
  input: z.object({ paymentId: z.string(), iban: z.string() }),
  retry: { maxAttempts: 1 },
  handler: () => {
    throw new Error('the bank is closed');
  },
});

let server: TestServer;
let browser: Browser;
let failedId: string;

beforeAll(async () => {
  [server, browser] = await Promise.all([
    testServer([payments], {
      adminToken: ADMIN,
      tokens: [
        { name: 'night-shift', role: 'operator', token: OPERATOR },
        { name: 'auditor', role: 'viewer', token: VIEWER },
      ],
    }),
    launchBrowser(),
  ]);
  const accepted = await server.engine.accept('payments', {
    paymentId: 'PAY-77410',
    iban: 'DE89370400440532013000',
  });
  failedId = accepted.instanceId;
  await waitForStatus(server.engine, failedId, ['failed']);
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

async function signedIn(token: string): Promise<{ page: Page; errors: string[] }> {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  const errors = collectErrors(page);
  await page.goto(`${server.url}/console/sign-in`);
  await page.getByLabel('Token').fill(token);
  await page.getByLabel('Token').press('Enter');
  await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
  return { page, errors };
}

/** The names of the buttons and links that act, on the page as it is now. */
async function actions(page: Page): Promise<string[]> {
  const names = [
    'Rerun from failed step',
    'Rerun from start',
    'Edit input and rerun',
    'Cancel',
    'Acknowledge 1',
    'Rerun all 1',
    'Run with test input',
  ];
  const shown: string[] = [];
  for (const name of names) {
    const count =
      (await page.getByRole('button', { name, exact: true }).count()) +
      (await page.getByRole('link', { name, exact: true }).count());
    if (count > 0) shown.push(name);
  }
  return shown;
}

async function visit(page: Page): Promise<string[]> {
  const seen: string[] = [];
  await openConsolePage(page, server.url, `/instances/${failedId}`, `Instance ${failedId.slice(-12)}`);
  await page.getByText('the bank is closed').first().waitFor();
  seen.push(...(await actions(page)));
  await openConsolePage(page, server.url, '/errors', 'Errors');
  await page.getByText('the bank is closed').first().waitFor();
  seen.push(...(await actions(page)));
  await openConsolePage(page, server.url, '/integrations/payments', 'Integration payments');
  seen.push(...(await actions(page)));
  return seen;
}

describe('the console in each role', () => {
  it('shows a viewer no action and no input, and names the token', async () => {
    const { page, errors } = await signedIn(VIEWER);
    await page.getByText('auditor (viewer)').waitFor();
    expect(await visit(page)).toEqual([]);
    await openConsolePage(page, server.url, `/instances/${failedId}`, `Instance ${failedId.slice(-12)}`);
    await page.getByText('the bank is closed').first().waitFor();
    const text = (await page.locator('main').textContent()) ?? '';
    expect(text).toContain(BODY_HIDDEN);
    expect(text).not.toContain('PAY-77410');
    await openConsolePage(page, server.url, '/integrations/payments/run', 'Run payments');
    await page.getByText('needs the operator role').waitFor();
    expect(await page.getByRole('button', { name: 'Start' }).count()).toBe(0);
    expect(errors).toEqual([]);
  });

  it('shows an operator rerun, cancel, acknowledge and run now, but not the input editor', async () => {
    const { page, errors } = await signedIn(OPERATOR);
    await page.getByText('night-shift (operator)').waitFor();
    expect(await visit(page)).toEqual([
      'Rerun from failed step',
      'Rerun from start',
      'Cancel',
      'Acknowledge 1',
      'Rerun all 1',
      'Run with test input',
    ]);
    await openConsolePage(page, server.url, `/instances/${failedId}`, `Instance ${failedId.slice(-12)}`);
    await page.getByText('the bank is closed').first().waitFor();
    // The input shows (the first element with the text may be in a closed disclosure).
    const text = (await page.locator('main').textContent()) ?? '';
    expect(text).toContain('PAY-77410');
    expect(text).not.toContain(BODY_HIDDEN);
    expect(errors).toEqual([]);
  });

  it('shows an admin every action, the input editor too', async () => {
    const { page, errors } = await signedIn(ADMIN);
    await page.getByText('admin (admin)').waitFor();
    expect(await visit(page)).toEqual([
      'Rerun from failed step',
      'Rerun from start',
      'Edit input and rerun',
      'Cancel',
      'Acknowledge 1',
      'Rerun all 1',
      'Run with test input',
    ]);
    expect(errors).toEqual([]);
  });
});
