/**
 * One process may hold two copies of Tandem (a CLI installed globally, a config that resolves
 * `tandem` to its own node_modules). The engine must still recognise what the other copy made: its
 * connections, and its errors that steer retries. The second copy here is the sources copied into
 * another folder of the checkout (so that their dependencies resolve) and imported from there.
 */
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tandem from 'tandem';
import { afterAll, describe, expect, it } from 'vitest';
import { defineIntegration } from '../../src/define/integration.js';
import * as own from '../../src/index.js';
import { appServer, json } from '../support/app-server.js';
import { STORE_KINDS, testEngine, waitForStatus } from '../support/engine.js';

type Tandem = typeof import('../../src/index.js');

const copyDir = join(import.meta.dirname, '../../test-artifacts', `second-copy-${process.pid}`);
afterAll(() => rmSync(copyDir, { recursive: true, force: true }));

/** The package's sources loaded a second time: new classes, new module state. */
async function secondCopy(): Promise<Tandem> {
  mkdirSync(copyDir, { recursive: true });
  cpSync(join(import.meta.dirname, '../../src'), join(copyDir, 'src'), { recursive: true });
  const url = pathToFileURL(join(copyDir, 'src/index.ts')).href;
  return (await import(/* @vite-ignore */ url)) as Tandem;
}

describe('one copy of Tandem', () => {
  it('`tandem` by name is the very module the sources are (the tandem-source condition)', () => {
    expect(tandem.defineIntegration).toBe(own.defineIntegration);
    expect(tandem.TandemError).toBe(own.TandemError);
  });
});

describe('objects made by a second copy of Tandem', () => {
  it('the second copy is a copy: its classes are not ours', async () => {
    const other = await secondCopy();
    expect(other.TandemError).not.toBe(own.TandemError);
    expect(Object.getPrototypeOf(new other.NonRetryableError('x'))).not.toBe(own.NonRetryableError.prototype);
  });

  it('errors are recognised by class, across copies, and only by their own class', async () => {
    const other = await secondCopy();
    const retryLater = new other.RetryAfterError(1_000);
    expect(retryLater instanceof own.RetryAfterError).toBe(true);
    expect(retryLater instanceof own.TandemError).toBe(true);
    expect(retryLater instanceof own.NonRetryableError).toBe(false);
    expect(new other.TandemError('handler-failed', 'x') instanceof own.RetryAfterError).toBe(false);
    expect(new Error('plain') instanceof own.TandemError).toBe(false);
    // A user's class of the same name that is not Tandem's stays out.
    class RetryAfterError extends Error {}
    expect(new RetryAfterError() instanceof own.RetryAfterError).toBe(false);
    expect(own.toErrorInfo(new other.NonRetryableError('stop')).code).toBe('non-retryable');
  });

  for (const storeKind of STORE_KINDS) {
    it(`${storeKind}: an integration calls another copy's connection and its NonRetryableError stops retries`, async () => {
      const other = await secondCopy();
      const app = await appServer((_request, response) => json(response, 200, { balance: 12 }));
      const bank = other.httpConnection('bank', { baseUrl: app.url });
      const calling = defineIntegration({
        id: 'calling',
        mode: 'async',
        async handler(ctx) {
          const byObject = await ctx.step('by-object', () =>
            ctx.call<{ balance: number }>(bank, 'GET', '/a'),
          );
          const byId = await ctx.step('by-id', () => ctx.call<{ balance: number }>('bank', 'GET', '/b'));
          return byObject.balance + byId.balance;
        },
      });
      const stopping = defineIntegration({
        id: 'stopping',
        mode: 'async',
        retry: { maxAttempts: 5, initialDelayMs: 10, jitter: 0 },
        handler() {
          throw new other.NonRetryableError('the order is gone');
        },
      });
      const { engine, close } = await testEngine([calling, stopping], { storeKind, connections: [bank] });
      try {
        const called = await engine.accept('calling', {});
        const done = await waitForStatus(engine, called.instanceId);
        expect(done.status).toBe('succeeded');
        expect(done.output).toBe(24);
        expect(app.seen.map((r) => r.url)).toEqual(['/a', '/b']);

        const stopped = await engine.accept('stopping', {});
        const failed = await waitForStatus(engine, stopped.instanceId);
        expect(failed.status).toBe('failed');
        expect(failed.attempt).toBe(1);
        expect(failed.error?.code).toBe('non-retryable');
      } finally {
        await close();
        await app.close();
      }
    });
  }
});
