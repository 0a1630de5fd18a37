/**
 * Versions: an instance continues on the handler of the version it started on, after a new
 * version is deployed on the same store; a version that is gone fails the instance clearly (or
 * continues on the latest when asked); a renamed step is caught before its work runs twice.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type AnyIntegration, defineIntegration } from '../../src/define/integration.js';
import { Engine, type EngineOptions } from '../../src/engine/engine.js';
import { NonRetryableError } from '../../src/errors.js';
import type { Store } from '../../src/store/store.js';
import { quietLogger, STORE_KINDS, testStore, waitForStatus } from '../support/engine.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A started engine on a given store (a "deployment"); stopped by `stop()` or after the test. */
async function deploy(store: Store, integrations: AnyIntegration[], options: Partial<EngineOptions> = {}) {
  const engine = await Engine.create({
    integrations,
    store,
    logger: quietLogger,
    pollIntervalMs: 50,
    ...options,
  });
  engine.start();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await engine.stop(1_000);
  };
  cleanups.push(stop);
  return { engine, stop };
}

async function freshStore(storeKind: (typeof STORE_KINDS)[number]) {
  const { store, cleanup } = await testStore(storeKind);
  cleanups.push(cleanup);
  return store;
}

describe.each(STORE_KINDS)('versions (%s)', (storeKind) => {
  it('an instance started on version 1 finishes on version 1’s handler after version 2 is deployed', async () => {
    const store = await freshStore(storeKind);
    const v1 = async (ctx: {
      sleep: (n: string, d: number) => Promise<void>;
      step: <T>(n: string, f: () => T) => Promise<T>;
    }) => {
      await ctx.step('reserve', () => 'reserved');
      await ctx.sleep('settle', 400);
      return ctx.step('charge', () => 'v1');
    };
    const first = defineIntegration({ id: 'pay', mode: 'async', version: '1', handler: v1 });
    const one = await deploy(store, [first]);
    const { instanceId } = await one.engine.accept('pay', {});
    const waiting = await waitForStatus(one.engine, instanceId, ['waiting']);
    expect(waiting.version).toBe('1');
    await one.stop();

    const second = defineIntegration({
      id: 'pay',
      mode: 'async',
      version: '2',
      previousVersions: { '1': v1 },
      async handler(ctx) {
        await ctx.step('reserve', () => 'reserved');
        return ctx.step('charge-card', () => 'v2');
      },
    });
    const two = await deploy(store, [second]);
    const old = await waitForStatus(two.engine, instanceId);
    expect(old).toMatchObject({ status: 'succeeded', output: 'v1', version: '1' });
    const fresh = await two.engine.accept('pay', {});
    expect(await waitForStatus(two.engine, fresh.instanceId)).toMatchObject({ output: 'v2', version: '2' });
  });

  it('fails an instance whose version is gone with version-missing, or continues on the latest when asked', async () => {
    const store = await freshStore(storeKind);
    const v1 = defineIntegration({
      id: 'ship',
      mode: 'async',
      version: '1',
      async handler(ctx) {
        await ctx.sleep('wait', 300);
        return 'v1';
      },
    });
    const one = await deploy(store, [v1]);
    const a = await one.engine.accept('ship', {});
    const b = await one.engine.accept('ship', {});
    await waitForStatus(one.engine, a.instanceId, ['waiting']);
    await waitForStatus(one.engine, b.instanceId, ['waiting']);
    await one.stop();

    const v2 = defineIntegration({ id: 'ship', mode: 'async', version: '2', handler: () => 'v2' });
    const two = await deploy(store, [v2]);
    const failed = await waitForStatus(two.engine, a.instanceId);
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatchObject({ code: 'version-missing' });
    expect(failed.error!.message).toContain('version "1"');
    expect(failed.attempt).toBe(1); // permanent: not retried
    await waitForStatus(two.engine, b.instanceId, ['failed']);
    // From the failed step it cannot resume (its version is gone); from the start it runs on version 2.
    await expect(two.engine.rerun(a.instanceId)).resolves.toBeDefined(); // nothing stored to resume
    expect(await waitForStatus(two.engine, a.instanceId)).toMatchObject({ status: 'failed', version: '1' });
    await two.engine.rerun(a.instanceId, { from: 'start' });
    expect(await waitForStatus(two.engine, a.instanceId)).toMatchObject({
      status: 'succeeded',
      output: 'v2',
      version: '2',
    });
    await two.stop();

    // With onMissingVersion 'latest', an instance of a version that is gone goes on, on the current handler.
    const latest = defineIntegration({
      id: 'ship',
      mode: 'async',
      version: '2',
      onMissingVersion: 'latest',
      handler: () => 'v2',
    });
    const three = await deploy(store, [latest]);
    await three.engine.rerun(b.instanceId);
    expect(await waitForStatus(three.engine, b.instanceId)).toMatchObject({
      status: 'succeeded',
      output: 'v2',
      version: '1',
    });
  });

  it('catches a renamed step before it charges twice, and refuses a rerun its declared steps cannot resume', async () => {
    const store = await freshStore(storeKind);
    const charges: string[] = [];
    let shipOk = false;
    const before = defineIntegration({
      id: 'order',
      mode: 'async',
      retry: { maxAttempts: 1 },
      async handler(ctx) {
        await ctx.step('charge', () => charges.push('charge'));
        await ctx.step('ship', () => {
          if (!shipOk) throw new NonRetryableError('warehouse closed');
          return 'shipped';
        });
      },
    });
    const one = await deploy(store, [before]);
    const { instanceId } = await one.engine.accept('order', {});
    expect((await waitForStatus(one.engine, instanceId)).status).toBe('failed');
    await one.stop();
    expect(charges).toEqual(['charge']);

    // The same integration, edited in place: `charge` renamed to `charge-card`.
    shipOk = true;
    const renamed = (declare: boolean) =>
      defineIntegration({
        id: 'order',
        mode: 'async',
        retry: { maxAttempts: 1 },
        ...(declare ? { steps: ['charge-card', 'ship'] } : {}),
        async handler(ctx) {
          await ctx.step('charge-card', () => charges.push('charge-card'));
          await ctx.step('ship', () => 'shipped');
        },
      });
    const two = await deploy(store, [renamed(false)]);
    await two.engine.rerun(instanceId);
    const mismatch = await waitForStatus(two.engine, instanceId);
    expect(mismatch.status).toBe('failed');
    expect(mismatch.error).toMatchObject({ code: 'step-mismatch' });
    expect(mismatch.error!.message).toContain('"charge"');
    expect(charges).toEqual(['charge']); // charge-card never ran
    await two.stop();

    const three = await deploy(store, [renamed(true)]);
    await expect(three.engine.rerun(instanceId)).rejects.toMatchObject({
      code: 'steps-changed',
      status: 409,
    });
    expect((await three.engine.getInstance(instanceId)).status).toBe('failed'); // nothing changed
    // From the start it runs the new handler whole: that charge is the operator's choice.
    await three.engine.rerun(instanceId, { from: 'start' });
    expect((await waitForStatus(three.engine, instanceId)).status).toBe('succeeded');
    expect(charges).toEqual(['charge', 'charge-card']);
  });

  it('refuses a definition whose versions contradict each other', () => {
    expect(() =>
      defineIntegration({ id: 'x', mode: 'async', previousVersions: { '1': () => 1 }, handler: () => 2 }),
    ).toThrow(/previousVersions needs a version/);
    expect(() =>
      defineIntegration({
        id: 'x',
        mode: 'async',
        version: '1',
        previousVersions: { '1': () => 1 },
        handler: () => 2,
      }),
    ).toThrow(/cannot also be in previousVersions/);
    expect(() => defineIntegration({ id: 'x', mode: 'async', version: 'a b', handler: () => 2 })).toThrow(
      /version/,
    );
  });
});
