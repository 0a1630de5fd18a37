import './provided.js';
import { join } from 'node:path';
import pino from 'pino';
import { inject } from 'vitest';
import type { AnyIntegration } from '../../src/define/integration.js';
import { Engine, type EngineOptions } from '../../src/engine/engine.js';
import { InstanceNotFoundError } from '../../src/errors.js';
import type { InstanceStatus } from '../../src/model.js';
import { PostgresStore } from '../../src/store/postgres/store.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import type { Store } from '../../src/store/store.js';
import { tempDir } from './tmp.js';
import { waitFor } from './wait.js';

export const quietLogger = pino({ level: process.env.TANDEM_LOG_LEVEL ?? 'warn' });

/** The stores every engine test runs against. */
export const STORE_KINDS = ['sqlite', 'postgres'] as const;
export type StoreKind = (typeof STORE_KINDS)[number];

let schemas = 0;

/** A fresh, empty store: a SQLite file in a temporary directory, or a new schema on the test run's PostgreSQL server. */
export async function testStore(
  kind: StoreKind = 'sqlite',
): Promise<{ store: Store; cleanup: () => Promise<void> }> {
  if (kind === 'postgres') {
    const store = await PostgresStore.open({
      url: inject('postgresUrl'),
      schema: `t_${process.pid}_${++schemas}`,
      onError: (error) => quietLogger.warn({ err: error }, 'postgres'),
    });
    return {
      store,
      async cleanup() {
        await store.close();
      },
    };
  }
  const dir = tempDir('tandem-engine-');
  const store = new SqliteStore({ path: join(dir.path, 'tandem.db') });
  return {
    store,
    async cleanup() {
      await store.close();
      dir.cleanup();
    },
  };
}

/** A started engine on a fresh store; `close()` stops it and removes the store. */
export async function testEngine(
  integrations: AnyIntegration[],
  options: Partial<EngineOptions> & { storeKind?: StoreKind } = {},
) {
  const { storeKind, ...engineOptions } = options;
  const { store, cleanup } = await testStore(storeKind);
  const engine = await Engine.create({
    integrations,
    store,
    logger: quietLogger,
    pollIntervalMs: 50,
    ...engineOptions,
  });
  engine.start();
  return {
    engine,
    store,
    async close() {
      await engine.stop(1_000);
      await cleanup();
    },
  };
}

const FINAL: InstanceStatus[] = ['succeeded', 'failed', 'cancelled'];

/** Waits until an instance is in one of the statuses (default: any final one) and returns it. */
export function waitForStatus(
  engine: Engine,
  id: string,
  statuses: InstanceStatus[] = FINAL,
  timeoutMs = 20_000,
) {
  return waitFor(
    async () => {
      const instance = await engine.getInstance(id).catch((error: unknown) => {
        if (error instanceof InstanceNotFoundError) return null;
        throw error;
      });
      return instance && statuses.includes(instance.status) ? instance : null;
    },
    `instance ${id} to reach ${statuses.join('|')}`,
    timeoutMs,
  );
}
