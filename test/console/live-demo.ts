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
import { waitFor } from '../support/wait.js';

export interface LiveDemo {
  base: string;
  apps: Apps;
  engine: Engine;
  app: FastifyInstance;
  /** Stops the server and its engine and starts them again on the same store and port (a restart). */
  restart(): Promise<void>;
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
  const serve = async () => {
    const engine = await Engine.create({
      integrations: quick,
      connections,
      store: `sqlite:${join(dir.path, 'demo.db')}`,
      logger: quietLogger,
    });
    const app = await buildApp({ engine, adminToken: options.adminToken ?? null, logger: quietLogger });
    engine.start();
    await app.listen({ port, host: '127.0.0.1' });
    return { engine, app };
  };
  const demo: LiveDemo = {
    base: `http://127.0.0.1:${port}`,
    apps,
    ...(await serve()),
    async restart() {
      await demo.app.close();
      await demo.engine.stop(0);
      Object.assign(demo, await serve());
    },
    async stop() {
      await demo.app.close();
      await demo.engine.stop(0);
      await started.close();
      dir.cleanup();
    },
  };
  return demo;
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

/** What {@link scriptedOutage} left behind, for the tests to look at. */
export interface Outage {
  /** The order numbers placed while inventory was down: each one's fulfilment failed. */
  orderIds: string[];
  /** Sync instances of `current-inventory` that failed while inventory was down (the caller got an error). */
  syncFailures: number;
  /** The employee whose onboarding failed while the HR system was down … */
  employeeId: string;
  /** … and the document queued behind that onboarding (same ordering key), held while it stays failed. */
  heldDocumentId: string;
}

const post = (base: string, path: string, body: unknown) =>
  fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

/**
 * The outage the console is judged by: inventory goes down while orders come in (each fulfilment
 * fails at `update-inventory` after its attempts, the circuit opens, stock look-ups fail for their
 * callers), the HR system goes down while an employee is onboarded (the onboarding fails and the
 * document sent after it is held behind it by their ordering key); then both come back. Returns
 * once every fulfilment and the onboarding have failed.
 */
export async function scriptedOutage(demo: LiveDemo, options: { orders?: number; prefix?: string } = {}) {
  const { orders = 4, prefix = 'OUT' } = options;
  const { base, apps } = demo;
  await Promise.all([post(apps.inventory.url, '/_down', {}), post(apps.hr.url, '/_down', {})]);
  const orderIds = Array.from({ length: orders }, (_, i) => `${prefix}-${i + 1}`);
  for (const orderId of orderIds) {
    const response = await post(base, '/orders', {
      orderId,
      email: `${orderId.toLowerCase()}@example.com`,
      sku: 'KB-1',
      qty: 1,
    });
    if (response.status !== 201) throw new Error(`order ${orderId}: ${response.status}`);
  }
  let syncFailures = 0;
  for (let i = 0; i < 3; i++) if ((await fetch(`${base}/inventory/KB-1`)).status >= 500) syncFailures++;
  const employeeId = `${prefix}-E1`;
  await post(base, '/employees', { employeeId, name: 'Ada Outage' });
  const held = (await (
    await post(base, '/employees/documents', { employeeId, title: 'Contract' })
  ).json()) as { instanceId: string };
  const failed = async (integration: string, tracking: string) => {
    const page = (await (
      await fetch(`${base}/api/instances?integration=${integration}&tracking=${tracking}`)
    ).json()) as { items: { status: string }[] };
    return page.items[0]?.status === 'failed';
  };
  for (const orderId of orderIds) await waitFor(() => failed('fulfil-order', orderId), `${orderId} to fail`);
  await waitFor(() => failed('onboard-employee', employeeId), `the onboarding of ${employeeId} to fail`);
  await Promise.all([post(apps.inventory.url, '/_up', {}), post(apps.hr.url, '/_up', {})]);
  return { orderIds, syncFailures, employeeId, heldDocumentId: held.instanceId } satisfies Outage;
}
