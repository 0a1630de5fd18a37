import { join } from 'node:path';
import pino from 'pino';
import type { AnyIntegration } from '../../src/define/integration.js';
import { Engine, type EngineOptions } from '../../src/engine/engine.js';
import type { InstanceStatus } from '../../src/model.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import { tempDir } from './tmp.js';
import { waitFor } from './wait.js';

export const quietLogger = pino({ level: process.env.TANDEM_LOG_LEVEL ?? 'warn' });

/** An engine on a fresh SQLite file in a temporary directory; `close()` stops it and removes the file. */
export async function testEngine(integrations: AnyIntegration[], options: Partial<EngineOptions> = {}) {
  const dir = tempDir('tandem-engine-');
  const path = join(dir.path, 'tandem.db');
  const store = new SqliteStore({ path });
  const engine = await Engine.create({
    integrations,
    store,
    logger: quietLogger,
    pollIntervalMs: 50,
    ...options,
  });
  engine.start();
  return {
    engine,
    store,
    path,
    async close() {
      await engine.stop(1_000);
      await store.close();
      dir.cleanup();
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
      const instance = await engine.store.getInstance(id);
      return instance && statuses.includes(instance.status) ? instance : null;
    },
    `instance ${id} to reach ${statuses.join('|')}`,
    timeoutMs,
  );
}
