/**
 * The import rules of docs/architecture.md, checked by dependency-cruiser with the repository's
 * `.dependency-cruiser.cjs`: a test fails listing each import that breaks one, so a layering
 * mistake is caught where it is made rather than in a review.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Violations accepted for now: none. An entry must still occur (a fixed one is removed from
 * here), and nothing else may.
 */
const KNOWN: readonly string[] = [];

interface Violation {
  from: string;
  to: string;
  rule: { name: string; severity: string };
  cycle?: { name: string }[];
}
interface Dependency {
  resolved: string;
  dependencyTypes: string[];
}
interface CruiseResult {
  modules: { source: string; dependencies: Dependency[] }[];
  summary: { violations: Violation[]; totalCruised: number };
}

/** Cruises `src` under a directory (the repository by default) with the repository's rules. */
function cruise(cwd = root): CruiseResult {
  const cli = join(root, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');
  const run = spawnSync(
    process.execPath,
    [cli, 'src', '--config', join(root, '.dependency-cruiser.cjs'), '--output-type', 'json'],
    { cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
  expect(run.status, run.stderr).toBe(0);
  return JSON.parse(run.stdout) as CruiseResult;
}

function describeViolation(violation: Violation): string {
  // A package by its name, wherever node_modules is (a link or not) and whichever file it resolves to.
  const to = violation.to.replace(/^.*node_modules\/((@[^/]+\/)?[^/]+)\/.*$/, 'node_modules/$1');
  const path = violation.cycle
    ? [violation.from, ...violation.cycle.map((step) => step.name)]
    : [violation.from, to];
  return `${violation.rule.name}: ${path.join(' → ')}`;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => relative(root, join(entry.parentPath, entry.name)));
}

/**
 * A small tree that breaks each rule: among them a type-only cycle between model.ts and the
 * lifecycle, and a driver imported through a linked node_modules (as in a git worktree).
 */
const BREAKS_EVERY_RULE: Record<string, string> = {
  'src/engine/a.ts':
    "import { b } from '../server/b.js';\nimport { c } from '../cli/c.js';\nexport const a = b + c;",
  'src/server/b.ts': "import pg from 'pg';\nexport const b = String(pg);",
  'src/cli/c.ts': 'export const c = 1;',
  'src/store/d.ts':
    "import Database from 'better-sqlite3';\nimport { a } from '../engine/a.js';\nimport type { E } from '../define/e.js';\nexport const d: E = a + String(Database);",
  'src/define/e.ts': "import type { H } from './h.js';\nexport type E = H | string;\nexport const y = 1;",
  'src/define/h.ts': "import { y } from './e.js';\nexport type H = number;\nexport const x = y;",
  'src/model.ts':
    "import { s } from './sources/s.js';\nimport type { L } from './lifecycle/l.js';\nexport type M = L | typeof s;",
  'src/lifecycle/l.ts':
    "import type { M } from '../model.js';\nimport { readFileSync } from 'node:fs';\nexport type L = typeof readFileSync;\nexport type N = M;",
  'src/sources/s.ts': "import { z } from './missing.js';\nexport const s = z;",
  'tsconfig.json': '{ "compilerOptions": { "module": "NodeNext", "moduleResolution": "NodeNext" } }',
};

describe('architecture: the rules themselves', () => {
  it('catch each forbidden import in a tree made to break them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tandem-rules-'));
    try {
      for (const [file, text] of Object.entries(BREAKS_EVERY_RULE)) {
        mkdirSync(dirname(join(dir, file)), { recursive: true });
        writeFileSync(join(dir, file), text);
      }
      symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
      const found = cruise(dir).summary.violations.map(describeViolation).sort();
      expect(found).toEqual(
        [
          'engine-not-to-server-or-cli: src/engine/a.ts → src/server/b.ts',
          'engine-not-to-server-or-cli: src/engine/a.ts → src/cli/c.ts',
          'sql-drivers-only-in-store: src/server/b.ts → node_modules/pg',
          'store-not-to-engine-or-define: src/store/d.ts → src/engine/a.ts',
          'store-not-to-engine-or-define: src/store/d.ts → src/define/e.ts',
          'vocabulary-imports-only-itself: src/model.ts → src/sources/s.ts',
          'vocabulary-imports-only-itself: src/lifecycle/l.ts → fs',
          'no-circular: src/define/e.ts → src/define/h.ts → src/define/e.ts',
          'no-circular: src/lifecycle/l.ts → src/model.ts → src/lifecycle/l.ts',
          'not-to-unresolvable: src/sources/s.ts → ./missing.js',
        ].sort(),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('architecture: imports inside src/', () => {
  const result = cruise();

  it('sees every source file and every import, type-only ones included', () => {
    const cruised = new Set(result.modules.map((module) => module.source));
    expect(sourceFiles('src').filter((file) => !cruised.has(file))).toEqual([]);
    // `.js` specifiers resolve to the `.ts` files (else every rule would pass on nothing).
    const model = result.modules.find((module) => module.source === 'src/model.ts');
    expect(model?.dependencies).toContainEqual(
      expect.objectContaining({
        resolved: 'src/lifecycle/statuses.ts',
        dependencyTypes: expect.arrayContaining(['type-only']),
      }),
    );
  });

  it('breaks no rule of .dependency-cruiser.cjs', () => {
    const found = result.summary.violations.map(describeViolation);
    expect(found.filter((violation) => !KNOWN.includes(violation))).toEqual([]);
  });

  it('still has each known violation (remove fixed ones from KNOWN)', () => {
    const found = result.summary.violations.map(describeViolation);
    expect(KNOWN.filter((violation) => !found.includes(violation))).toEqual([]);
  });
});
