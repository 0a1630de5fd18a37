// Values the global set-up provides to every test file (see vitest.config.ts).
declare module 'vitest' {
  export interface ProvidedContext {
    /** URL of the test run's PostgreSQL server (database `postgres`, user `postgres`). */
    postgresUrl: string;
  }
}

export {};
