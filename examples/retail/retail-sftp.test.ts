/**
 * The retail demo's `nightly-orders` reading the web shop's order file from an SFTP server (as
 * `DEMO_ORDERS_SFTP_URL` configures it), against a real OpenSSH sshd: the good orders are posted,
 * the file is archived once they are handed on, and the next run finds nothing.
 */
import '../../test/support/provided.js';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sftpConnection } from 'tandem';
import { createTestEngine, type FakeApplication, fakeApplication, type TestEngine } from 'tandem/testing';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { type SshServer, startSshd } from '../../test/support/sshd.js';
import { APP_NAMES, type AppName } from './apps.js';
import { retail } from './integrations.js';
import { ORDER_FILE } from './orders-file.js';

let sshd: SshServer;
beforeAll(async () => {
  sshd = await startSshd();
});
afterAll(() => sshd?.close());

describe.each(['sqlite', 'postgres'] as const)('nightly-orders over SFTP on %s', (kind) => {
  let t: TestEngine | undefined;
  let apps: FakeApplication[] = [];
  let inbox: string | undefined;
  afterEach(async () => {
    await t?.close();
    await Promise.all(apps.map((app) => app.close()));
    if (inbox) rmSync(inbox, { recursive: true, force: true });
  });

  it('posts the good orders of the file on the server and archives it', async () => {
    const made = await Promise.all(
      APP_NAMES.map(
        async (name) =>
          [
            name,
            await fakeApplication({
              routes:
                name === 'webshop'
                  ? {
                      'GET /products/:sku': ({ params }) => ({
                        body: { name: `Product ${params.sku}`, price: 10 },
                      }),
                    }
                  : name === 'order-processing'
                    ? { 'POST /orders': { status: 201, body: { accepted: true } } }
                    : {},
            }),
          ] as const,
      ),
    );
    apps = made.map(([, app]) => app);
    const urls = Object.fromEntries(made.map(([name, app]) => [name, app.url])) as Record<AppName, string>;
    const outbox = sshd.mkdir(`outbox-${kind}`);
    sshd.write(`outbox-${kind}/orders-2026-11-24.csv`, ORDER_FILE);
    inbox = mkdtempSync(join(tmpdir(), 'retail-inbox-'));
    const connection = sftpConnection('orders-sftp', {
      host: sshd.host,
      port: sshd.port,
      username: sshd.username,
      privateKey: sshd.privateKey,
      hostKey: sshd.hostKeyFingerprint,
    });
    const { integrations, connections } = retail({
      urls,
      inbox,
      ordersSftp: { connection, pattern: `${outbox}/orders-*.csv`, archive: `${outbox}/archive` },
    });
    t = await createTestEngine({
      integrations,
      connections,
      ...(kind === 'postgres' ? { store: inject('postgresUrl') } : {}),
    });
    const { instanceId } = await t.trigger('nightly-orders', {});
    await t.runUntilIdle();
    await t.advance(5_000);
    const run = await t.result(instanceId);
    expect(run.status).toBe('succeeded');
    expect(run.output).toMatchObject({ count: 6, invalid: { invalid: 3 }, children: { succeeded: 6 } });
    expect(made.find(([name]) => name === 'order-processing')![1].count('POST /orders')).toBe(6);
    expect(existsSync(join(outbox, 'orders-2026-11-24.csv'))).toBe(false);
    expect(readdirSync(join(outbox, 'archive'))).toEqual(['orders-2026-11-24.csv']);
  });
});
