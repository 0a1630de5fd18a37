import { afterEach, describe, expect, it } from 'vitest';
import { defineIntegration } from '../../src/define/integration.js';
import { NonRetryableError } from '../../src/errors.js';
import { STORE_KINDS, waitForStatus } from '../support/engine.js';
import { type TestServer, testServer } from '../support/server.js';
import { waitFor } from '../support/wait.js';

let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

const fails = () => {
  throw new NonRetryableError('no');
};

/** One instance in each final state: succeeded, cancelled, failed (with and without an ordering key), a failed sync record. */
async function oneOfEach(server: TestServer) {
  const { engine } = server;
  const ok = await engine.accept('ok', {});
  const bad = await engine.accept('bad', {});
  const keyed = await engine.accept('bad-keyed', { key: 'K-1' });
  const cancelled = await engine.accept('ok', {}, { runAt: engine.clock.now() + 3_600_000 });
  await engine.cancel(cancelled.instanceId);
  for (const id of [ok, bad, keyed].map((a) => a.instanceId)) await waitForStatus(engine, id);
  expect((await server.request('/lookup')).status).toBe(500);
  const sync = await waitFor(
    async () => (await engine.listInstances({ integrationId: 'lookup', limit: 1 })).items[0],
    'the sync record',
  );
  expect(sync.status).toBe('failed');
  return {
    succeeded: ok.instanceId,
    cancelled: cancelled.instanceId,
    failed: bad.instanceId,
    failedKeyed: keyed.instanceId,
    failedSync: sync.id,
  };
}

describe.each(STORE_KINDS)('retention (%s)', (storeKind) => {
  async function start(retention: Record<string, number>) {
    const clock = { at: Date.now(), now: () => clock.at };
    const integrations = [
      defineIntegration({ id: 'ok', mode: 'async', handler: () => 1 }),
      defineIntegration({ id: 'bad', mode: 'async', handler: fails }),
      defineIntegration({ id: 'bad-keyed', mode: 'async', orderingKey: 'key', handler: fails }),
      defineIntegration({ id: 'lookup', mode: 'sync', route: 'GET /lookup', handler: fails }),
    ];
    const server = await testServer(integrations, {}, { storeKind, clock, retention });
    close = server.close;
    return { server, clock };
  }

  async function remaining(server: TestServer, ids: Record<string, string>): Promise<string[]> {
    const left: string[] = [];
    for (const [name, id] of Object.entries(ids)) if (await server.store.getInstance(id)) left.push(name);
    return left.sort();
  }

  it('purges failed sync records like successes by default, and keeps failed work until resolved', async () => {
    const { server, clock } = await start({ keepMs: 60_000, intervalMs: 3_600_000 });
    const ids = await oneOfEach(server);
    expect(await server.engine.purge()).toBe(0);
    clock.at += 61_000;
    expect(await server.engine.purge()).toBe(3);
    expect(await remaining(server, ids)).toEqual(['failed', 'failedKeyed']);
    expect(await server.store.getEvents({ instanceId: ids.failedSync, limit: 10 })).toEqual([]);
    clock.at += 365 * 86_400_000;
    expect(await server.engine.purge()).toBe(0);
    expect(await remaining(server, ids)).toEqual(['failed', 'failedKeyed']);
  });

  it('keeps each outcome for its own period; a failed instance holding an ordering key is never purged', async () => {
    const { server, clock } = await start({
      keepMs: 60_000,
      failedSyncKeepMs: 10_000,
      failedKeepMs: 120_000,
      intervalMs: 3_600_000,
    });
    const ids = await oneOfEach(server);
    clock.at += 11_000;
    expect(await server.engine.purge()).toBe(1);
    expect(await remaining(server, ids)).toEqual(['cancelled', 'failed', 'failedKeyed', 'succeeded']);
    clock.at += 50_000;
    expect(await server.engine.purge()).toBe(2);
    expect(await remaining(server, ids)).toEqual(['failed', 'failedKeyed']);
    clock.at += 60_000;
    expect(await server.engine.purge()).toBe(1);
    expect(await remaining(server, ids)).toEqual(['failedKeyed']);
  });

  it('runs the purge in the background', async () => {
    const { server, clock } = await start({ keepMs: 60_000, intervalMs: 20 });
    const ids = await oneOfEach(server);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await remaining(server, ids)).toHaveLength(5); // not yet past retention
    clock.at += 61_000;
    await waitFor(async () => (await remaining(server, ids)).length === 2, 'the background purge');
    expect(await remaining(server, ids)).toEqual(['failed', 'failedKeyed']);
  });
});
