/**
 * CloudEvents on async triggers, on both stores: structured and binary mode start an instance whose
 * input is the event's data, `source` + `id` are its idempotency key, its attributes are kept and
 * searchable through the API, and an invalid event is refused with problem+json, storing nothing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import { STORE_KINDS, waitForStatus } from '../support/engine.js';
import { type TestServer, testServer } from '../support/server.js';

const orderPlaced = defineIntegration({
  id: 'order-placed',
  mode: 'async',
  route: 'POST /events/orders',
  input: z.object({ orderId: z.string() }),
  handler: async (ctx) => ({ seen: ctx.input.orderId }),
});

const CE_JSON = 'application/cloudevents+json';
const event = (overrides: Record<string, unknown> = {}) => ({
  specversion: '1.0',
  id: 'evt-1',
  source: 'https://shop.example/orders',
  type: 'com.example.order.placed',
  subject: 'A-1',
  datacontenttype: 'application/json',
  data: { orderId: 'A-1' },
  ...overrides,
});

describe.each(STORE_KINDS)('CloudEvents on async triggers (%s)', (storeKind) => {
  let server: TestServer | null = null;
  afterEach(async () => {
    await server?.close();
    server = null;
  });

  const start = async (worker = true) => {
    server = await testServer([orderPlaced], {}, { storeKind, worker });
    return server;
  };
  /** What a refused request must leave as it was. */
  const stored = async (s: TestServer) => ({
    instances: await s.store.countInstances({}),
    events: (await s.store.getEvents({ limit: 1000 })).length,
  });
  const post = (s: TestServer, body: unknown, headers: Record<string, string> = {}) =>
    s.request('/events/orders', {
      method: 'POST',
      body: JSON.stringify(body),
      headers: { 'content-type': CE_JSON, ...headers },
    });

  it('starts an instance from a structured event: data as input, attributes kept, source + id as key', async () => {
    const s = await start();
    const res = await post(s, event());
    expect(res.status).toBe(202);
    const { instanceId } = res.json;
    const done = await waitForStatus(s.engine, instanceId);
    expect(done).toMatchObject({
      status: 'succeeded',
      input: { orderId: 'A-1' },
      output: { seen: 'A-1' },
      idempotencyKey: 'ce:https://shop.example/orders evt-1',
    });
    const detail = await s.request(`/api/instances/${instanceId}`);
    expect(detail.json.instance.cloudEvent).toEqual({
      id: 'evt-1',
      source: 'https://shop.example/orders',
      type: 'com.example.order.placed',
      subject: 'A-1',
    });
    const accepted = detail.json.events.find((e: { type: string }) => e.type === 'accepted');
    expect(accepted.data).toEqual({ cloudEvent: detail.json.instance.cloudEvent });

    // A redelivery (same source and id) returns the first instance; the same id from another
    // source is another event.
    const again = await post(s, event());
    expect(again.status).toBe(202);
    expect(again.json.instanceId).toBe(instanceId);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    const elsewhere = await post(s, event({ source: '/pos' }));
    expect(elsewhere.json.instanceId).not.toBe(instanceId);
    // The same source and id with other data is a conflict, as with an Idempotency-Key.
    const changed = await post(s, event({ data: { orderId: 'B-2' } }));
    expect(changed.status).toBe(422);
  });

  it('starts an instance from a binary event (ce-* headers, the body as data)', async () => {
    const s = await start(false);
    const res = await s.request('/events/orders', {
      method: 'POST',
      json: { orderId: 'C-3' },
      headers: {
        'ce-specversion': '1.0',
        'ce-id': 'evt-9',
        'ce-source': '/pos/store-12',
        'ce-type': 'com.example.order.placed',
        'ce-time': '2026-12-06T10:00:00Z',
        'ce-region': 'north',
      },
    });
    expect(res.status).toBe(202);
    const instance = await s.store.getInstance(res.json.instanceId);
    expect(instance).toMatchObject({
      input: { orderId: 'C-3' },
      idempotencyKey: 'ce:/pos/store-12 evt-9',
      cloudEvent: { id: 'evt-9', source: '/pos/store-12', type: 'com.example.order.placed', subject: null },
    });
    // An explicit Idempotency-Key wins over the event's.
    const keyed = await s.request('/events/orders', {
      method: 'POST',
      json: { orderId: 'C-4' },
      headers: {
        'idempotency-key': 'mine',
        'ce-specversion': '1.0',
        'ce-id': 'evt-10',
        'ce-source': '/pos/store-12',
        'ce-type': 'com.example.order.placed',
      },
    });
    expect((await s.store.getInstance(keyed.json.instanceId))?.idempotencyKey).toBe('mine');
  });

  it('finds instances by type, source or subject in the API', async () => {
    const s = await start(false);
    const placed = (await post(s, event())).json.instanceId;
    const cancelled = (
      await post(s, event({ id: 'evt-2', type: 'com.example.order.cancelled', subject: 'A-9' }))
    ).json.instanceId;
    await s.request('/events/orders', { method: 'POST', json: { orderId: 'plain' } });
    const ids = async (query: string) =>
      (await s.request(`/api/instances?cloudEvent=${encodeURIComponent(query)}`)).json.items.map(
        (i: { id: string }) => i.id,
      );
    expect(await ids('com.example.order.cancelled')).toEqual([cancelled]);
    expect(await ids('https://shop.example/orders')).toEqual([cancelled, placed]);
    expect(await ids('A-1')).toEqual([placed]);
    expect(await ids('subject=A-9')).toEqual([cancelled]);
    expect(await ids('type=A-9')).toEqual([]);
    expect(await ids('source=https://shop.example/orders')).toEqual([cancelled, placed]);
    const list = await s.request('/api/instances?integration=order-placed');
    expect(list.json.items.map((i: { cloudEvent?: { type: string } }) => i.cloudEvent?.type ?? null)).toEqual(
      [null, 'com.example.order.cancelled', 'com.example.order.placed'],
    );
  });

  it('refuses an invalid CloudEvent with problem+json naming the fault, storing nothing', async () => {
    const s = await start(false);
    const before = await stored(s);
    const refused = async (
      body: unknown,
      headers: Record<string, string> = {},
    ): Promise<{ status: number; type: string; errors: { in: string; path: string }[] }> => {
      const res = await post(s, body, headers);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      return { status: res.status, type: res.json.type, errors: res.json.errors };
    };
    const invalid = (errors: { in: string; path: string }[]) => ({
      status: 400,
      type: 'urn:tandem:error:invalid-cloudevent',
      errors: errors.map((e) => expect.objectContaining(e)),
    });
    const { id: _id, ...withoutId } = event();
    expect(await refused(withoutId)).toEqual(invalid([{ in: 'body', path: 'id' }]));
    const { type: _type, source: _source, ...bare } = event();
    expect(await refused(bare)).toEqual(
      invalid([
        { in: 'body', path: 'source' },
        { in: 'body', path: 'type' },
      ]),
    );
    // An empty id would be replaced by a random one (the SDK's default): refused instead.
    expect(await refused(event({ id: '' }))).toEqual(invalid([{ in: 'body', path: 'id' }]));
    expect(await refused(event({ id: 7, subject: '' }))).toEqual(
      invalid([
        { in: 'body', path: 'id' },
        { in: 'body', path: 'subject' },
      ]),
    );
    expect(await refused(event({ specversion: '0.3' }))).toEqual(
      invalid([{ in: 'body', path: 'specversion' }]),
    );
    expect(await refused(event({ source: 'not a uri' }))).toEqual(invalid([{ in: 'body', path: 'source' }]));
    expect(await refused(event({ time: 'yesterday' }))).toEqual(invalid([{ in: 'body', path: 'time' }]));
    expect(await refused(event({ Region: 'north' }))).toEqual(invalid([{ in: 'body', path: '' }]));
    expect(await refused(event({ id: 'x'.repeat(256) }))).toEqual(invalid([{ in: 'body', path: 'id' }]));
    expect(await refused(event({ id: 'a\u0000b' }))).toEqual(invalid([{ in: 'body', path: 'id' }]));
    expect(await refused(event({ data: undefined, data_base64: 'e30=' }))).toEqual(
      invalid([{ in: 'body', path: 'data_base64' }]),
    );
    expect(await refused([event()])).toEqual(invalid([{ in: 'body', path: '' }]));
    // The data is the input: a schema violation names the field under `data`.
    expect(await refused(event({ data: { orderId: 7 } }))).toEqual({
      status: 400,
      type: 'urn:tandem:error:invalid-input',
      errors: [expect.objectContaining({ in: 'body', path: 'data.orderId' })],
    });
    // Binary mode: the attributes are headers.
    const binary = await s.request('/events/orders', {
      method: 'POST',
      json: { orderId: 'D-1' },
      headers: { 'ce-specversion': '1.0', 'ce-id': 'evt-1', 'ce-source': '/pos' },
    });
    expect(binary.status).toBe(400);
    expect(binary.json.errors).toEqual([expect.objectContaining({ in: 'header', path: 'ce-type' })]);
    const emptyId = await s.request('/events/orders', {
      method: 'POST',
      json: { orderId: 'D-1' },
      headers: { 'ce-specversion': '1.0', 'ce-id': '', 'ce-source': '/pos', 'ce-type': 't' },
    });
    expect(emptyId.json.errors).toEqual([expect.objectContaining({ in: 'header', path: 'ce-id' })]);
    const badSource = await s.request('/events/orders', {
      method: 'POST',
      json: { orderId: 'D-1' },
      headers: { 'ce-specversion': '1.0', 'ce-id': 'evt-1', 'ce-source': 'a b', 'ce-type': 't' },
    });
    expect(badSource.json.errors).toEqual([expect.objectContaining({ in: 'header', path: 'ce-source' })]);
    // Batch mode: one event, one instance.
    const batch = await post(s, [event()], { 'content-type': 'application/cloudevents-batch+json' });
    expect(batch.status).toBe(415);
    expect(batch.json.type).toBe('urn:tandem:error:unsupported-media-type');
    expect(await stored(s)).toEqual(before);
  });
});
