/**
 * The overview's stored figures (GET /api/overview) and running an integration from the console
 * (its input as JSON Schema, a sync call as its route would make it, the console's mark on what it
 * starts), on both stores.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import { NonRetryableError } from '../../src/errors.js';
import type { Instance } from '../../src/model.js';
import { STORE_KINDS, waitForStatus } from '../support/engine.js';
import { type TestServer, testServer } from '../support/server.js';
import { waitFor } from '../support/wait.js';

const greet = defineIntegration({
  id: 'greet',
  mode: 'async',
  input: z.object({ name: z.string().min(1), times: z.number().int().positive().default(1) }),
  handler: async (ctx) => {
    if (ctx.input.name === 'fail') throw new NonRetryableError('refused');
    await new Promise((resolve) => setTimeout(resolve, ctx.input.times));
    return `hello ${ctx.input.name}`;
  },
});
const quote = defineIntegration({
  id: 'quote',
  mode: 'sync',
  route: 'GET /quotes/:sku',
  params: z.object({ sku: z.string().regex(/^[A-Z]+-\d+$/) }),
  query: z.object({ currency: z.string().default('EUR') }),
  handler: (ctx) => {
    if (ctx.params.sku === 'BAD-1') throw new Error('no price');
    return {
      status: 201,
      headers: { 'x-quote': 'yes' },
      body: { sku: ctx.params.sku, currency: ctx.query.currency },
    };
  },
});
const nightly = defineIntegration({
  id: 'nightly',
  mode: 'scheduled',
  cron: '0 0 2 * * *',
  parameters: { file: 'orders.csv', limit: 10 },
  handler: () => 'done',
});

describe.each(STORE_KINDS)('overview and run from the console (%s)', (storeKind) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await testServer([greet, quote, nightly], {}, { storeKind });
  });
  afterAll(async () => {
    await server?.close();
  });

  const all = async (query = '') => {
    const items: Instance[] = [];
    let cursor: string | null = null;
    do {
      const page = await server.request(
        `/api/instances?limit=1000${query}${cursor ? `&cursor=${cursor}` : ''}`,
      );
      items.push(...page.json.items);
      cursor = page.json.nextCursor;
    } while (cursor);
    return items;
  };

  it('answers stored figures per minute that equal a count of the instances, and the unfinished work', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      const name = i % 4 === 0 ? 'fail' : `n${i}`;
      const response = await server.request('/api/integrations/greet/run', {
        method: 'POST',
        json: { name, times: i + 1 },
      });
      expect(response.status).toBe(202);
      ids.push(response.json.instanceId);
    }
    for (let i = 0; i < 3; i++) await server.request(`/quotes/Q-${i}`);
    for (const id of ids) await waitForStatus(server.engine, id);
    // Sync records are written off the response path.
    await waitFor(async () => (await server.engine.countInstances({})) === 15, 'the sync records');
    const answer = (await server.request('/api/overview')).json;
    expect(answer).toMatchObject({
      window: 'hour',
      bucketMs: 60_000,
      backlog: 0,
      running: 0,
      oldestUnfinished: null,
    });
    expect(answer.buckets).toHaveLength(60);
    expect(answer.since % 60_000).toBe(0);
    const instances = await all();
    for (const bucket of answer.buckets) {
      const mine = instances.filter(
        (i) => i.createdAt >= bucket.start && i.createdAt < bucket.start + 60_000,
      );
      const durations = mine
        .filter((i) => i.status === 'succeeded' || i.status === 'failed')
        .map((i) => i.durationMs!)
        .sort((a, b) => a - b);
      expect(bucket).toEqual({
        start: bucket.start,
        accepted: mine.length,
        succeeded: mine.filter((i) => i.status === 'succeeded').length,
        failed: mine.filter((i) => i.status === 'failed').length,
        p95: durations.length === 0 ? null : durations[Math.ceil(0.95 * durations.length) - 1],
      });
    }
    const total = answer.buckets.reduce((sum: number, b: { accepted: number }) => sum + b.accepted, 0);
    expect(total).toBe(15);
    expect(answer.buckets.reduce((sum: number, b: { failed: number }) => sum + b.failed, 0)).toBe(3);
    const day = (await server.request('/api/overview?window=day')).json;
    expect(day.buckets).toHaveLength(24);
    expect(day.buckets.reduce((sum: number, b: { accepted: number }) => sum + b.accepted, 0)).toBe(15);
    const bad = await server.request('/api/overview?window=week');
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toContain('application/problem+json');
  });

  it('names the oldest unfinished instance and counts the backlog', async () => {
    const later = await server.engine.accept('greet', { name: 'later' }, { runAt: Date.now() + 600_000 });
    const answer = (await server.request('/api/overview')).json;
    expect(answer.queued).toBe(1);
    expect(answer.backlog).toBe(0);
    expect(answer.oldestUnfinished).toMatchObject({
      id: later.instanceId,
      integrationId: 'greet',
      status: 'queued',
    });
    expect(answer.oldestUnfinished.ageMs).toBeGreaterThanOrEqual(0);
    await server.request(`/api/instances/${later.instanceId}/cancel`, { method: 'POST' });
  });

  it("exposes each integration's input as JSON Schema and the body it is run with", async () => {
    const async = (await server.request('/api/integrations/greet/input')).json;
    expect(async).toMatchObject({
      integrationId: 'greet',
      mode: 'async',
      input: { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 1 } } },
    });
    expect(async.body).toEqual(async.input);
    const scheduled = (await server.request('/api/integrations/nightly/input')).json;
    expect(scheduled.body.properties.parameters.properties).toEqual({
      file: { type: 'string', default: 'orders.csv' },
      limit: { type: 'number', default: 10 },
    });
    const sync = (await server.request('/api/integrations/quote/input')).json;
    expect(sync.input).toBeNull();
    expect(sync.body).toMatchObject({
      required: ['params'],
      properties: { params: { properties: { sku: { type: 'string' } } }, query: { type: 'object' } },
    });
    expect((await server.request('/api/integrations/nope/input')).status).toBe(404);
  });

  it('starts an async instance marked as started from the console; bad input stores nothing', async () => {
    const started = await server.request('/api/integrations/greet/run?source=console', {
      method: 'POST',
      json: { name: 'Ada' },
    });
    expect(started.status).toBe(202);
    await waitForStatus(server.engine, started.json.instanceId);
    const detail = (await server.request(`/api/instances/${started.json.instanceId}`)).json;
    expect(detail.instance.status).toBe('succeeded');
    expect(detail.events[0]).toMatchObject({ type: 'accepted', data: { source: 'console' } });
    const before = await server.engine.countInstances({});
    const bad = await server.request('/api/integrations/greet/run?source=console', {
      method: 'POST',
      json: { name: '' },
    });
    expect(bad.status).toBe(400);
    expect(bad.json.errors).toEqual([expect.objectContaining({ in: 'body', path: 'name' })]);
    const wrongSource = await server.request('/api/integrations/greet/run?source=cli', {
      method: 'POST',
      json: { name: 'x' },
    });
    expect(wrongSource.status).toBe(400);
    expect(await server.engine.countInstances({})).toBe(before);
  });

  it('calls a sync integration as its route would: status, headers, body and a recorded instance', async () => {
    const call = await server.request('/api/integrations/quote/call?source=console', {
      method: 'POST',
      json: { params: { sku: 'KB-42' }, query: { currency: 'USD' } },
    });
    expect(call.status).toBe(200);
    expect(call.json).toMatchObject({
      status: 201,
      contentType: 'application/json',
      headers: { 'x-quote': 'yes' },
      body: { sku: 'KB-42', currency: 'USD' },
    });
    const detail = (await server.request(`/api/instances/${call.json.instanceId}`)).json;
    expect(detail.instance).toMatchObject({ integrationId: 'quote', mode: 'sync', status: 'succeeded' });
    expect(detail.events).toEqual([
      expect.objectContaining({
        type: 'accepted',
        data: { source: 'console', actor: { role: 'admin', tokenName: null } },
      }),
    ]);
    // The route itself answers the same.
    const direct = await server.request('/quotes/KB-42?currency=USD');
    expect([direct.status, direct.json]).toEqual([call.json.status, call.json.body]);

    const failed = await server.request('/api/integrations/quote/call', {
      method: 'POST',
      json: { params: { sku: 'BAD-1' } },
    });
    expect(failed.json).toMatchObject({
      status: 500,
      contentType: expect.stringContaining('application/problem+json'),
      body: { type: 'urn:tandem:error:handler-failed', status: 500, instanceId: failed.json.instanceId },
    });
    expect((await server.request(`/api/instances/${failed.json.instanceId}`)).json.instance.status).toBe(
      'failed',
    );

    const before = await server.engine.countInstances({});
    const bad = await server.request('/api/integrations/quote/call', {
      method: 'POST',
      json: { params: { sku: 'lower' } },
    });
    expect(bad.status).toBe(400);
    expect(bad.json.errors).toEqual([expect.objectContaining({ in: 'body', path: 'params.sku' })]);
    const missing = await server.request('/api/integrations/quote/call', { method: 'POST', json: {} });
    expect(missing.status).toBe(400);
    expect(missing.json.errors[0].path).toMatch(/^params/);
    const notSync = await server.request('/api/integrations/greet/call', {
      method: 'POST',
      json: { input: { name: 'x' } },
    });
    expect(notSync.status).toBe(409);
    expect((await server.request('/api/integrations/nope/call', { method: 'POST', json: {} })).status).toBe(
      404,
    );
    // A refused call would have been recorded within the recorder's flush interval (200 ms).
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await server.engine.countInstances({})).toBe(before);
  });
});
