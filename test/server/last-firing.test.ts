/**
 * GET /api/schedules names the last firing however it was started: a cron slot or a run-now (a
 * run-now fires no slot, so the last slot alone left "Last firing" empty after run-nows).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineIntegration } from '../../src/define/integration.js';
import { STORE_KINDS, waitForStatus } from '../support/engine.js';
import { type TestServer, testServer } from '../support/server.js';
import { waitFor } from '../support/wait.js';

describe.each(STORE_KINDS)('the last firing of a schedule (%s)', (storeKind) => {
  let server: TestServer;

  beforeAll(async () => {
    const everySecond = defineIntegration({
      id: 'every-second',
      mode: 'scheduled',
      cron: '* * * * * *',
      timezone: 'Europe/Berlin',
      overlap: 'skip',
      parameters: { hold: false },
      // A run with `hold` stays active (waiting), so that the slots after it are skipped.
      async handler(ctx) {
        if (ctx.parameters.hold) await ctx.sleep('hold', '1h');
        return 'done';
      },
    });
    server = await testServer([everySecond], {}, { storeKind });
  });

  afterAll(async () => {
    await server?.close();
  });

  const schedule = async () => (await server.request('/api/schedules')).json.items[0];

  it('is the newest instance: by the schedule for a slot, "run-now" for a run-now', async () => {
    const fired = await waitFor(async () => {
      const item = await schedule();
      return item.recentSlots.find((slot: any) => slot.outcome === 'fired') ? item : null;
    }, 'a slot to fire');
    const newest = (await server.request('/api/instances?integration=every-second&limit=1')).json.items[0];
    const item = newest.id === fired.lastFiring.instanceId ? fired : await schedule();
    const slotted = item.recentSlots.some((slot: any) => slot.instanceId === item.lastFiring.instanceId);
    expect(slotted).toBe(true);
    expect(item.lastFiring).toMatchObject({ by: 'schedule' });
    // A run-now that holds: the slots after it are skipped, and it stays the last firing.
    const accepted = await server.request('/api/integrations/every-second/run', {
      method: 'POST',
      json: { parameters: { hold: true } },
    });
    expect(accepted.status).toBe(202);
    const id = accepted.json.instanceId;
    const instance = await waitForStatus(server.engine, id, ['waiting']);
    const after = await schedule();
    expect(after.lastFiring).toEqual({ at: instance.createdAt, instanceId: id, by: 'run-now' });
    await waitFor(
      async () => (await schedule()).recentSlots.some((slot: any) => slot.outcome === 'skipped'),
      'a slot to be skipped behind the run-now',
    );
    expect((await schedule()).lastFiring).toEqual(after.lastFiring);
    await server.request(`/api/instances/${id}/cancel`, { method: 'POST' });
  });
});
