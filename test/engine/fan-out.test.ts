import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import { Engine } from '../../src/engine/engine.js';
import { jsonLinesSource } from '../../src/sources/json-lines.js';
import { quietLogger, testEngine, waitForStatus } from '../support/engine.js';
import { waitFor } from '../support/wait.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const Line = z.object({ sku: z.string(), qty: z.number().int() });
const child = defineIntegration({
  id: 'apply-line',
  mode: 'async',
  input: Line,
  handler: (ctx) => ctx.input.qty,
});

function batchParent(opens: { count: number }, awaitChildren: boolean) {
  const lines = ['{"sku":"a","qty":1}', '{"sku":"b","qty":"two"}', 'not json', '{"sku":"c","qty":3}'];
  return defineIntegration({
    id: 'apply-file',
    mode: 'async',
    async handler(ctx) {
      const source = jsonLinesSource(
        () => {
          opens.count++;
          return [Buffer.from(lines.join('\n'))];
        },
        { schema: Line },
      );
      return ctx.startMany(child, source, {
        chunkSize: 1,
        await: awaitChildren ? 'children' : 'none',
        checkEveryMs: 20,
      });
    },
  });
}

describe('fan-out', () => {
  it('waits for its children without using attempts, reading its source once, and shows progress', async () => {
    const opens = { count: 0 };
    const parent = batchParent(opens, true);
    // This process runs only the parent: the children stay queued until a second process runs them.
    const t = await testEngine([parent, child], { run: ['apply-file'] });
    cleanups.push(t.close);
    const { instanceId } = await t.engine.accept('apply-file', null);
    await waitFor(async () => {
      const waits = await t.store.getEvents({ instanceId, limit: 1_000 });
      return waits.filter((e) => e.type === 'progress' && e.data.phase === 'waiting').length >= 3;
    }, 'the parent to check its children three times');
    const waiting = await t.engine.getProgress(instanceId);
    expect(waiting.instance.status).toMatch(/retrying|running/);
    expect(waiting.instance.attempt).toBeLessThanOrEqual(1);
    expect(waiting.children).toMatchObject({ total: 2, queued: 2, succeeded: 0 });

    const worker = await Engine.create({
      integrations: [parent, child],
      store: t.store,
      run: ['apply-line'],
      logger: quietLogger,
      pollIntervalMs: 20,
    });
    worker.start();
    cleanups.push(() => worker.stop(1_000));
    const done = await waitForStatus(t.engine, instanceId);
    expect(done.status).toBe('succeeded');
    expect(done.output).toMatchObject({
      count: 2,
      created: 2,
      invalid: { read: 4, valid: 2, invalid: 2, errors: [{ line: 2 }, { line: 3 }] },
      children: { total: 2, succeeded: 2, failed: 0 },
    });
    expect(opens.count).toBe(1);
    const progress = (await t.store.getEvents({ instanceId, limit: 1_000 })).filter(
      (e) => e.type === 'progress',
    );
    expect(progress[0]!.data).toMatchObject({ phase: 'started', total: 2, invalid: 2 });
    expect(progress.at(-1)!.data).toMatchObject({
      phase: 'children-finished',
      total: 2,
      done: 2,
      succeeded: 2,
    });
  });

  it("with await 'none' finishes as soon as the children are committed", async () => {
    const opens = { count: 0 };
    const t = await testEngine([batchParent(opens, false), child], { run: ['apply-file'] });
    cleanups.push(t.close);
    const { instanceId } = await t.engine.accept('apply-file', null);
    const done = await waitForStatus(t.engine, instanceId);
    expect(done.output).toMatchObject({ count: 2, created: 2 });
    expect((await t.engine.getProgress(instanceId)).children).toMatchObject({ total: 2, queued: 2 });
  });

  it("with await 'children' goes on only after a child in a durable wait has finished", async () => {
    const napper = defineIntegration({
      id: 'nap',
      mode: 'async',
      async handler(ctx) {
        await ctx.sleep('nap', 400);
        return ctx.step('woke', () => Date.now());
      },
    });
    const parent = defineIntegration({
      id: 'naps',
      mode: 'async',
      handler: (ctx) => ctx.startMany(napper, [{}, {}], { await: 'children', checkEveryMs: 20 }),
    });
    const t = await testEngine([parent, napper]);
    cleanups.push(t.close);
    const { instanceId } = await t.engine.accept('naps', null);
    const done = await waitForStatus(t.engine, instanceId);
    // A waiting child is not done: the parent's result counts both children as succeeded.
    expect(done.output).toMatchObject({ children: { total: 2, succeeded: 2, waiting: 0 } });
    const children = await t.engine.listInstances({ parentId: instanceId, limit: 10 });
    for (const child of children.items) {
      expect(child.status).toBe('succeeded');
      expect(child.finishedAt!).toBeLessThanOrEqual(done.finishedAt!);
    }
  });
});
