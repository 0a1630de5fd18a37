/**
 * GET /api/integrations/:id/picture on both stores: the steps and waits in the order the runs take
 * them (a step only some runs take falls in its place), the connections each step calls, the
 * failures and the hand-off of a sync integration to the async one it starts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { httpConnection } from '../../src/connections/http.js';
import { defineIntegration } from '../../src/define/integration.js';
import { appServer } from '../support/app-server.js';
import { STORE_KINDS, waitForStatus } from '../support/engine.js';
import { type TestServer, testServer } from '../support/server.js';

describe.each(STORE_KINDS)('the picture of an integration (%s)', (storeKind) => {
  let target: Awaited<ReturnType<typeof appServer>>;
  let server: TestServer;

  beforeAll(async () => {
    target = await appServer((request, response) => {
      const status = request.url.startsWith('/fail') ? 500 : 200;
      response.writeHead(status, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
    const crm = httpConnection('crm', { baseUrl: target.url });
    const erp = httpConnection('erp', { baseUrl: target.url });
    const chain = defineIntegration({
      id: 'chain',
      mode: 'async',
      input: z.object({ extra: z.boolean(), fail: z.boolean() }),
      retry: { maxAttempts: 2, initialDelayMs: 10, maxDelayMs: 10 },
      async handler(ctx) {
        await ctx.step('first', () => ctx.call(crm, 'GET', '/ok'));
        if (ctx.input.extra) await ctx.step('extra', () => ctx.call(erp, 'GET', '/ok'));
        await ctx.step('second', async () => {
          await ctx.call(crm, 'GET', '/ok');
          return ctx.call(erp, 'GET', ctx.input.fail ? '/fail' : '/ok');
        });
        await ctx.sleep('pause', '20ms');
        await ctx.call(crm, 'GET', '/outside');
        return 'done';
      },
    });
    const child = defineIntegration({
      id: 'child',
      mode: 'async',
      input: z.object({ n: z.number() }),
      handler: (ctx) => ctx.step('work', () => ctx.input.n),
    });
    const front = defineIntegration({
      id: 'front',
      mode: 'sync',
      route: 'POST /front',
      input: z.object({ n: z.number() }),
      async handler(ctx) {
        await ctx.start(child, ctx.input);
        return { status: 201, body: { ok: true } };
      },
    });
    server = await testServer([chain, child, front], {}, { connections: [crm, erp], storeKind });
  });

  afterAll(async () => {
    await server?.close();
    await target?.close();
  });

  const run = async (input: unknown) => {
    const accepted = await server.request('/api/integrations/chain/run', { method: 'POST', json: input });
    expect(accepted.status).toBe(202);
    return waitForStatus(server.engine, accepted.json.instanceId);
  };

  it('draws the steps in order with their connections and figures', async () => {
    expect((await run({ extra: false, fail: false })).status).toBe('succeeded');
    expect((await run({ extra: true, fail: false })).status).toBe('succeeded');
    expect((await run({ extra: false, fail: true })).status).toBe('failed');
    const { status, json } = await server.request('/api/integrations/chain/picture');
    expect(status).toBe(200);
    expect(json).toMatchObject({
      integrationId: 'chain',
      mode: 'async',
      pattern: 'async',
      triggers: [{ type: 'api' }],
      children: [],
      recent: { limit: 50, instances: 3, runs: 3 },
      advice: [],
    });
    const steps = Object.fromEntries(json.steps.map((s: any) => [s.name, s]));
    expect(json.steps.map((s: any) => s.name)).toEqual(['first', 'extra', 'second', 'pause']);
    expect(steps.first).toMatchObject({
      kind: 'step',
      instances: 3,
      executions: 3,
      failures: 0,
      failureShare: 0,
      connections: [{ id: 'crm', calls: 3, failures: 0 }],
    });
    expect(steps.extra).toMatchObject({
      instances: 1,
      executions: 1,
      connections: [{ id: 'erp', calls: 1, failures: 0 }],
    });
    // The failing run tried `second` twice: two of its four executions failed, on erp.
    expect(steps.second).toMatchObject({
      instances: 3,
      executions: 4,
      failures: 2,
      failureShare: 0.5,
      connections: [
        { id: 'crm', calls: 4, failures: 0 },
        { id: 'erp', calls: 4, failures: 2 },
      ],
    });
    expect(steps.second.p50).toBeGreaterThanOrEqual(0);
    expect(steps.second.p95).toBeGreaterThanOrEqual(steps.second.p50);
    // The sleep is a wait: reached by the two runs that got past `second`, each waited 20 ms or more.
    expect(steps.pause).toMatchObject({
      kind: 'wait',
      waitKind: 'sleep',
      instances: 2,
      executions: 2,
      failures: 0,
    });
    expect(steps.pause.p50).toBeGreaterThanOrEqual(20);
    expect(json.outsideSteps).toEqual([{ id: 'crm', calls: 2, failures: 0 }]);
  });

  it('draws a sync integration that starts async work as a hand-off, and the child as started by it', async () => {
    for (const n of [1, 2]) {
      expect((await server.request('/front', { method: 'POST', json: { n } })).status).toBe(201);
    }
    const front = await waitForPicture('front', (p) => p.recent.instances === 2);
    expect(front).toMatchObject({
      pattern: 'sync-to-async',
      triggers: [{ type: 'http', method: 'POST', path: '/front', auth: null }],
      children: [{ integrationId: 'child', mode: 'async', instances: 2, parents: 2 }],
      steps: [],
    });
    const child = await waitForPicture('child', (p) => p.steps[0]?.executions === 2);
    expect(child.triggers).toEqual([
      { type: 'api' },
      { type: 'parent', integrationId: 'front', instances: 2 },
    ]);
    expect(child.pattern).toBe('async');
  });

  it('answers an unknown integration with 404 unknown-integration', async () => {
    const { status, json, headers } = await server.request('/api/integrations/nope/picture');
    expect(status).toBe(404);
    expect(headers.get('content-type')).toContain('application/problem+json');
    expect(json.type).toBe('urn:tandem:error:unknown-integration');
  });

  async function waitForPicture(id: string, ready: (picture: any) => boolean) {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const { json } = await server.request(`/api/integrations/${id}/picture`);
      if (ready(json)) return json;
      if (Date.now() > deadline) throw new Error(`picture of ${id}: ${JSON.stringify(json)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
});
