/**
 * The first step of a graceful shutdown: after `stopClaiming()` the engine still commits accepts
 * (requests in flight hand off their work) but claims nothing, due or new, and fires no cron slot;
 * `stop()` then hands back what it had prefetched.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { defineIntegration } from '../../src/define/integration.js';
import { STORE_KINDS, testEngine } from '../support/engine.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

describe.each(STORE_KINDS)('Engine.stopClaiming (%s)', (storeKind) => {
  it('accepts still commit, but nothing is claimed or fired afterwards', async () => {
    const ran: string[] = [];
    const work = defineIntegration({
      id: 'work',
      mode: 'async',
      handler: (ctx) => {
        ran.push(ctx.instanceId);
        return 'done';
      },
    });
    const tick = defineIntegration({
      id: 'tick',
      mode: 'scheduled',
      cron: '* * * * * *',
      handler: () => 'tick',
    });
    const slots: string[] = [];
    const { engine, store, close } = await testEngine([work, tick], {
      storeKind,
      onSlot: (event) => slots.push(event.outcome),
    });
    closers.push(close);
    const due = await engine.accept('work', {}, { runAt: Date.now() + 300 });
    await engine.stopClaiming();
    const firedBefore = slots.length;
    const late = await engine.accept('work', {});
    expect(late.created).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(ran).toEqual([]);
    expect(slots.length).toBe(firedBefore);
    expect((await store.getInstance(due.instanceId))!.status).toBe('queued');
    expect((await store.getInstance(late.instanceId))!.status).toBe('queued');
    await engine.stop(1_000);
    expect(ran).toEqual([]);
  });
});
