/**
 * A burst's alert survives the process: a process killed (SIGKILL) while its burst was open has its
 * failures alerted by the burst's fallback instance, run by the next process on the store; a burst
 * that closed normally is alerted once (its fallback sends nothing). Both stores.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { ALERTS_INTEGRATION } from '../../src/alerts/alerts.js';
import type { AlertMessage } from '../../src/alerts/message.js';
import { Engine } from '../../src/engine/engine.js';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/store.js';
import { charge } from '../fixtures/charge.js';
import { webhookReceiver } from '../support/app-server.js';
import { quietLogger, STORE_KINDS, testStore, waitForStatus } from '../support/engine.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';
import { startScript } from '../support/worker-process.js';

const SECRET = `whsec_${Buffer.from('fallback-signing-key').toString('base64')}`;
const WORKER = join(import.meta.dirname, '../fixtures/alert-worker.ts');
/** Later than any fallback of a burst opened now (a minute's groupMs and as much grace). */
const LATER_MS = 5 * 60_000;
const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** An engine on the store whose clock runs `offsetMs` ahead (so that the fallbacks are due). */
async function engineOn(store: Store, hookUrl: string, offsetMs: number, groupMs = 60_000) {
  const engine = await Engine.create({
    integrations: [charge],
    store,
    clock: { now: () => Date.now() + offsetMs },
    logger: quietLogger,
    pollIntervalMs: 50,
    publicUrl: 'https://tandem.example.com',
    alerts: { webhook: { url: hookUrl, secret: SECRET }, groupMs, retry: { initialDelayMs: 100 } },
  });
  engine.start();
  cleanups.push(() => engine.stop(1_000));
  return engine;
}

const fallbacksOf = async (engine: Engine) =>
  (await engine.listInstances({ integrationId: ALERTS_INTEGRATION, limit: 100 })).items.filter((instance) =>
    instance.idempotencyKey?.startsWith('fallback:'),
  );

describe.each(STORE_KINDS)('alert fallback (%s)', (storeKind) => {
  it('alerts the failures of a process killed inside its burst, once, from the next process', async () => {
    const hook = await webhookReceiver(cleanups);
    const dir = tempDir('tandem-alert-fallback-');
    cleanups.push(() => dir.cleanup());
    const url =
      storeKind === 'postgres'
        ? `${inject('postgresUrl')}?schema=fallback_${process.pid}_${Date.now()}`
        : join(dir.path, 'tandem.db');
    const child = startScript(WORKER, [url, hook.url, SECRET, '5']);
    cleanups.push(() => {
      if (child.child.exitCode === null) child.child.kill('SIGKILL');
    });
    await waitFor(() => child.lines.includes('failed 5'), 'five failures in the child', 60_000);
    child.child.kill('SIGKILL'); // inside the burst's minute: its message was never stored
    await child.exited;
    expect(hook.seen).toHaveLength(0);

    const store = await openStore(storeKind === 'postgres' ? url : `sqlite:${url}`);
    const engine = await engineOn(store, hook.url, LATER_MS);
    cleanups.unshift(() => store.close());
    const [fallback] = await fallbacksOf(engine);
    expect(fallback).toBeDefined();
    expect((await waitForStatus(engine, fallback!.id)).status).toBe('succeeded');
    expect(hook.seen).toHaveLength(1);
    const message = JSON.parse(hook.seen[0]!.body) as AlertMessage;
    expect(message.title).toBe(
      'Tandem: 5 instances failed in charge at step pay (error) (from a process that stopped before sending its alert)',
    );
    expect(message.note).toMatch(/stopped before sending its alert \(circuit and schedule events/);
    expect(message.failures).toHaveLength(1);
    expect(message.failures[0]).toMatchObject({ integrationId: 'charge', step: 'pay', count: 5 });
    expect(message.failures[0]!.examples[0]!.message).toMatch(/^card declined for /);
    expect(message.failures[0]!.link).toBe(
      `https://tandem.example.com/console/#/errors?group=${encodeURIComponent(
        JSON.stringify(['charge', message.failures[0]!.code, 'pay', null]),
      )}`,
    );
    // Exactly one fallback for the burst, and nothing more sent.
    expect(await fallbacksOf(engine)).toHaveLength(1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(hook.seen).toHaveLength(1);
  });

  it('sends nothing more when the burst closed normally: its fallback finds the message stored', async () => {
    const hook = await webhookReceiver(cleanups);
    const { store, cleanup } = await testStore(storeKind);
    cleanups.push(cleanup);
    const first = await engineOn(store, hook.url, 0, 300);
    const { instanceId } = await first.accept('charge', {});
    expect((await waitForStatus(first, instanceId)).status).toBe('failed');
    await waitFor(() => hook.seen.length === 1, 'the burst’s own message');
    const [fallback] = await fallbacksOf(first);
    expect(fallback!.status).toBe('queued'); // not due before the burst closes and a grace passes
    await first.stop(1_000);

    const later = await engineOn(store, hook.url, LATER_MS, 300);
    expect((await waitForStatus(later, fallback!.id)).status).toBe('succeeded');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(hook.seen).toHaveLength(1);
    expect((JSON.parse(hook.seen[0]!.body) as AlertMessage).note).toBeUndefined();
  });
});
