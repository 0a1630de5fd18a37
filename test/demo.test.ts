/**
 * The retail demo as a new user starts it: `npm start` in a child process with a fresh data
 * directory, driven over HTTP.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Demo, root, startDemo } from './support/demo.js';
import { waitFor } from './support/wait.js';

let demo: Demo;
let base = '';
let apps = 0;

beforeAll(async () => {
  demo = await startDemo();
  base = demo.base;
  apps = demo.appsPort;
}, 90_000);

afterAll(async () => {
  await demo?.stop();
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
/** `tandem demo …` in a child process, as a user types it. */
const demoCli = async (...args: string[]) =>
  (
    await promisify(execFile)(
      process.execPath,
      [join(root, 'bin/tandem.js'), 'demo', ...args, '--apps', `http://127.0.0.1:${apps - 1}`],
      { env: { ...process.env, TANDEM_CLI_SOURCE: '1' } },
    )
  ).stdout;

/** The simulated applications' URLs, as the demo's directory lists them. */
const appUrl = async (name: string) => {
  const { apps: list } = (await (await fetch(`http://127.0.0.1:${apps - 1}/`)).json()) as {
    apps: { name: string; url: string }[];
  };
  return list.find((a) => a.name === name)!.url;
};

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
  it.each([
    ['check-balance', '/accounts/ACC-1/balance', 2_000, { balance: 1234.56 }],
    ['credit-check', '/customers/C-17/credit', 2_000, { customer: 'C-17', approved: true }],
    ['current-inventory', '/inventory/KB-7', 1_000, { sku: 'KB-7', available: 1000 }],
    ['seats-available', '/events/E-1/seats', 1_000, { event: 'E-1', capacity: 40 }],
    ['stock-price', '/stocks/ACME/price', 500, { symbol: 'ACME', currency: 'EUR' }],
  ])('%s answers %s within its deadline', async (_id, path, deadline, expected) => {
    const started = performance.now();
    const response = await fetch(base + path);
    const elapsed = performance.now() - started;
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject(expected);
    expect(elapsed).toBeLessThan(deadline);
  });

  it('keeps a path parameter in its segment: a traversal attempt stays on the accounts endpoint', async () => {
    for (const account of ['..%2F..%2F_status', '..%2F_down', 'x%3Fdebug%3D1']) {
      const response = await fetch(`${base}/accounts/${account}/balance`);
      expect(response.status, account).toBe(200);
      // The bank's accounts route answered, for the whole value as one account number.
      expect(await response.json()).toEqual({
        account: decodeURIComponent(account),
        balance: 1234.56,
        currency: 'EUR',
      });
    }
    const bank = (await (await fetch(`${await appUrl('bank')}/_status`)).json()) as { down: boolean };
    expect(bank.down).toBe(false);
  });

  it('tandem demo refuses an unknown application, naming the known ones', async () => {
    const failed = await demoCli('down', 'mainframe').catch(
      (error: { code: number; stderr: string }) => error,
    );
    expect((failed as { code: number }).code).toBe(1);
    expect((failed as { stderr: string }).stderr).toMatch(
      /known applications: bank, inventory, .*order-processing/,
    );
    const all = JSON.parse(await demoCli('status', '--json')) as { name: string; down: boolean }[];
    expect(all.map((a) => a.name)).toContain('credit-bureau');
    expect(all.every((a) => !a.down)).toBe(true);
  });

  it('answers a sync fault when its application is down, and never reruns it', async () => {
    const bank = await appUrl('bank');
    await post(`${bank}/_down`);
    try {
      const response = await fetch(`${base}/stocks/ACME/price`);
      expect(response.status).toBeGreaterThanOrEqual(500);
      expect(response.headers.get('content-type')).toContain('application/problem+json');
    } finally {
      await post(`${bank}/_up`);
    }
    const retrying = await get('/api/instances?integration=stock-price&status=retrying');
    expect(retrying.items).toEqual([]);
  });

  it('syncs inventory to the web shop asynchronously', async () => {
    const { status, json } = await post(`${base}/inventory/sync`, { sku: 'SYNC-1' });
    expect(status).toBe(202);
    const instance = await finished('SYNC-1', 'sync-inventory');
    expect(instance.id).toBe(json.instanceId);
    expect(instance.status).toBe('succeeded');
    const shop = (await (await fetch(`${await appUrl('webshop')}/stock/SYNC-1`)).json()) as any;
    expect(shop.available).toBe(1000);
  });

  it('runs nightly-orders now: bad rows reported by line, each good order posted exactly once', async () => {
    const { status, json } = await post(`${base}/api/integrations/nightly-orders/run`, {});
    expect(status).toBe(202);
    const batch = await waitFor(
      async () => {
        const instance = (await get(`/api/instances/${json.instanceId}`)).instance ?? null;
        return instance && ['succeeded', 'failed'].includes(instance.status) ? instance : null;
      },
      'nightly-orders to finish',
      30_000,
    );
    expect(batch.status).toBe('succeeded');
    expect(batch.output.invalid.errors.map((e: { line: number }) => e.line)).toEqual([4, 7, 9]);
    expect(batch.output.invalid.errors[0].reason).toMatch(/email/);
    expect(batch.output.children).toMatchObject({ total: 6, succeeded: 6, failed: 0 });
    const received = (await (await fetch(`${await appUrl('order-processing')}/orders`)).json()) as Record<
      string,
      { count: number; order: { total: number; product: string } }
    >;
    expect(Object.keys(received).sort()).toEqual([
      'N-1001',
      'N-1002',
      'N-1004',
      'N-1005',
      'N-1007',
      'N-1009',
    ]);
    for (const { count, order } of Object.values(received)) {
      expect(count).toBe(1);
      expect(order.product).toMatch(/^Product /); // enriched from the web shop's catalogue
      expect(order.total).toBeGreaterThan(0);
    }
  });

  it('confirms an order at once; its fulfilment waits for the warehouse to call back, then sends the shipping notice with its tracking number', async () => {
    const { status, json } = await post(`${base}/orders`, {
      orderId: 'D-1',
      email: 'ann@example.com',
      sku: 'KB-42',
      qty: 1,
      marketing: true,
    });
    expect(status).toBe(201);
    expect(json.confirmation).toMatch(/^CONF-/);
    // The packing list is at the warehouse; the order waits (no worker, no lease) for its shipment.
    const waiting = await waitFor(async () => {
      const instance = (await get('/api/instances?integration=fulfil-order&tracking=D-1')).items[0];
      if (instance && !['queued', 'running', 'waiting'].includes(instance.status))
        throw new Error(`fulfil-order D-1 is ${instance.status} before the warehouse called back`);
      return instance?.status === 'waiting' ? instance : null;
    }, 'fulfil-order D-1 to wait for the warehouse');
    const crm = await appUrl('crm');
    const notices = async () =>
      ((await (await fetch(`${crm}/notifications`)).json()) as Record<string, { trackingNumber: string }[]>)[
        'D-1'
      ];
    expect(await notices()).toBeUndefined();

    const fulfil = await finished('D-1', 'fulfil-order');
    expect(fulfil.id).toBe(waiting.id);
    expect(fulfil.status).toBe('succeeded');
    const shipments = (await (await fetch(`${await appUrl('warehouse')}/shipments`)).json()) as Record<
      string,
      { trackingNumber: string; callbackStatus: number | null }
    >;
    const shipment = shipments['D-1']!;
    expect(shipment.trackingNumber).toMatch(/^1Z\d+$/);
    expect(shipment.callbackStatus).toBeGreaterThanOrEqual(200);
    expect(shipment.callbackStatus).toBeLessThan(300);
    expect(await notices()).toEqual([
      { orderId: 'D-1', email: 'ann@example.com', kind: 'shipped', trackingNumber: shipment.trackingNumber },
    ]);
    expect(fulfil.output).toEqual({
      orderId: 'D-1',
      status: 'shipped',
      trackingNumber: shipment.trackingNumber,
    });
    const detail = await get(`/api/instances/${fulfil.id}`);
    expect(detail.steps.map((s: { name: string }) => s.name)).toEqual([
      'create-account',
      'marketing-signup',
      'update-inventory',
      'packing-list',
      'shipment',
      'send-to-warehouse',
      'shipping-notice',
    ]);
    const waits = detail.events.filter((e: { type: string }) => e.type.startsWith('wait.'));
    expect(waits.map((e: { type: string; data: unknown }) => [e.type, e.data])).toEqual([
      ['wait.started', expect.objectContaining({ step: 'shipment', kind: 'callback' })],
      ['wait.resumed', expect.objectContaining({ step: 'shipment', by: 'callback' })],
    ]);

    // Rerun from the start: the packing list is sent again with the same Idempotency-Key, so the
    // warehouse packs nothing twice but confirms the shipment at the new run's callback URL.
    const rerun = await post(`${base}/api/instances/${fulfil.id}/rerun`, { from: 'start' });
    expect(rerun.status).toBe(200);
    const again = await waitFor(
      async () => {
        const { instance } = await get(`/api/instances/${fulfil.id}`);
        return instance.run === 2 && ['succeeded', 'failed'].includes(instance.status) ? instance : null;
      },
      'the rerun of D-1 to finish',
      60_000,
    );
    expect(again.status).toBe('succeeded');
    expect(again.output).toEqual({
      orderId: 'D-1',
      status: 'shipped',
      trackingNumber: shipment.trackingNumber,
    });
    // The notice was sent with the same Idempotency-Key: the customer is not told twice.
    expect((await notices())!.map((n) => n.trackingNumber)).toEqual([shipment.trackingNumber]);
  });

  it('retries fulfilments while inventory is down and completes each once it is back, one packing list per order', async () => {
    expect(await demoCli('down', 'inventory')).toBe('inventory is down\n');
    expect(await demoCli('status', 'inventory')).toMatch(/^NAME\s+STATE\s+URL\ninventory\s+down\s+http/);
    expect((await fetch(`${base}/inventory/KB-1`)).status).toBeGreaterThanOrEqual(500);
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
    expect(await demoCli('up', 'inventory')).toBe('inventory is up\n');
    for (const orderId of ids) expect((await finished(orderId, 'fulfil-order')).status).toBe('succeeded');
    expect((await get('/api/instances?integration=fulfil-order&status=failed')).items.length).toBe(before);
    const packingLists = (await (await fetch(`${await appUrl('warehouse')}/packing-lists`)).json()) as Record<
      string,
      number
    >;
    expect(packingLists).toEqual(Object.fromEntries(['D-1', ...ids].map((id) => [id, 1])));
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

  it('attaches a document by event once its employee exists, even when the document comes first', async () => {
    const documents = await appUrl('documents');
    const stored = async () =>
      ((await (await fetch(`${documents}/_status`)).json()) as { effects: number }).effects;
    const before = await stored();
    const document = await post(`${base}/employees/documents/by-event`, {
      employeeId: 'E-50',
      title: 'contract',
    });
    expect(document.status).toBe(202);
    await waitFor(
      async () => (await get(`/api/instances/${document.json.instanceId}`)).instance.status === 'waiting',
      'attach-document-by-event to wait for employee.created',
    );
    expect(await stored()).toBe(before);

    expect((await post(`${base}/employees`, { employeeId: 'E-50', name: 'Cy' })).status).toBe(202);
    const onboard = await finished('E-50', 'onboard-employee');
    const attach = await finished('E-50', 'attach-document-by-event');
    expect(onboard.status).toBe('succeeded');
    expect(attach.status).toBe('succeeded');
    // Resumed by onboarding's event (its last step), not by anything else.
    const detail = await get(`/api/instances/${attach.id}`);
    expect(detail.events.find((e: { type: string }) => e.type === 'wait.resumed').data).toMatchObject({
      step: 'employee-created',
      by: 'event',
      eventId: 'employee.created:E-50',
    });
    expect(await stored()).toBe(before + 1);

    // Onboarded before the document arrived: found at once, nothing to wait for.
    const late = await post(`${base}/employees/documents/by-event`, { employeeId: 'E-50', title: 'badge' });
    const done = await waitFor(async () => {
      const instance = (await get(`/api/instances/${late.json.instanceId}`)).instance;
      return ['succeeded', 'failed'].includes(instance.status) ? instance : null;
    }, 'the second document to be attached');
    expect(done.status).toBe('succeeded');
    expect(await stored()).toBe(before + 2);
  });

  it('keeps the document waiting while HR is down, and attaches it after the employee is created', async () => {
    const hr = await appUrl('hr');
    const documents = await appUrl('documents');
    await post(`${hr}/_down`);
    let documentsBefore: number;
    try {
      documentsBefore = ((await (await fetch(`${documents}/_status`)).json()) as { effects: number }).effects;
      expect((await post(`${base}/employees`, { employeeId: 'E-43', name: 'Bo' })).status).toBe(202);
      expect(
        (await post(`${base}/employees/documents`, { employeeId: 'E-43', title: 'contract' })).status,
      ).toBe(202);
      await waitFor(
        async () =>
          (await get('/api/instances?integration=onboard-employee&tracking=E-43&status=retrying')).items[0],
        'onboarding to retry while HR is down',
      );
      const waiting = (await get('/api/instances?integration=attach-document&tracking=E-43')).items[0];
      expect(waiting.status).toBe('queued');
      expect(waiting.startedAt).toBeNull();
    } finally {
      await post(`${hr}/_up`);
    }
    const onboard = await finished('E-43', 'onboard-employee');
    const attach = await finished('E-43', 'attach-document');
    expect(onboard.status).toBe('succeeded');
    expect(attach.status).toBe('succeeded');
    expect(onboard.attempt).toBeGreaterThan(1);
    expect(attach.startedAt).toBeGreaterThanOrEqual(onboard.finishedAt);
    const documentsAfter = ((await (await fetch(`${documents}/_status`)).json()) as { effects: number })
      .effects;
    expect(documentsAfter).toBe(documentsBefore + 1);
  });
});

describe('npm run demo:traffic', () => {
  it('sends mixed traffic through an inventory outage and every confirmed order is fulfilled once', async () => {
    const { stdout } = await promisify(execFile)(
      'npm',
      [
        'run',
        'demo:traffic',
        '--',
        '--url',
        base,
        '--apps',
        `http://127.0.0.1:${apps - 1}`,
        '--duration',
        '4',
        '--outage',
        '2',
        '--outage-at',
        '1',
        '--rate',
        '15',
        '--settle',
        '40',
      ],
      { cwd: root, env: process.env },
    );
    expect(stdout).toMatch(/inventory is down[\s\S]*inventory is up/);
    const summary =
      /orders: (\d+) confirmed, (\d+) fulfilled with exactly one packing list, 0 without a packing list, 0 with more than one; fulfilments still active: 0/.exec(
        stdout,
      );
    expect(summary, stdout).not.toBeNull();
    expect(Number(summary![1])).toBeGreaterThan(5);
    expect(summary![2]).toBe(summary![1]);
    // While inventory was down, its sync query failed fast instead of waiting or being rerun.
    expect(stdout).toMatch(/current-inventory while inventory is down: 50[23] in \d+ ms/);
  }, 60_000);
});
