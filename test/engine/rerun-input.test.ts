import { afterEach, describe, expect, it } from 'vitest';
import { defineIntegration } from '../../src/define/integration.js';
import { InvalidInputError } from '../../src/errors.js';
import { STORE_KINDS, waitForStatus } from '../support/engine.js';
import { testServer } from '../support/server.js';

let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

/** A scheduled integration with a numeric parameter; records what its handler was given. */
function exportBatch() {
  const seen: unknown[] = [];
  const integration = defineIntegration({
    id: 'export-batch',
    mode: 'scheduled',
    cron: '0 0 3 * * *',
    parameters: { limit: 10 },
    handler(ctx) {
      seen.push(ctx.parameters.limit);
      return { limit: ctx.parameters.limit };
    },
  });
  return { integration, seen };
}

const BAD = { parameters: { limit: 'not-a-number', bogus: true } };

describe.each(STORE_KINDS)('rerunning a scheduled instance with new input (%s)', (storeKind) => {
  it('checks the parameters as run-now does: bad values are refused and nothing stored changes', async () => {
    const { integration, seen } = exportBatch();
    const server = await testServer([integration], {}, { storeKind });
    close = server.close;
    const { instanceId } = await server.engine.runNow('export-batch', { parameters: { limit: 5 } });
    await waitForStatus(server.engine, instanceId);
    const before = await server.engine.getDetail(instanceId);

    const runNow = await server.request('/api/integrations/export-batch/run', { method: 'POST', json: BAD });
    const rerun = await server.request(`/api/instances/${instanceId}/rerun`, {
      method: 'POST',
      json: { from: 'start', input: BAD },
    });
    expect(runNow.status).toBe(400);
    expect(rerun.status).toBe(400);
    expect(rerun.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(rerun.json.type).toBe(runNow.json.type);
    // The same issues, named under the rerun body's `input`.
    const issues = (body: { errors: { path: string; message: string }[] }, prefix: string) =>
      body.errors.map((e) => ({ path: e.path.slice(prefix.length), message: e.message }));
    expect(issues(rerun.json, 'input.')).toEqual(issues(runNow.json, ''));
    expect(
      issues(rerun.json, 'input.')
        .map((e) => e.path)
        .sort(),
    ).toEqual(['parameters.bogus', 'parameters.limit']);
    await expect(server.engine.rerun(instanceId, { input: BAD })).rejects.toBeInstanceOf(InvalidInputError);
    await expect(server.engine.rerun(instanceId, { input: { parameters: [] } })).rejects.toBeInstanceOf(
      InvalidInputError,
    );

    expect(await server.engine.getDetail(instanceId)).toEqual(before);
    expect(await server.store.countInstances({ integrationId: 'export-batch' })).toBe(1);
    expect(seen).toEqual([5]);
  });

  it('converts good values to the declared types, as run-now does', async () => {
    const { integration, seen } = exportBatch();
    const server = await testServer([integration], {}, { storeKind });
    close = server.close;
    const { instanceId } = await server.engine.runNow('export-batch');
    await waitForStatus(server.engine, instanceId);
    const rerun = await server.request(`/api/instances/${instanceId}/rerun`, {
      method: 'POST',
      json: { from: 'start', input: { parameters: { limit: '25' } } },
    });
    expect(rerun.status).toBe(200);
    expect(await waitForStatus(server.engine, instanceId)).toMatchObject({
      status: 'succeeded',
      run: 2,
      input: { scheduledFor: null, parameters: { limit: 25 } },
      output: { limit: 25 },
    });
    expect(seen).toEqual([10, 25]);
  });
});
