/** The JavaScript the console ships to the browser stays small: under 300 KB gzipped in all. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { CONSOLE_DIST } from '../../src/server/console.js';

const LIMIT = 300 * 1024;

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? files(join(dir, entry.name)) : [join(dir, entry.name)],
  );
}

describe('the built console', () => {
  it('ships under 300 KB of gzipped JavaScript, every script the page loads included', () => {
    const all = files(CONSOLE_DIST);
    const scripts = all.filter((file) => /\.(m?js)$/.test(file));
    expect(scripts.length).toBeGreaterThan(0);
    const html = readFileSync(join(CONSOLE_DIST, 'index.html'), 'utf8');
    for (const [, src] of html.matchAll(/<script[^>]*src="([^"]+)"/g)) {
      expect(scripts.map((file) => `/console/${file.slice(CONSOLE_DIST.length + 1)}`)).toContain(src);
    }
    const gzipped = scripts.reduce((sum, file) => sum + gzipSync(readFileSync(file), { level: 9 }).length, 0);
    // Reported in the test output, so that a change's cost shows before it reaches the limit.
    console.info(`console JavaScript: ${(gzipped / 1024).toFixed(1)} KB gzipped (limit ${LIMIT / 1024} KB)`);
    expect(gzipped).toBeLessThan(LIMIT);
  });
});
