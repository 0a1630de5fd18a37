/**
 * `GET /api/instances/:id` over a real server and store: a fan-out parent shows its children's
 * progress and says it waits for them (its timeline draws the checks as waits for children, not as
 * failures); an instance held by its ordering key names the failed instance that holds it; a
 * finished instance's timeline accounts for the time from acceptance to its end.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import { Engine } from '../../src/engine/engine.js';
import { NonRetryableError } from '../../src/errors.js';
import type { ApiResponse } from '../../src/server/api/routes.js';
import { quietLogger, STORE_KINDS, waitForStatus } from '../support/engine.js';
import { type TestServer, testServer } from '../support/server.js';
import { waitFor } from '../support/wait.js';

type Detail = ApiResponse<'getInstance'>;

const line = defineIntegration({
  id: 'apply-line',
  mode: 'async',
  input: z.object({ n: z.number() }),
  handler: (ctx) => ctx.input.n,
});
const file = defineIntegration({
  id: 'apply-file',
  mode: 'async',
  handler: (ctx) =>
    ctx.startMany(line, [{ n: 1 }, { n: 2 }, { n: 3 }], { await: 'children', checkEveryMs: 30 }),
});
const quote = defineIntegration({
  id: 'quote',
  mode: 'sync',
  route: 'POST /quotes',
  input: z.object({ n: z.number() }),
  handler: async (ctx) => ({ status: 200, body: { price: ctx.input.n * 2 } }),
});
const onboard = defineIntegration({
  id: 'onboard',
  mode: 'async',
  input: z.object({ employeeId: z.string() }),
  orderingKey: 'employeeId',
  handler() {
    throw new NonRetryableError('HR is down');
  },
});
const attach = defineIntegration({
  id: 'attach',
  mode: 'async',
  input: z.object({ employeeId: z.string() }),
  orderingKey: 'employeeId',
  handler: () => 'attached',
});

describe.each(STORE_KINDS)('why an instance waits (%s)', (storeKind) => {
  let server: TestServer;
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  const detailOf = async (id: string) => {
    const response = await server.request(`/api/instances/${id}`);
    expect(response.status).toBe(200);
    return response.json as Detail;
  };

  it("shows a fan-out parent's children and that it waits for them", async () => {
    // This process runs only the parent: its children stay queued until a second one runs them.
    server = await testServer([file, line], {}, { storeKind, run: ['apply-file'] });
    cleanups.push(server.close);
    const { instanceId } = await server.engine.accept('apply-file', null);
    let waiting: Detail | undefined;
    await waitFor(async () => {
      waiting = await detailOf(instanceId);
      return waiting.waitingFor?.kind === 'children';
    }, 'the parent to wait for its children');
    expect(waiting!.children).toMatchObject({ total: 3, queued: 3, succeeded: 0 });
    expect(waiting!.waitingFor).toMatchObject({ kind: 'children', children: { total: 3, queued: 3 } });
    const checks = waiting!.timeline.runs[0]!.attempts.filter((a) => a.outcome === 'retry');
    expect(checks.length).toBeGreaterThan(0);
    for (const check of checks) expect(check.backoff?.reason).toBe('children');

    const worker = await Engine.create({
      integrations: [file, line],
      store: server.store,
      run: ['apply-line'],
      logger: quietLogger,
      pollIntervalMs: 20,
    });
    worker.start();
    cleanups.push(() => worker.stop(1_000));
    expect((await waitForStatus(server.engine, instanceId)).status).toBe('succeeded');
    const done = await detailOf(instanceId);
    expect(done.waitingFor).toBeNull();
    expect(done.children).toMatchObject({ total: 3, succeeded: 3 });
    const [run] = done.timeline.runs;
    expect(run!.acceptedAt).toBe(done.instance.createdAt);
    expect(run!.totalMs).toBe(done.instance.finishedAt! - done.instance.createdAt);
    expect(run!.runningMs + run!.waitingMs).toBe(run!.totalMs);
    expect(run!.intervals.some((i) => i.kind === 'children')).toBe(true);
    // A child has no children: the field says none rather than a row of zeros.
    const child = (await server.engine.listInstances({ parentId: instanceId, limit: 1 })).items[0]!;
    expect((await detailOf(child.id)).children).toBeNull();
  });

  it('gives a sync record one attempt, from its acceptance to its answer, and no reason to wait', async () => {
    server = await testServer([quote], {}, { storeKind });
    cleanups.push(server.close);
    const answer = await server.request('/quotes', { method: 'POST', json: { n: 2 } });
    expect(answer.status).toBe(200);
    const id = answer.headers.get('tandem-instance-id')!;
    await waitFor(() => server.store.getInstance(id), 'the sync record');
    const detail = await detailOf(id);
    expect(detail.waitingFor).toBeNull();
    expect(detail.children).toBeNull();
    const [run] = detail.timeline.runs;
    expect(run!.attempts.map((a) => a.outcome)).toEqual(['succeeded']);
    expect(run!.totalMs).toBe(detail.instance.finishedAt! - detail.instance.createdAt);
    expect(run!.runningMs + run!.waitingMs).toBe(run!.totalMs);
  });

  it('names the failed instance that holds the ordering key, and none once it is cancelled', async () => {
    server = await testServer([onboard, attach], {}, { storeKind });
    cleanups.push(server.close);
    const failed = await server.engine.accept('onboard', { employeeId: 'E-1' });
    expect((await waitForStatus(server.engine, failed.instanceId)).status).toBe('failed');
    const held = await server.engine.accept('attach', { employeeId: 'E-1' });
    const detail = await detailOf(held.instanceId);
    expect(detail.instance.status).toBe('queued');
    expect(detail.waitingFor).toEqual({
      kind: 'ordering',
      orderingKey: 'E-1',
      holder: { id: failed.instanceId, integrationId: 'onboard', status: 'failed' },
    });
    expect(detail.timeline.runs[0]!.intervals).toEqual([expect.objectContaining({ kind: 'held', to: null })]);
    // The failed one itself waits for nothing: it is final.
    expect((await detailOf(failed.instanceId)).waitingFor).toBeNull();

    expect(
      (await server.request(`/api/instances/${failed.instanceId}/cancel`, { method: 'POST' })).status,
    ).toBe(200);
    expect((await waitForStatus(server.engine, held.instanceId)).status).toBe('succeeded');
    const done = await detailOf(held.instanceId);
    expect(done.waitingFor).toBeNull();
    // Queued while held, then its attempt: the wait before it counts as waiting.
    expect(done.timeline.runs[0]!.intervals.map((i) => i.kind)).toEqual(['queued']);
    expect(done.timeline.runs[0]!.waitingMs).toBeGreaterThan(0);
  });
});
