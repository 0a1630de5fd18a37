/**
 * A value no store can hold as text (a NUL character, half of a surrogate pair) that a sync handler
 * hands off as a tracking value or ordering key is the request's fault, as on an async trigger: a 400
 * naming the field, not a 500 `handler-failed`, and the follow-up is not stored.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import { STORE_KINDS } from '../support/engine.js';
import { type TestServer, testServer } from '../support/server.js';

const order = z.object({ orderId: z.string(), customer: z.string() });
const fulfil = defineIntegration({
  id: 'fulfil',
  mode: 'async',
  route: 'POST /fulfil',
  input: order,
  track: { orderId: 'orderId' },
  orderingKey: 'customer',
  handler: () => null,
});
const place = defineIntegration({
  id: 'place',
  mode: 'sync',
  route: 'POST /orders',
  input: order,
  async handler(ctx) {
    await ctx.start(fulfil, ctx.input);
    return { status: 201, body: { orderId: ctx.input.orderId } };
  },
});
const placeMany = defineIntegration({
  id: 'place-many',
  mode: 'sync',
  route: 'POST /order-batches',
  input: z.object({ orders: z.array(order) }),
  async handler(ctx) {
    await ctx.startMany(fulfil, ctx.input.orders);
    return { status: 201, body: { count: ctx.input.orders.length } };
  },
});

let server: TestServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

// JSON escapes: the body is valid JSON in UTF-8, the values are not storable text.
const NUL = 'a\\u0000b';
const HALF = 'a\\ud800b';

describe.each(STORE_KINDS)('a hand-off with text no store can hold (%s store)', (storeKind) => {
  it('answers 400 naming the field on sync routes, like async triggers; stores no follow-up', async () => {
    server = await testServer([fulfil, place, placeMany], {}, { storeKind, worker: false });
    const post = (path: string, body: string) =>
      server!.request(path, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    const cases: [string, string, string][] = [
      ['/orders', `{"orderId":"${NUL}","customer":"c-1"}`, 'orderId'],
      ['/orders', `{"orderId":"${HALF}","customer":"c-1"}`, 'orderId'],
      ['/orders', `{"orderId":"o-1","customer":"${NUL}"}`, 'customer'],
      [
        '/order-batches',
        `{"orders":[{"orderId":"o-2","customer":"c"},{"orderId":"${NUL}","customer":"c"}]}`,
        'orderId',
      ],
      ['/fulfil', `{"orderId":"${NUL}","customer":"c-1"}`, 'orderId'],
    ];
    const answers = [];
    for (const [path, body, field] of cases) {
      const res = await post(path, body);
      answers.push({
        path,
        status: res.status,
        problem: res.headers.get('content-type')?.startsWith('application/problem+json'),
        type: res.json?.type,
        paths: res.json?.errors?.map((e: { path: string }) => e.path),
        names: String(res.json?.detail).includes(`"${field}"`) || String(res.json?.detail).includes(field),
      });
    }
    expect(answers).toEqual(
      cases.map(([path, , field]) => ({
        path,
        status: 400,
        problem: true,
        type: 'urn:tandem:error:invalid-input',
        paths: [field],
        names: true,
      })),
    );
    expect(await server.store.countInstances({ integrationId: 'fulfil' })).toBe(0);
    // The same order with storable text is placed and handed off.
    const placed = await post('/orders', '{"orderId":"o-3","customer":"c-1"}');
    expect(placed.status).toBe(201);
    expect(await server.store.countInstances({ integrationId: 'fulfil' })).toBe(1);
  });
});
