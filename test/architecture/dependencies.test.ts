/**
 * The import rules of docs/architecture.md, checked by dependency-cruiser with the repository's
 * `.dependency-cruiser.cjs`: a test fails listing each import that breaks one, so a layering
 * mistake is caught where it is made rather than in a review.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Violations known at the time the rules were written, in code being reworked elsewhere: each
 * entry must still occur (a fixed one is removed from here), and nothing else may.
 * - define/config.ts names `RetentionOptions` from engine/engine.ts, which imports
 *   `checkIntegrations` from define/config.ts: the type belongs with the configuration.
 * - engine/fan-out.ts names `ExecuteDeps` from engine/executor.ts, which calls `fanOut`.
 */
const KNOWN: readonly string[] = [
  'no-circular: src/define/config.ts → src/engine/engine.ts → src/define/config.ts',
  'no-circular: src/engine/executor.ts → src/engine/fan-out.ts → src/engine/executor.ts',
];

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

function cruise(): CruiseResult {
  const cli = join(root, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');
  const run = spawnSync(
    process.execPath,
    [cli, 'src', '--config', '.dependency-cruiser.cjs', '--output-type', 'json'],
    { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
  expect(run.status, run.stderr).toBe(0);
  return JSON.parse(run.stdout) as CruiseResult;
}

function describeViolation(violation: Violation): string {
  const path = violation.cycle
    ? [violation.from, ...violation.cycle.map((step) => step.name)]
    : [violation.from, violation.to];
  return `${violation.rule.name}: ${path.join(' → ')}`;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => relative(root, join(entry.parentPath, entry.name)));
}

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
