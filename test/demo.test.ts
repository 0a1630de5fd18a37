/**
 * The retail demo as a new user starts it: `npm start` in a child process with a fresh data
 * directory, driven over HTTP.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from './support/tmp.js';
import { waitFor } from './support/wait.js';

const root = join(import.meta.dirname, '..');
let child: ChildProcess;
let base = '';
let apps = 0;
const dir = tempDir('tandem-demo-');
let output = '';

beforeAll(async () => {
  apps = 20_000 + Math.floor(Math.random() * 20_000);
  child = spawn('npm', ['start'], {
    cwd: root,
    env: {
      ...process.env,
      TANDEM_PORT: '0',
      TANDEM_LOG_LEVEL: 'warn',
      TANDEM_STORE_URL: `sqlite:${join(dir.path, 'demo.db')}`,
      DEMO_APPS_PORT: String(apps),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  child.stdout!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const port = await waitFor(
    () => /listening on http:\/\/[^:]+:(\d+)/.exec(output)?.[1],
    'the demo to listen',
    60_000,
  );
  base = `http://127.0.0.1:${port}`;
}, 90_000);

afterAll(async () => {
  if (child?.pid) process.kill(-child.pid, 'SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));
  dir.cleanup();
});

const get = async (path: string) => (await fetch(base + path)).json() as Promise<any>;
const post = async (url: string, body?: unknown) => {
  const response = await fetch(url, {
    method: 'POST',
    ...(body === undefined
      ? {}
      : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  return { status: response.status, json: (await response.json()) as any };
};
const app = (offset: number) => `http://127.0.0.1:${apps + offset}`;
const INVENTORY = 1;
const WAREHOUSE = 4;

async function finished(tracking: string, integration: string) {
  return waitFor(
    async () => {
      const page = await get(
        `/api/instances?integration=${integration}&tracking=${encodeURIComponent(tracking)}`,
      );
      const instance = page.items[0];
      return instance && ['succeeded', 'failed'].includes(instance.status) ? instance : null;
    },
    `${integration} ${tracking} to finish`,
    60_000,
  );
}

describe('the retail demo (npm start)', () => {
  it('answers a balance within its deadline', async () => {
    const response = await fetch(`${base}/accounts/ACC-1/balance`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ balance: 1234.56, currency: 'EUR' });
  });

  it('confirms an order at once and completes its fulfilment in five steps', async () => {
    const { status, json } = await post(`${base}/orders`, {
      orderId: 'D-1',
      email: 'ann@example.com',
      sku: 'KB-42',
      qty: 1,
      marketing: true,
    });
    expect(status).toBe(201);
    expect(json.confirmation).toMatch(/^CONF-/);
    const fulfil = await finished('D-1', 'fulfil-order');
    expect(fulfil.status).toBe('succeeded');
    const detail = await get(`/api/instances/${fulfil.id}`);
    expect(detail.steps.map((s: { name: string }) => s.name)).toEqual([
      'create-account',
      'marketing-signup',
      'update-inventory',
      'packing-list',
      'send-to-warehouse',
    ]);
  });

  it('retries fulfilments while inventory is down and completes each once it is back, one packing list per order', async () => {
    await post(`${app(INVENTORY)}/_down`);
    const ids = Array.from({ length: 5 }, (_, i) => `OUT-${i}`);
    for (const orderId of ids) {
      const { status } = await post(`${base}/orders`, {
        orderId,
        email: `${orderId}@example.com`,
        sku: 'KB-1',
        qty: 1,
      });
      expect(status).toBe(201);
    }
    await waitFor(
      async () => (await get('/api/instances?integration=fulfil-order&status=retrying')).items.length === 5,
      'the fulfilments to retry',
      30_000,
    );
    const before = (await get(`${'/api/instances'}?integration=fulfil-order&status=failed`)).items.length;
    await post(`${app(INVENTORY)}/_up`);
    for (const orderId of ids) expect((await finished(orderId, 'fulfil-order')).status).toBe('succeeded');
    expect((await get('/api/instances?integration=fulfil-order&status=failed')).items.length).toBe(before);
    const warehouse = (await (await fetch(`${app(WAREHOUSE)}/_status`)).json()) as { effects: number };
    expect(warehouse.effects).toBe(6); // D-1 and the five orders: one packing list each
  }, 90_000);

  it('never attaches a document before its employee exists', async () => {
    const employee = await post(`${base}/employees`, { employeeId: 'E-42', name: 'Ann' });
    const document = await post(`${base}/employees/documents`, { employeeId: 'E-42', title: 'contract' });
    expect(employee.status).toBe(202);
    expect(document.status).toBe(202);
    const onboard = await finished('E-42', 'onboard-employee');
    const attach = await finished('E-42', 'attach-document');
    expect(attach.startedAt).toBeGreaterThanOrEqual(onboard.finishedAt);
  });
});
