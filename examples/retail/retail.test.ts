/**
 * The retail demo's own tests, written with the test kit as a team would write theirs: the real
 * integrations against fake applications, on a real store, with the clock moved instead of waited,
 * and the warehouse's shipment callback and the `employee.created` event played by the test.
 */
import '../../test/support/provided.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createTestEngine,
  type FakeApplication,
  type FakeRoute,
  fakeApplication,
  type TestEngine,
} from 'tandem/testing';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { APP_NAMES, type AppName } from './apps.js';
import { retail } from './integrations.js';
import { writeOrderFile } from './orders-file.js';

/** What the applications answer in these tests; the others only need to exist. */
const ROUTES: Partial<Record<AppName, Record<string, FakeRoute>>> = {
  crm: {
    'POST /customers': ({ body }) => ({ status: 201, body: { customerId: `C-${(body as any).email}` } }),
    'POST /notifications': { status: 201, body: { notified: true } },
  },
  hr: { 'POST /employees': ({ body }) => ({ status: 201, body: { employeeId: (body as any).employeeId } }) },
  identity: {
    'POST /users': ({ body }) => ({ status: 201, body: { userId: `u-${(body as any).employeeId}` } }),
    'GET /users/:employeeId': { status: 404, body: { error: 'no such user' } },
  },
  documents: { 'POST /documents': ({ body }) => ({ status: 201, body: { stored: (body as any).title } }) },
  inventory: { 'POST /reservations': { status: 201, body: { reservationId: 'R-1', remaining: 41 } } },
  warehouse: { 'POST /packing-lists': { status: 201, body: { packingListId: 'P-1' } } },
  webshop: {
    'GET /products/:sku': ({ params }) => ({
      body: { sku: params.sku, name: `Product ${params.sku}`, price: 10 },
    }),
  },
  'order-processing': { 'POST /orders': { status: 201, body: { accepted: true } } },
};

const ORDER = { orderId: 'A-1001', email: 'ann@example.com', sku: 'KB-42', qty: 2 };
const SHIPPED = { orderId: 'A-1001', trackingNumber: '1Z100042', shippedAt: '2026-11-24T15:00:00Z' };

describe.each(['sqlite', 'postgres'] as const)('retail integrations on %s', (kind) => {
  let t: TestEngine;
  let apps: Record<AppName, FakeApplication>;
  /** Tandem's own API as the integrations reach it: events go to the test engine. */
  let tandemApi: FakeApplication;
  let inbox: string;

  async function start(now?: string) {
    apps = Object.fromEntries(
      await Promise.all(
        APP_NAMES.map(async (name) => [name, await fakeApplication({ routes: ROUTES[name] ?? {} })] as const),
      ),
    ) as Record<AppName, FakeApplication>;
    tandemApi = await fakeApplication({
      routes: {
        'POST /api/events': async ({ body }) => ({
          status: 202,
          body: await t.engine.sendEvent(body as Parameters<TestEngine['engine']['sendEvent']>[0]),
        }),
      },
    });
    inbox = mkdtempSync(join(tmpdir(), 'retail-inbox-'));
    const urls = Object.fromEntries(APP_NAMES.map((name) => [name, apps[name].url])) as Record<
      AppName,
      string
    >;
    const { integrations, connections } = retail({ urls, inbox, tandemUrl: tandemApi.url });
    t = await createTestEngine({
      integrations,
      connections,
      ...(kind === 'postgres' ? { store: inject('postgresUrl') } : {}),
      ...(now ? { now } : {}),
    });
    return integrations;
  }

  afterEach(async () => {
    await t?.close();
    await Promise.all([...Object.values(apps ?? {}), tandemApi].map((app) => app?.close()));
    if (inbox) rmSync(inbox, { recursive: true, force: true });
  });

  it('fulfil-order waits out an inventory outage, then for the shipment callback, and completes, each effect once', async () => {
    await start();
    await apps.inventory.down();
    const { instanceId } = await t.trigger('fulfil-order', ORDER);
    await t.runUntilIdle();
    expect((await t.result(instanceId)).status).toBe('retrying');

    // Twenty seconds of outage: backoffs, then the circuit breaker's re-probes, all at once.
    await t.advance(20_000);
    let result = await t.result(instanceId);
    expect(result.status).toBe('retrying');
    expect(
      result.calls.filter((c) => c.connection === 'inventory' && c.status === null).length,
    ).toBeGreaterThan(1);

    await apps.inventory.up();
    await t.advance(60_000);
    result = await t.result(instanceId);
    // The packing list went out with the callback URL; the order waits for the warehouse to ship it.
    expect(result.status).toBe('waiting');
    expect(apps.crm.count('POST /notifications')).toBe(0);

    // Three days is the warehouse's limit; it ships after two and calls back.
    await t.advance(2 * 86_400_000);
    expect((await t.result(instanceId)).status).toBe('waiting');
    const url = apps.warehouse.callbackUrl('POST /packing-lists');
    await t.answerCallback(url, SHIPPED);
    result = await t.result(instanceId);
    expect(result.status).toBe('succeeded');
    expect(result.output).toEqual({ orderId: 'A-1001', status: 'shipped', trackingNumber: '1Z100042' });
    // In the order the handler reached them: the callback's URL is made before the step that hands it out.
    expect(result.steps.map((s) => s.name)).toEqual([
      'create-account',
      'update-inventory',
      'packing-list',
      'shipment',
      'send-to-warehouse',
      'shipping-notice',
    ]);
    expect(apps.crm.received('POST /notifications').map((r) => r.body)).toEqual([
      { orderId: 'A-1001', email: 'ann@example.com', kind: 'shipped', trackingNumber: '1Z100042' },
    ]);
    // The warehouse calling twice (a retry of its own) changes nothing.
    await expect(t.answerCallback(url, SHIPPED)).rejects.toMatchObject({ code: 'callback-used' });
    // The account step succeeded on the first attempt and was not repeated by the retries.
    expect(apps.crm.count('POST /customers')).toBe(1);
    expect(apps.inventory.received('POST /reservations').map((r) => r.body)).toEqual([
      { sku: 'KB-42', qty: 2 },
    ]);
    expect(apps.warehouse.received('POST /packing-lists')[0]!.body).toMatchObject({
      orderId: 'A-1001',
      customer: { customerId: 'C-ann@example.com' },
      reservation: { reservationId: 'R-1' },
      callbackUrl: url,
    });
    expect(apps.warehouse.count('POST /packing-lists')).toBe(1);
  });

  it('fulfil-order fails clearly when the warehouse does not confirm within 3 days', async () => {
    await start();
    const { instanceId } = await t.trigger('fulfil-order', ORDER);
    await t.advance(3 * 86_400_000);
    const result = await t.result(instanceId);
    expect(result.status).toBe('failed');
    expect(result.error!.message).toMatch(/not confirmed the shipment of A-1001 within 3 days/);
    expect(apps.crm.count('POST /notifications')).toBe(0);
    await expect(t.answerCallback(apps.warehouse.callbackUrl(), SHIPPED)).rejects.toMatchObject({
      code: 'callback-expired',
    });
  });

  it('attach-document-by-event waits for employee.created, sent by onboarding, whichever comes first', async () => {
    await start();
    const document = await t.trigger('attach-document-by-event', { employeeId: 'E-7', title: 'contract' });
    await t.runUntilIdle();
    expect((await t.result(document.instanceId)).status).toBe('waiting');
    expect(apps.documents.count()).toBe(0);

    const onboarding = await t.trigger('onboard-employee', { employeeId: 'E-7', name: 'Ann' });
    await t.runUntilIdle();
    expect((await t.result(onboarding.instanceId)).status).toBe('succeeded');
    expect(tandemApi.received('POST /api/events').map((r) => r.body)).toEqual([
      {
        name: 'employee.created',
        id: 'employee.created:E-7',
        payload: { employeeId: 'E-7', userId: 'u-E-7' },
      },
    ]);
    const attached = await t.result(document.instanceId);
    expect(attached.status).toBe('succeeded');
    expect(apps.documents.received('POST /documents').map((r) => r.body)).toEqual([
      { employeeId: 'E-7', title: 'contract', userId: 'u-E-7' },
    ]);

    // Onboarded first, the document a minute later: the event in the look-back window is not missed.
    await t.trigger('onboard-employee', { employeeId: 'E-8', name: 'Bo' });
    await t.advance(60_000);
    const later = await t.trigger('attach-document-by-event', { employeeId: 'E-8', title: 'contract' });
    await t.runUntilIdle();
    expect((await t.result(later.instanceId)).status).toBe('succeeded');
    expect(apps.documents.count('POST /documents')).toBe(2);
  });

  it('place-order answers with a confirmation and hands fulfil-order off before it answers', async () => {
    await start();
    const answer = await t.call('place-order', { body: ORDER });
    expect(answer.status).toBe(201);
    expect(answer.body).toMatchObject({ orderId: 'A-1001', confirmation: expect.stringMatching(/^CONF-/) });
    const placed = await t.result(answer.instanceId!);
    expect(placed.children.map((c) => [c.integrationId, c.tracking.orderId])).toEqual([
      ['fulfil-order', 'A-1001'],
    ]);

    await t.runUntilIdle();
    expect((await t.result(placed.children[0]!.id)).status).toBe('waiting');
    await t.answerCallback(apps.warehouse.callbackUrl(), SHIPPED);
    expect((await t.result(placed.children[0]!.id)).status).toBe('succeeded');

    const invalid = await t.call('place-order', { body: { ...ORDER, email: 'not an address' } });
    expect(invalid.status).toBe(400);
    expect(apps.crm.count('POST /customers')).toBe(1);
  });

  it('nightly-orders fires at 02:00 Berlin time, reports the bad rows and posts the good ones', async () => {
    await start('2026-11-24T12:00:00Z');
    writeOrderFile(inbox, new Date('2026-11-24T12:00:00Z'));

    await t.advanceTo('2026-11-25T00:59:00Z');
    expect(apps['order-processing'].count()).toBe(0);

    // 02:00 in Berlin is 01:00 UTC in November; the run waits for its children, checked each second.
    await t.advanceTo('2026-11-25T01:00:05Z');
    const [slot] = (await t.engine.getSchedule('nightly-orders')).recentSlots;
    expect(slot).toMatchObject({ slotAt: Date.parse('2026-11-25T01:00:00Z'), outcome: 'fired' });
    const run = await t.result(slot!.instanceId!);
    expect(run.status).toBe('succeeded');
    expect(run.output).toMatchObject({
      count: 6,
      invalid: { read: 9, valid: 6, invalid: 3 },
      children: { total: 6, succeeded: 6 },
    });
    expect(
      (run.output as { invalid: { errors: { line: number }[] } }).invalid.errors.map((e) => e.line),
    ).toEqual([4, 7, 9]);
    const posted = apps['order-processing']
      .received('POST /orders')
      .map((r) => r.body as { orderId: string });
    expect(posted.map((o) => o.orderId).sort()).toEqual([
      'N-1001',
      'N-1002',
      'N-1004',
      'N-1005',
      'N-1007',
      'N-1009',
    ]);
    expect(posted[0]).toMatchObject({
      product: expect.stringMatching(/^Product /),
      total: expect.any(Number),
    });
  });
});
