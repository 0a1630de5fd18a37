import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { progressLine, runCommand } from '../../src/cli/run.js';
import { defineIntegration } from '../../src/define/integration.js';
import type { Progress } from '../../src/engine/engine.js';
import type { Instance } from '../../src/model.js';
import { testEngine } from '../support/engine.js';

let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

function collect() {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return { stream, text: () => chunks.join('') };
}

describe('tandem run', () => {
  it('runs a scheduled integration now with --param overrides and follows its batch to the end', async () => {
    const item = defineIntegration({
      id: 'item',
      mode: 'async',
      input: z.object({ n: z.number() }),
      handler: () => {},
    });
    const batch = defineIntegration({
      id: 'batch',
      mode: 'scheduled',
      cron: '0 0 3 * * *',
      parameters: { size: 10 },
      async handler(ctx) {
        const inputs = Array.from({ length: ctx.parameters.size }, (_, n) => ({ n }));
        return ctx.startMany(item, inputs, { chunkSize: 5, await: 'children', checkEveryMs: 20 });
      },
    });
    const t = await testEngine([batch, item]);
    close = t.close;
    const progress = collect();
    const result = collect();
    const outcome = await runCommand(t.engine, 'batch', {
      params: ['size=25'],
      progressOut: progress.stream,
      resultOut: result.stream,
      intervalMs: 10,
    });
    expect(outcome.exitCode).toBe(0);
    expect(JSON.parse(result.text())).toMatchObject({
      status: 'succeeded',
      output: { count: 25, children: { total: 25, succeeded: 25 } },
    });
    expect(progress.text()).toMatch(/^started batch instance /);
    expect(progress.text().trim().split('\n').at(-1)).toMatch(/25\/25 done · succeeded$/);
    await expect(runCommand(t.engine, 'batch', { params: ['size'] })).rejects.toMatchObject({
      code: 'invalid-input',
    });
  });

  it('draws a bar of the children that are done', () => {
    const instance = { integrationId: 'batch', status: 'retrying' } as Instance;
    const children = {
      total: 200,
      queued: 50,
      running: 0,
      retrying: 0,
      succeeded: 140,
      failed: 10,
      cancelled: 0,
    };
    const line = progressLine({ instance, children } as Progress, 20);
    expect(line).toBe('[███████████████░░░░░] 150/200 done (10 failed) · waiting for children');
    expect(progressLine({ instance, children: { ...children, total: 0 } } as Progress)).toBe(
      'batch: retrying',
    );
  });
});
