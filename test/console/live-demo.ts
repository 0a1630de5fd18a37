/**
 * The retail demo served by a real listening server for the browser tests: the demo's simulated
 * applications, integrations and connections, on a fresh SQLite store.
 */
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { APP_NAMES, type Apps, startApps } from '../../examples/retail/apps.js';
import { retail } from '../../examples/retail/integrations.js';
import { writeOrderFile } from '../../examples/retail/orders-file.js';
import { Engine } from '../../src/engine/engine.js';
import { buildApp } from '../../src/server/app.js';
import { quietLogger } from '../support/engine.js';
import { tempDir } from '../support/tmp.js';

export interface LiveDemo {
  base: string;
  apps: Apps;
  engine: Engine;
  app: FastifyInstance;
  stop(): Promise<void>;
}

/**
 * Starts the demo. Its fulfilment retries for about a minute and a half before it fails; here it
 * fails after two quick attempts, so that a failure can be made and rerun within a test, and the
 * warehouse confirms a shipment after a fifth of a second rather than ten.
 */
export async function startLiveDemo(options: { adminToken?: string } = {}): Promise<LiveDemo> {
  const dir = tempDir('tandem-console-');
  // The applications' directory takes the port below them.
  const started = await startApps((await freePorts(APP_NAMES.length + 1)) + 1, { shipmentDelayMs: 200 });
  // Chosen before the server listens: onboarding sends its events to the demo's own API.
  const port = await freePorts(1);
  const { apps } = started;
  const urls = Object.fromEntries(Object.entries(apps).map(([name, app]) => [name, app.url]));
  writeOrderFile(dir.path);
  const { integrations, connections } = retail({
    urls: urls as Parameters<typeof retail>[0]['urls'],
    inbox: dir.path,
    tandemUrl: `http://127.0.0.1:${port}`,
  });
  const quick = integrations.map((integration) =>
    integration.id === 'fulfil-order'
      ? { ...integration, retry: { maxAttempts: 2, initialDelayMs: 100, maxDelayMs: 200 } }
      : integration,
  );
  const engine = await Engine.create({
    integrations: quick,
    connections,
    store: `sqlite:${join(dir.path, 'demo.db')}`,
    logger: quietLogger,
  });
  const app = await buildApp({ engine, adminToken: options.adminToken ?? null, logger: quietLogger });
  engine.start();
  await app.listen({ port, host: '127.0.0.1' });
  return {
    base: `http://127.0.0.1:${port}`,
    apps,
    engine,
    app,
    async stop() {
      await app.close();
      await engine.stop(0);
      await started.close();
      dir.cleanup();
    },
  };
}

/**
 * The first of `count` consecutive free ports, below the range the system hands out for outgoing
 * connections and port 0 (32768 and up on Linux), so that nothing else takes one meanwhile.
 */
async function freePorts(count: number): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    const base = 20_000 + Math.floor(Math.random() * 12_000);
    const free = await Promise.all(Array.from({ length: count }, (_, i) => isFree(base + i)));
    if (free.every(Boolean)) return base;
  }
  throw new Error(`No ${count} consecutive free ports found`);
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}
