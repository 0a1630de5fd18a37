import { describe, expect, it } from 'vitest';
import { type AnyIntegration, defineIntegration } from '../../src/define/integration.js';
import { buildApp } from '../../src/server/app.js';
import { testEngine } from '../support/engine.js';

async function buildWith(integrations: AnyIntegration[]) {
  const t = await testEngine(integrations, { worker: false });
  try {
    const app = await buildApp({ engine: t.engine, adminToken: null });
    await app.close();
  } finally {
    await t.close();
  }
}

const sync = (id: string, route: string) => defineIntegration({ id, mode: 'sync', route, handler: () => 1 });

describe('trigger routes at start', () => {
  it.each([
    ['/api', 'GET /api'],
    ['/api', 'POST /api/orders'],
    ['/console', 'GET /console/index.html'],
    ['/metrics', 'GET /metrics'],
    ['/healthz', 'GET /healthz'],
    ['/openapi.json', 'GET /openapi.json'],
    ['/api', 'GET /API/orders'],
  ])('refuses a route under %s (%s) with a clear error', async (prefix, route) => {
    await expect(buildWith([sync('sneaky', route)])).rejects.toThrow(
      `is under "${prefix}", which Tandem reserves for itself`,
    );
  });

  it('accepts paths that only look alike', async () => {
    await expect(
      buildWith([sync('a', 'GET /apis'), sync('b', 'GET /healthz-report')]),
    ).resolves.toBeUndefined();
  });

  it('refuses a route starting with a parameter, and two integrations on one route', async () => {
    await expect(buildWith([sync('catch-all', 'GET /:anything')])).rejects.toThrow(/starts with a parameter/);
    await expect(
      buildWith([sync('one', 'GET /orders/:id'), sync('two', 'GET /orders/:orderId')]),
    ).rejects.toThrow('Integrations "one" and "two" both use the route GET /orders/:orderId');
  });

  it('refuses malformed routes and auth when the integration is defined', () => {
    expect(() => sync('x', 'FETCH /orders')).toThrow(/method FETCH/);
    expect(() => sync('x', 'GET orders')).toThrow(/must look like/);
    expect(() => sync('x', 'GET /orders/*')).toThrow(/not a literal or a :name parameter/);
    expect(() =>
      defineIntegration({ id: 'x', mode: 'async', route: 'POST /orders/:id', handler: () => 1 }),
    ).toThrow(/path parameters are for sync routes/);
    expect(() =>
      defineIntegration({ id: 'x', mode: 'async', auth: { type: 'api-key', keys: ['k'] }, handler: () => 1 }),
    ).toThrow(/auth needs a route/);
    expect(() =>
      defineIntegration({
        id: 'x',
        mode: 'async',
        route: 'POST /x',
        auth: { type: 'api-key', keys: [process.env.UNSET_KEY_FOR_TEST as string] },
        handler: () => 1,
      }),
    ).toThrow(/is an environment variable unset/);
    expect(() =>
      defineIntegration({
        id: 'x',
        mode: 'async',
        route: 'POST /x',
        auth: { type: 'standard-webhooks', secret: 'whsec_not base64!' },
        handler: () => 1,
      }),
    ).toThrow(/Standard Webhooks secret/);
  });
});
