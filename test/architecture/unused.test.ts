/**
 * No dead code: knip, with the repository's `knip.jsonc`, finds files nothing imports, exports
 * nothing uses and dependencies nothing needs. Public API (src/index.ts, src/testing/index.ts)
 * counts as used; so does whatever a test, an example or a benchmark uses.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Findings accepted for now: none. An entry must still be found (a fixed one is removed from
 * here), and nothing else may.
 */
const KNOWN: readonly string[] = [];

type Issue = { file: string } & Record<string, unknown>;

/** Every finding as `kind: file: name` (`files: path` for an unused file). */
function findings(): string[] {
  const knip = join(root, 'node_modules', 'knip', 'bin', 'knip.js');
  const run = spawnSync(process.execPath, [knip, '--reporter', 'json', '--no-progress'], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  // 0: nothing found, 1: findings; anything else is knip failing (a broken configuration).
  expect([0, 1], run.stderr).toContain(run.status);
  const { issues } = JSON.parse(run.stdout) as { issues: Issue[] };
  const found: string[] = [];
  for (const issue of issues) {
    for (const [kind, entries] of Object.entries(issue)) {
      if (!Array.isArray(entries)) continue;
      for (const entry of entries as { name: string }[]) {
        found.push(kind === 'files' ? `files: ${entry.name}` : `${kind}: ${issue.file}: ${entry.name}`);
      }
    }
  }
  return found.sort();
}

describe('architecture: unused code', () => {
  const found = findings();

  it('has no unused file, export, type or dependency', () => {
    expect(found.filter((finding) => !KNOWN.includes(finding))).toEqual([]);
  });

  it('still has each known finding (remove fixed ones from KNOWN)', () => {
    expect(KNOWN.filter((finding) => !found.includes(finding))).toEqual([]);
  });
});
