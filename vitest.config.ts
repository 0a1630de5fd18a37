import { defaultServerConditions } from 'vite';
import { defineConfig } from 'vitest/config';

/**
 * Three groups, one after the other: the suites, then the load tests (mixed-load SIGKILL and HTTP
 * fuzzing), then the soak's short version alone, so that load tests measure Tandem rather than the
 * other tests sharing the machine's cores.
 */
const LOAD = ['test/reliability/crash-mixed.test.ts', 'test/reliability/openapi-fuzz.test.ts'];
const SOAK = ['test/reliability/soak.test.ts'];

/**
 * `tandem` imports (the examples', the test kit's users') resolve to src/ through the package's
 * `tandem-source` export condition, the same modules the tests import by path: one copy of each.
 */
const conditions = ['tandem-source', ...defaultServerConditions];
/**
 * Vitest also passes the SSR conditions to the test processes' Node (`--conditions`), where
 * `module` made `require('@opentelemetry/api')` (prom-client's) load the package's bundler-only ESM
 * build, whose extensionless imports Node cannot resolve. Node itself knows no `module` condition.
 */
const nodeConditions = conditions.filter((c) => c !== 'module');

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions: nodeConditions, externalConditions: ['tandem-source'] } },
  test: {
    globalSetup: ['test/support/postgres-global-setup.ts', 'test/support/console-global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    env: { TANDEM_LOG_LEVEL: 'warn' },
    projects: [
      {
        extends: true,
        test: {
          name: 'suites',
          include: ['test/**/*.test.ts', 'examples/**/*.test.ts'],
          exclude: [...LOAD, ...SOAK],
          sequence: { groupOrder: 0 },
        },
      },
      { extends: true, test: { name: 'load', include: LOAD, sequence: { groupOrder: 1 } } },
      { extends: true, test: { name: 'soak', include: SOAK, sequence: { groupOrder: 2 } } },
    ],
  },
});
