import { statSync } from 'node:fs';
import { join } from 'node:path';
import { AxeBuilder } from '@axe-core/playwright';
import { type Browser, chromium, type Page } from 'playwright-core';
import { expect } from 'vitest';

export const ARTIFACTS = join(import.meta.dirname, '..', '..', 'test-artifacts', 'console');

/**
 * Headless Chromium from the system (apt-get install chromium) without network chatter. Each
 * launch gets a fresh temporary profile (Playwright's own --user-data-dir, removed at close).
 */
export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** Collects what the page reports as errors: console errors and uncaught exceptions. */
export function collectErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`));
  return errors;
}

/** What axe-core must not find on a console page: the impacts that block or badly hinder a user. */
const BLOCKING = new Set(['serious', 'critical']);

/**
 * Checks the page as it is now with axe-core (WCAG 2.1 A and AA rules): no serious or critical
 * violation. The failure lists each rule with the elements it found, so that it can be fixed.
 */
export async function expectAccessible(page: Page, label = page.url()): Promise<void> {
  const results = await new AxeBuilder({ page })
    .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'])
    .analyze();
  const blocking = results.violations
    .filter((violation) => BLOCKING.has(violation.impact ?? ''))
    .map(
      (violation) =>
        `${violation.impact} ${violation.id}: ${violation.help} — ${violation.nodes
          .slice(0, 5)
          .map((node) => node.target.join(' '))
          .join(' | ')}`,
    );
  expect(blocking, `accessibility of ${label}:\n${blocking.join('\n')}`).toEqual([]);
}

/** Evaluated in the page: no section is still loading. */
export const LOADED = '!document.querySelector(\'[aria-busy="true"]\')';

/** Opens a console route on a server and waits for the page's level-1 heading and its data. */
export async function openConsolePage(
  page: Page,
  base: string,
  hash: string,
  heading: string,
  options: { exact?: boolean } = {},
): Promise<void> {
  await page.goto(`${base}/console/#${hash}`);
  await page.getByRole('heading', { level: 1, name: heading, exact: options.exact ?? false }).waitFor();
  await page.waitForFunction(LOADED);
}

/** Saves a full-page screenshot as `<name>.png` among the test artifacts, and checks it shows something. */
export async function saveScreenshot(page: Page, name: string): Promise<void> {
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  expect(statSync(path).size).toBeGreaterThan(1_000);
}
