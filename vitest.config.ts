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
 * Without `module`, a bundlers' condition that Node does not know: under it, @opentelemetry/api
 * (which prom-client requires) resolves to a build whose imports Node cannot load.
 */
const conditions = ['tandem-source', ...defaultServerConditions.filter((c) => c !== 'module')];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: ['tandem-source'] } },
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
