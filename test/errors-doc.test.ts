import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE } from '../src/errors.js';

/** `### \`code\`` followed by `` `status` — title ``, as docs/errors.md writes each entry. */
function documentedCodes(): Map<string, { status: number; title: string }> {
  const text = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
  const entries = new Map<string, { status: number; title: string }>();
  const pattern = /^### `([a-z-]+)`\n\n`(\d{3})` — (.+)$/gm;
  for (const match of text.matchAll(pattern)) {
    expect(entries.has(match[1]!), `${match[1]} documented twice`).toBe(false);
    entries.set(match[1]!, { status: Number(match[2]), title: match[3]! });
  }
  const headings = text.match(/^### /gm)?.length ?? 0;
  expect(entries.size, 'every ### heading is a well-formed entry').toBe(headings);
  return entries;
}

describe('docs/errors.md', () => {
  it('documents every catalogue code with its status and title, and nothing else', () => {
    const documented = documentedCodes();
    const catalogue = Object.entries(ERROR_CATALOGUE).map(([code, spec]) => [code, { ...spec }] as const);
    expect(Object.fromEntries(documented)).toEqual(Object.fromEntries(catalogue));
  });
});
