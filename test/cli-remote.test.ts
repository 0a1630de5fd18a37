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
      expect((denied as { stderr: string }).stderr).toMatch(
        /401 .*set TANDEM_ADMIN_TOKEN to the admin token the server was started with/,
      );
      const wrong = await exec(process.execPath, [bin, 'instances', 'ls', ...url], {
        env: { ...env, TANDEM_ADMIN_TOKEN: 'not-it' },
      }).catch((e: { code: number; stderr: string }) => e);
      expect((wrong as { stderr: string }).stderr).toMatch(
        /401 .*TANDEM_ADMIN_TOKEN is set, but the server does not accept it/,
      );

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
      expect(bulk.stderr).toContain('rerunning 1 instance (from failed-step)');
      expect(bulk.stderr).toMatch(/\] 1\/1 done/);
      expect(bulk.stdout).toContain('1 of 1 rerun instances finished, 0 failed');

      const advise = await withToken(['advise', ...url]);
      expect(advise.stdout).toContain('flaky (async)');
    } finally {
      await t.close();
    }
  }, 120_000);

  it('says why sync instances are not rerun, shows when a retry comes, and names a missing server', async () => {
    const checkStock = defineIntegration({
      id: 'check-stock',
      mode: 'sync',
      route: 'GET /stock',
      handler: () => {
        throw new Error('inventory down');
      },
    });
    const later = defineIntegration({
      id: 'later',
      mode: 'async',
      retry: { maxAttempts: 5, initialDelayMs: 600_000, jitter: 0 },
      handler: () => {
        throw new Error('not yet');
      },
    });
    const t = await testServer([checkStock, later]);
    try {
      const url = ['--url', t.url];
      for (let i = 0; i < 3; i++) expect((await t.request('/stock')).status).toBe(500);
      const failed = await waitFor(async () => {
        const page = await t.engine.listInstances({ limit: 10, status: 'failed' });
        return page.items.length === 3 ? page.items : null;
      }, 'three failed sync records');

      // A bulk rerun: none rerun, and why, with the count that `ls` shows.
      const ls = await cli(['instances', 'ls', '--status', 'failed', '--json', ...url]);
      expect(JSON.parse(ls.stdout).items).toHaveLength(3);
      const bulk = await cli(['instances', 'rerun', '--status', 'failed', ...url]);
      expect(bulk.stderr).toContain('rerunning 0 instances (from failed-step)');
      expect(bulk.stderr).toContain('3 sync instances also match, not rerun: sync instances are never rerun');
      expect(bulk.stdout).toContain('0 of 0 rerun instances finished, 0 failed');

      // One of them, by id: not a bare 409.
      const one = await cli(['instances', 'rerun', failed[0]!.id, ...url]).catch(
        (e: { code: number; stderr: string }) => e,
      );
      expect((one as { code: number }).code).toBe(1);
      expect((one as { stderr: string }).stderr).toContain(
        `${failed[0]!.id} is a sync instance of check-stock: sync instances are never rerun`,
      );
      const cancel = await cli(['instances', 'cancel', failed[1]!.id, ...url]).catch(
        (e: { code: number; stderr: string }) => e,
      );
      // Cancelling a finished sync record is refused (or, where allowed, done): never a bare 409.
      if ((cancel as { code?: number }).code !== undefined) {
        expect((cancel as { stderr: string }).stderr).toContain(
          `${failed[1]!.id} is a sync instance of check-stock`,
        );
      }

      // A retrying instance shows its next attempt.
      const waiting = await t.engine.accept('later', {});
      await waitFor(
        async () => (await t.engine.getInstance(waiting.instanceId)).status === 'retrying',
        'the retry to be scheduled',
      );
      const retrying = await cli(['instances', 'ls', '--status', 'retrying', ...url]);
      const [header, row] = retrying.stdout.split('\n');
      expect(header).toMatch(/\bNEXT ATTEMPT$/);
      expect(row).toContain(waiting.instanceId);
      expect(row).toMatch(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(in (\d+ s|\d+ min)\)$/);
    } finally {
      await t.close();
    }
    const gone = await cli(['instances', 'ls', '--url', t.url]).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect((gone as { code: number }).code).toBe(3);
    expect((gone as { stderr: string }).stderr).toContain(
      `no Tandem server at ${t.url}: start one with \`tandem start\`, or set TANDEM_URL`,
    );
  }, 120_000);

  it('acknowledges a failed instance with a note, and takes it back', async () => {
    const broken = defineIntegration({
      id: 'broken',
      mode: 'async',
      retry: { maxAttempts: 1 },
      handler: () => {
        throw new Error('ledger closed');
      },
    });
    const t = await testServer([broken]);
    try {
      const { instanceId } = await t.engine.accept('broken', {});
      await waitFor(async () => (await t.engine.getInstance(instanceId)).status === 'failed', 'the failure');
      const url = ['--url', t.url];
      const ack = await cli(['instances', 'ack', instanceId, '--note', 'ledger reopened', ...url]);
      expect(ack.stdout).toMatch(
        new RegExp(`^acknowledged ${instanceId} at .*: it leaves the default errors view`),
      );
      expect(await t.engine.getInstance(instanceId)).toMatchObject({
        acknowledgedAt: expect.any(Number),
        acknowledgedNote: 'ledger reopened',
      });
      // The note is no list filter: ls with it still lists.
      const ls = await cli(['instances', 'ls', '--note', 'x', ...url]);
      expect(ls.stdout).toContain(instanceId);
      const unack = JSON.parse((await cli(['instances', 'unack', instanceId, '--json', ...url])).stdout);
      expect(unack).toEqual({ instanceId, acknowledgedAt: null, acknowledgedNote: null });
      const unknown = await cli(['instances', 'ack', 'no-such-id', ...url]).catch(
        (e: { code: number; stderr: string }) => e,
      );
      expect((unknown as { code: number }).code).toBe(1);
      expect((unknown as { stderr: string }).stderr).toContain('no-such-id');
    } finally {
      await t.close();
    }
  }, 60_000);

  it('decides from flags and from answers given one by one', async () => {
    const flags = await cli(['decide', '--immediate', 'yes', '--seconds', 'yes', '--rerun', 'no', '--json']);
    expect(JSON.parse(flags.stdout).pattern).toBe('sync');
    const child = spawn(process.execPath, [bin, 'decide'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let prompts = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      prompts += chunk.toString();
    });
    child.stdin.write('yes\nmaybe\nno\nyes\n'); // "maybe" is asked again
    child.stdin.end();
    await new Promise((resolve) => child.once('exit', resolve));
    // The questions on stderr, the answer alone on stdout (for pipes).
    expect(prompts).toContain('Does the caller need an immediate response?');
    expect(prompts.match(/Will everything finish in seconds\?/g)).toHaveLength(2);
    expect(out).toMatch(/^sync-to-async\n/);
  }, 30_000);
});
