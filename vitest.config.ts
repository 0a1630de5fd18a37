import { defineConfig } from 'vitest/config';

/**
 * Three groups, one after the other: the suites, then the load tests (mixed-load SIGKILL and HTTP
 * fuzzing), then the soak's short version alone, so that load tests measure Tandem rather than the
 * other tests sharing the machine's cores.
 */
const LOAD = ['test/reliability/crash-mixed.test.ts', 'test/reliability/openapi-fuzz.test.ts'];
const SOAK = ['test/reliability/soak.test.ts'];

export default defineConfig({
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
