/**
 * The errors view that leads to action, through the real API: failures grouped by integration,
 * code, step and connection with example messages; whether a group can be rerun and why not;
 * acknowledging one instance or whole groups (and taking it back); bulk reruns that list every
 * refusal with its reason; and bad input refused as problem+json with nothing stored.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { httpConnection } from '../../src/connections/http.js';
import { defineIntegration } from '../../src/define/integration.js';
import { NonRetryableError } from '../../src/errors.js';
import { appServer } from '../support/app-server.js';
import { waitForStatus } from '../support/engine.js';
import { type TestServer, testServer } from '../support/server.js';
import { waitFor } from '../support/wait.js';

let target: Awaited<ReturnType<typeof appServer>>;
let server: TestServer;

beforeAll(async () => {
  target = await appServer((request, response) => {
    const status = request.url.startsWith('/down') ? 503 : 200;
    response.writeHead(status, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
  // No circuit: every call reaches the application, so each failure is an http-error.
  const inventory = httpConnection('inventory', { baseUrl: target.url, circuit: false });
  const reserve = defineIntegration({
    id: 'reserve',
    mode: 'async',
    input: z.object({ sku: z.string() }),
    retry: { maxAttempts: 1 },
    handler: async (ctx) => {
      await ctx.step('check', () => 'ok');
      return ctx.step('update-inventory', () => ctx.call(inventory, 'GET', `/down/${ctx.input.sku}`));
    },
  });
  const refuse = defineIntegration({
    id: 'refuse',
    mode: 'async',
    input: z.object({ reason: z.string() }),
    handler: (ctx) => {
      throw new NonRetryableError(ctx.input.reason);
    },
  });
  const stock = defineIntegration({
    id: 'stock',
    mode: 'sync',
    route: 'GET /stock/:sku',
    params: z.object({ sku: z.string() }),
    handler: async (ctx) => ({
      body: await ctx.call(inventory, 'GET', `/down/${ctx.params.sku}`),
    }),
  });
  const fine = defineIntegration({ id: 'fine', mode: 'async', handler: async () => 'done' });
  server = await testServer([reserve, refuse, stock, fine], {}, { connections: [inventory] });
});

afterAll(async () => {
  await server?.close();
  await target?.close();
});

const get = (path: string) => server.request(path);
const post = (path: string, json?: unknown) =>
  server.request(path, { method: 'POST', ...(json === undefined ? {} : { json }) });
const run = async (integration: string, input: unknown) => {
  const accepted = await post(`/api/integrations/${integration}/run`, input);
  expect(accepted.status).toBe(202);
  return waitForStatus(server.engine, accepted.json.instanceId);
};
const groups = async (query = '') => (await get(`/api/errors${query}`)).json.groups as any[];

describe('errors that lead to action', () => {
  let reserves: string[];
  let refusals: string[];
  let syncIds: string[];

  beforeAll(async () => {
    reserves = [];
    for (const sku of ['A', 'B', 'C']) reserves.push((await run('reserve', { sku })).id);
    refusals = [
      (await run('refuse', { reason: 'no such customer 17' })).id,
      (await run('refuse', { reason: 'no such customer 18' })).id,
      (await run('refuse', { reason: 'card declined' })).id,
    ];
    for (const sku of ['A', 'B']) expect((await fetch(`${server.url}/stock/${sku}`)).status).toBe(502);
    await waitFor(
      async () => (await server.engine.countInstances({ integrationId: 'stock' })) === 2,
      'sync records',
    );
    syncIds = (await server.engine.listInstances({ integrationId: 'stock', limit: 10 })).items.map(
      (i) => i.id,
    );
  });

  it('groups by integration, code, step and connection, with messages as examples', async () => {
    const all = await groups();
    const reserve = all.find((g) => g.integrationId === 'reserve');
    expect(reserve).toMatchObject({
      mode: 'async',
      code: 'http-error',
      codes: { 'http-error': 3 },
      step: 'update-inventory',
      connection: 'inventory',
      count: 3,
      acknowledged: 0,
      rerun: { possible: true, reason: null },
    });
    expect([...reserve.instanceIds].sort()).toEqual([...reserves].sort());
    // Three messages that differ only by the SKU in the URL... are three examples (letters differ).
    expect(reserve.examples.length).toBeGreaterThanOrEqual(1);

    const refuse = all.filter((g) => g.integrationId === 'refuse');
    expect(refuse).toHaveLength(1);
    expect(refuse[0]).toMatchObject({ code: 'non-retryable', step: null, connection: null, count: 3 });
    // Messages that differ by a number are one example; another message is another.
    expect(refuse[0].examples.map((e: any) => [e.message, e.count])).toEqual([
      ['no such customer 18', 2],
      ['card declined', 1],
    ]);

    const stock = all.find((g) => g.integrationId === 'stock');
    expect(stock).toMatchObject({ mode: 'sync', code: 'http-error', connection: 'inventory', count: 2 });
    expect(stock.rerun.possible).toBe(false);
    expect(stock.rerun.reason).toMatch(/never rerun.*already had its answer/);
  });

  it('acknowledges one instance: shown in the instance API, an event, out of the default view, and back', async () => {
    const id = refusals[2]!;
    const acknowledged = await post(`/api/instances/${id}/acknowledge`, { note: 'customer told' });
    expect(acknowledged.status).toBe(200);
    expect(acknowledged.json).toMatchObject({ instanceId: id, acknowledgedNote: 'customer told' });
    const detail = (await get(`/api/instances/${id}`)).json;
    expect(detail.instance.acknowledgedAt).toBe(acknowledged.json.acknowledgedAt);
    expect(detail.instance.acknowledgedNote).toBe('customer told');
    expect(detail.events.at(-1)).toMatchObject({ type: 'acknowledged', data: { note: 'customer told' } });

    const refuse = () => groups().then((all) => all.find((g) => g.integrationId === 'refuse'));
    expect((await refuse()).count).toBe(2);
    expect((await refuse()).instanceIds).not.toContain(id);
    const shown = (await groups('?acknowledged=show')).find((g) => g.integrationId === 'refuse');
    expect(shown).toMatchObject({ count: 3, acknowledged: 1 });
    const only = await groups('?acknowledged=only');
    expect(only.map((g) => [g.integrationId, g.instanceIds])).toEqual([['refuse', [id]]]);

    const undone = await post(`/api/instances/${id}/unacknowledge`);
    expect(undone.json).toEqual({ instanceId: id, acknowledgedAt: null, acknowledgedNote: null });
    expect((await get(`/api/instances/${id}`)).json.events.at(-1).type).toBe('unacknowledged');
    expect((await refuse()).count).toBe(3);
  });

  it('reruns listed instances, refusing each sync, unfinished or unknown one with its reason', async () => {
    const answer = await post('/api/instances/rerun', {
      ids: [syncIds[0], 'no-such-instance', reserves[0]],
    });
    expect(answer.status).toBe(200);
    expect(answer.json.count).toBe(1);
    expect(answer.json.refused).toEqual([
      {
        instanceId: syncIds[0],
        code: 'invalid-state',
        reason: expect.stringMatching(/^A sync instance is never rerun/),
        status: 'failed',
      },
      {
        instanceId: 'no-such-instance',
        code: 'instance-not-found',
        reason: 'No instance has this id',
        status: null,
      },
    ]);
    await waitForStatus(server.engine, reserves[0]!);

    // By filter: the sync failures matched are listed as refused, not passed over in silence.
    const byFilter = await post('/api/instances/rerun', {
      filter: { integration: 'stock', status: 'failed' },
    });
    expect(byFilter.json.count).toBe(0);
    expect(byFilter.json.refused.map((r: any) => r.instanceId).sort()).toEqual([...syncIds].sort());

    // A single sync rerun says why.
    const one = await post(`/api/instances/${syncIds[0]}/rerun`, {});
    expect(one.status).toBe(409);
    expect(one.json.detail).toMatch(/sync instance is never rerun/);
  });

  it('acknowledges whole groups by key until the default view is empty, and a rerun brings a failure back', async () => {
    const keys = (await groups()).map((g) => g.key);
    expect(keys.length).toBeGreaterThanOrEqual(3);
    const failed = await server.engine.countInstances({ status: 'failed', acknowledged: false });
    const answer = await post('/api/errors/acknowledge', { keys, note: 'outage over' });
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ count: failed, refused: [] });
    expect(await groups()).toEqual([]);
    const all = await groups('?acknowledged=show');
    expect(all.reduce((n, g) => n + g.count, 0)).toBe(failed);
    expect(all.every((g) => g.acknowledged === g.count)).toBe(true);

    // A rerun clears the acknowledgement: its new failure shows again.
    const reserve = all.find((g) => g.integrationId === 'reserve');
    const id = reserve.instanceIds[0];
    expect((await post(`/api/instances/${id}/rerun`, {})).status).toBe(200);
    expect((await get(`/api/instances/${id}`)).json.instance.acknowledgedAt).toBeNull();
    await waitFor(
      async () => (await server.engine.getInstance(id)).status === 'failed',
      'the rerun to fail again',
    );
    expect((await groups()).map((g) => [g.integrationId, g.instanceIds])).toEqual([['reserve', [id]]]);

    // Taken back by key (acknowledged: false), and listed ids that are not failed are refused.
    const back = await post('/api/errors/acknowledge', {
      keys: all.filter((g) => g.integrationId === 'stock').map((g) => g.key),
      acknowledged: false,
    });
    expect(back.json.count).toBe(2);
    const queued = await post('/api/integrations/reserve/run', { sku: 'Z' });
    const refused = await post('/api/errors/acknowledge', { ids: [queued.json.instanceId, 'nope'] });
    expect(refused.json.count).toBe(0);
    expect(refused.json.refused.map((r: any) => [r.instanceId, r.code])).toEqual([
      [queued.json.instanceId, 'invalid-state'],
      ['nope', 'instance-not-found'],
    ]);
    await waitForStatus(server.engine, queued.json.instanceId);
  });

  it('refuses bad input with problem+json and stores nothing', async () => {
    const id = refusals[0]!;
    const before = server.counts();
    const stateBefore = await server.engine.getInstance(id);
    const bad: [string, string, unknown][] = [
      ['POST', `/api/instances/${id}/acknowledge`, { note: 42 }],
      ['POST', `/api/instances/${id}/acknowledge`, { note: 'x'.repeat(501) }],
      ['POST', `/api/instances/${id}/acknowledge`, { note: 'ok', extra: true }],
      ['POST', `/api/instances/${id}/acknowledge`, []],
      ['POST', '/api/errors/acknowledge', {}],
      ['POST', '/api/errors/acknowledge', { keys: ['a'], ids: [id] }],
      ['POST', '/api/errors/acknowledge', { keys: [] }],
      ['POST', '/api/errors/acknowledge', { ids: [id], acknowledged: 'yes' }],
      ['POST', '/api/instances/rerun', { ids: [id], filter: { integration: 'refuse' } }],
      ['POST', '/api/instances/rerun', { ids: [] }],
      ['POST', '/api/instances/rerun', {}],
      ['GET', '/api/errors?acknowledged=maybe', undefined],
    ];
    for (const [method, path, json] of bad) {
      const answer = await server.request(path, { method, ...(json === undefined ? {} : { json }) });
      expect(answer.status, `${method} ${path} ${JSON.stringify(json)}`).toBe(400);
      expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(answer.json.type).toMatch(/^urn:tandem:error:/);
    }
    const missing = await post('/api/instances/no-such/acknowledge', {});
    expect(missing.status).toBe(404);
    expect(missing.json.type).toBe('urn:tandem:error:instance-not-found');
    expect(server.counts()).toEqual(before);
    expect(await server.engine.getInstance(id)).toEqual(stateBefore);

    // An instance that has not failed: 409, and nothing changes.
    const succeeded = await run('fine', {});
    expect(succeeded.status).toBe('succeeded');
    const counts = server.counts();
    const refused = await post(`/api/instances/${succeeded.id}/acknowledge`, {});
    expect(refused.status).toBe(409);
    expect(refused.json).toMatchObject({ type: 'urn:tandem:error:invalid-state' });
    expect(refused.json.detail).toMatch(/only a failed instance can be acknowledged/);
    expect(server.counts()).toEqual(counts);
    expect(await server.engine.getInstance(succeeded.id)).toEqual(succeeded);
  });
});
