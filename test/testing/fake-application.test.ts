import { afterEach, describe, expect, it } from 'vitest';
import { type FakeApplication, fakeApplication } from '../../src/testing/index.js';

/** The fake application is a real server: these tests talk to it with fetch, as a connection would. */
describe('fakeApplication', () => {
  let app: FakeApplication | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('answers by route with parameters, fixed answers and JSON bodies, and records what it received', async () => {
    app = await fakeApplication({
      routes: {
        'GET /stock/:sku': ({ params, query }) => ({
          body: { sku: params.sku, warehouse: query.at ?? 'main' },
        }),
        'POST /reservations': { status: 201, body: { reservationId: 'R-1' } },
        'DELETE /reservations/:id': { status: 204 },
      },
    });
    const stock = await fetch(`${app.url}/stock/KB%2042?at=north`);
    expect(stock.status).toBe(200);
    expect(stock.headers.get('content-type')).toBe('application/json');
    expect(await stock.json()).toEqual({ sku: 'KB 42', warehouse: 'north' });

    const reserved = await fetch(`${app.url}/reservations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': 'i-1:reserve:0' },
      body: JSON.stringify({ sku: 'KB-42', qty: 2 }),
    });
    expect(reserved.status).toBe(201);
    expect(await reserved.json()).toEqual({ reservationId: 'R-1' });
    expect((await fetch(`${app.url}/reservations/R-1`, { method: 'DELETE' })).status).toBe(204);

    const unknown = await fetch(`${app.url}/nothing`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({ error: 'no route GET /nothing' });

    expect(app.count()).toBe(4);
    expect(app.count('POST /reservations')).toBe(1);
    const [received] = app.received('POST /reservations');
    expect(received).toMatchObject({
      method: 'POST',
      path: '/reservations',
      route: 'POST /reservations',
      idempotencyKey: 'i-1:reserve:0',
      body: { sku: 'KB-42', qty: 2 },
    });
    expect(received!.headers['content-type']).toBe('application/json');
    expect(app.received('DELETE /reservations/:id')[0]!.params).toEqual({ id: 'R-1' });
    expect(app.requests.at(-1)!.route).toBeNull();
  });

  it('fails the next N calls (of one route or any), with Retry-After, then answers as the route does', async () => {
    app = await fakeApplication({ routes: { 'GET /a': { body: 'a' }, 'GET /b': { body: 'b' } } });
    app.failNext(2, { route: 'GET /b', retryAfter: 30 }).failNext(1, { status: 500, body: { down: true } });
    const statuses: [number, string | null, string][] = [];
    for (const path of ['/a', '/b', '/b', '/b', '/a']) {
      const response = await fetch(`${app.url}${path}`);
      statuses.push([response.status, response.headers.get('retry-after'), await response.text()]);
    }
    expect(statuses).toEqual([
      [500, null, '{"down":true}'],
      [503, '30', '{"error":"scripted failure"}'],
      [503, '30', '{"error":"scripted failure"}'],
      [200, null, 'b'],
      [200, null, 'a'],
    ]);
  });

  it('answers slowly when told, and per-call with a handler function', async () => {
    app = await fakeApplication({ routes: { 'GET /quote': { body: { price: 1 } } } });
    let n = 0;
    app.slowNext(1, 300).answerNext(2, () => ({ body: { price: 100 + ++n } }), { route: 'GET /quote' });
    const started = performance.now();
    const slow = await fetch(`${app.url}/quote`);
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    expect(await slow.json()).toEqual({ price: 1 });
    const prices = [];
    for (let i = 0; i < 3; i++)
      prices.push(((await (await fetch(`${app.url}/quote`)).json()) as { price: number }).price);
    expect(prices).toEqual([101, 102, 1]);
  });

  it('answers 500 when a route handler throws, and stays up', async () => {
    app = await fakeApplication({
      routes: {
        'GET /boom': () => {
          throw new Error('kaputt');
        },
        'GET /ok': { body: 'ok' },
      },
    });
    const boom = await fetch(`${app.url}/boom`);
    expect(boom.status).toBe(500);
    expect(await boom.json()).toEqual({ error: 'kaputt' });
    expect(await (await fetch(`${app.url}/ok`)).text()).toBe('ok');
  });

  it('goes down (calls refused) and comes back on the same port; reset forgets requests and scripts', async () => {
    app = await fakeApplication({ routes: { 'GET /ok': { body: 'ok' } } });
    await app.down();
    await expect(fetch(`${app.url}/ok`)).rejects.toThrow();
    await app.up();
    expect(await (await fetch(`${app.url}/ok`)).text()).toBe('ok');
    app.failNext(5);
    app.reset();
    expect(app.count()).toBe(0);
    expect((await fetch(`${app.url}/ok`)).status).toBe(200);
  });

  it('refuses a malformed route or script', async () => {
    await expect(fakeApplication({ routes: { 'stock/:sku': { body: 1 } } })).rejects.toThrow(
      /must look like/,
    );
    app = await fakeApplication();
    expect(() => app!.failNext(0)).toThrow(/at least 1/);
  });
});
