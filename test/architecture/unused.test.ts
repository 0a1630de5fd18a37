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
 * Findings known when the check was added, in code being reworked at the time: each entry must
 * still be found (a fixed one is removed from here), and nothing else may.
 * - src/store/sql.ts and most of src/lifecycle: the lifecycle module's SQL rendering and sets,
 *   which the stores and the executor are moving onto.
 * - The rest: exports used only inside their own file, in the engine, the stores, the API schemas
 *   and the console's API types (an `export` to drop, or a type to take from the package).
 */
const KNOWN: readonly string[] = [
  'files: src/store/sql.ts',
  'exports: console/src/api.ts: ApiError',
  'exports: src/engine/engine.ts: hashInput',
  'exports: src/engine/engine.ts: validateInput',
  'exports: src/engine/executor.ts: decide',
  'exports: src/engine/executor.ts: isPermanent',
  'exports: src/engine/sync.ts: downstreamStatus',
  'exports: src/lifecycle/activity.ts: ACTIVITY_TYPES',
  'exports: src/lifecycle/activity.ts: EVENT_FIELDS',
  'exports: src/lifecycle/activity.ts: activity',
  'exports: src/lifecycle/names.ts: ACTIVITY_TYPES',
  'exports: src/lifecycle/statuses.ts: HOLDS_ORDER',
  'exports: src/lifecycle/statuses.ts: MEASURED',
  'exports: src/lifecycle/statuses.ts: PURGEABLE',
  'exports: src/lifecycle/statuses.ts: emptyCounts',
  'exports: src/lifecycle/statuses.ts: isFinal',
  'exports: src/lifecycle/statuses.ts: isInstanceStatus',
  'exports: src/lifecycle/transitions.ts: BLOCKS_FIRING',
  'exports: src/lifecycle/transitions.ts: EVENTS_INTO',
  'exports: src/lifecycle/transitions.ts: FINISH',
  'exports: src/lifecycle/transitions.ts: LEASE_CLEARED',
  'exports: src/server/api/schemas.ts: eventSchema',
  'exports: src/server/api/schemas.ts: instanceStatus',
  'exports: src/server/api/schemas.ts: integrationSummarySchema',
  'exports: src/server/api/schemas.ts: rerunFrom',
  'exports: src/server/api/schemas.ts: runSchema',
  'exports: src/server/api/schemas.ts: stepSchema',
  'exports: src/server/api/schemas.ts: triggerSchema',
  'exports: src/server/triggers.ts: INSTANCE_ID_HEADER',
  'exports: src/store/faults.ts: STORE_FAULT_RETRY_AFTER_SECONDS',
  'exports: src/store/faults.ts: StoreFullError',
  'exports: src/store/open.ts: DEFAULT_STORE_URL',
  'exports: src/store/rows.ts: errorFromJson',
  'exports: src/store/sqlite/store.ts: openSqliteStore',
  'types: console/src/api.ts: Advice',
  'types: console/src/api.ts: ErrorInfo',
  'types: console/src/api.ts: Run',
  'types: console/src/api.ts: WindowFigures',
  'types: src/engine/sync.ts: SyncAnswer',
  'types: src/lifecycle/activity.ts: ActivityData',
  'types: src/lifecycle/activity.ts: EventHead',
  'types: src/lifecycle/activity.ts: SqlEventType',
  'types: src/lifecycle/transitions.ts: FinishKind',
  'types: src/lifecycle/transitions.ts: TransitionName',
];

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
