import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../src/define/integration.js';
import { testServer } from './support/server.js';
import { waitFor } from './support/wait.js';

const exec = promisify(execFile);
const bin = join(import.meta.dirname, '../bin/tandem.js');
const env = { ...process.env, TANDEM_CLI_SOURCE: '1' };
const cli = (args: string[]) => exec(process.execPath, [bin, ...args], { env });

describe('CLI against a live server', () => {
  it('lists, shows, reruns and cancels instances, and gives advice', async () => {
    let attempts = 0;
    const flaky = defineIntegration({
      id: 'flaky',
      mode: 'async',
      input: z.object({ orderId: z.string() }),
      track: { orderId: 'orderId' },
      retry: { maxAttempts: 1 },
      async handler(ctx) {
        await ctx.step('post', () => {
          attempts++;
          if (attempts === 1) throw new Error('order system down');
          return 'posted';
        });
      },
    });
    const slow = defineIntegration({ id: 'slow', mode: 'async', handler: () => new Promise(() => {}) });
    const t = await testServer([flaky, slow], { adminToken: 'cli-secret' });
    try {
      const { instanceId } = await t.engine.accept('flaky', { orderId: 'O-77' });
      await waitFor(async () => (await t.engine.getInstance(instanceId)).status === 'failed', 'the failure');
      const url = ['--url', t.url];
      const withToken = (args: string[]) =>
        exec(process.execPath, [bin, ...args], { env: { ...env, TANDEM_ADMIN_TOKEN: 'cli-secret' } });

      const denied = await cli(['instances', 'ls', ...url]).catch((e: { code: number; stderr: string }) => e);
      expect((denied as { code: number }).code).toBe(1);
      expect((denied as { stderr: string }).stderr).toMatch(/401/);

      const ls = await withToken(['instances', 'ls', '--tracking', 'O-77', ...url]);
      expect(ls.stdout).toMatch(/^ID\s+INTEGRATIONID\s+STATUS/);
      expect(ls.stdout).toContain(instanceId);
      expect(ls.stdout).toContain('failed');
      const json = JSON.parse(
        (await withToken(['instances', 'ls', '--status', 'failed', '--json', ...url])).stdout,
      );
      expect(json.items.map((i: { id: string }) => i.id)).toEqual([instanceId]);

      const show = await withToken(['instances', 'show', instanceId, ...url]);
      expect(show.stdout).toContain('error: order system down');
      expect(show.stdout).toContain('step.failed');

      const rerun = await withToken(['instances', 'rerun', instanceId, '--from', 'failed-step', ...url]);
      expect(rerun.stdout).toContain('run 2 queued');
      await waitFor(async () => (await t.engine.getInstance(instanceId)).status === 'succeeded', 'the rerun');

      const stuck = await t.engine.accept('slow', {});
      await waitFor(
        async () => (await t.engine.getInstance(stuck.instanceId)).status === 'running',
        'a running one',
      );
      await withToken(['instances', 'cancel', stuck.instanceId, ...url]);
      expect((await t.engine.getInstance(stuck.instanceId)).status).toBe('cancelled');

      // A bulk rerun of failures, followed to the end with a progress bar.
      attempts = 0;
      const more = await Promise.all(
        ['O-80', 'O-81', 'O-82'].map((orderId) => t.engine.accept('flaky', { orderId })),
      );
      for (const m of more) {
        await waitFor(
          async () => ['failed', 'succeeded'].includes((await t.engine.getInstance(m.instanceId)).status),
          'the batch',
        );
      }
      const failedBefore = (await t.engine.listInstances({ limit: 10, status: 'failed' })).items.length;
      expect(failedBefore).toBe(1); // the first of the three failed
      const bulk = await withToken([
        'instances',
        'rerun',
        '--status',
        'failed',
        '--integration',
        'flaky',
        ...url,
      ]);
      expect(bulk.stderr).toContain('rerunning 1 instances');
      expect(bulk.stderr).toMatch(/\] 1\/1 done/);
      expect(bulk.stdout).toContain('1 of 1 rerun instances finished, 0 failed');

      const advise = await withToken(['advise', ...url]);
      expect(advise.stdout).toContain('flaky (async)');
    } finally {
      await t.close();
    }
  }, 60_000);

  it('decides from flags and from answers given one by one', async () => {
    const flags = await cli(['decide', '--immediate', 'yes', '--seconds', 'yes', '--rerun', 'no', '--json']);
    expect(JSON.parse(flags.stdout).pattern).toBe('sync');
    const child = spawn(process.execPath, [bin, 'decide'], { env, stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.stdin.write('yes\nmaybe\nno\nyes\n'); // "maybe" is asked again
    child.stdin.end();
    await new Promise((resolve) => child.once('exit', resolve));
    expect(out).toContain('Does the caller need an immediate response?');
    expect(out.match(/Will everything finish in seconds\?/g)).toHaveLength(2);
    expect(out).toMatch(/\nsync-to-async\n/);
  }, 30_000);
});
