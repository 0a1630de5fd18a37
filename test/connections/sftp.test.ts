/**
 * SFTP connections against a real OpenSSH sshd on 127.0.0.1 (test/support/sshd.ts): password and
 * key authentication with a pinned host key, the classification of failures, `put` through a
 * temporary name, and `sftpFiles` as a record source — read once across instances and stores,
 * archived only after the fan-out is committed, files still being written skipped.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { CallContext } from '../../src/connections/connection.js';
import { secret } from '../../src/connections/secret.js';
import { type SftpConnectionOptions, sftpConnection } from '../../src/connections/sftp.js';
import { defineIntegration } from '../../src/define/integration.js';
import { Engine } from '../../src/engine/engine.js';
import { csvSource } from '../../src/sources/csv.js';
import { jsonLinesSource } from '../../src/sources/json-lines.js';
import { sftpFiles } from '../../src/sources/sftp-files.js';
import type { SqliteStore } from '../../src/store/sqlite/store.js';
import { quietLogger, STORE_KINDS, testEngine, waitForStatus } from '../support/engine.js';
import { type SshServer, startSshd } from '../support/sshd.js';
import { waitFor } from '../support/wait.js';

let sshd: SshServer;
beforeAll(async () => {
  sshd = await startSshd();
});
afterAll(() => sshd?.close());

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  // A test that stopped the server and failed does not take the next ones down with it.
  await sshd.start();
});

let dirs = 0;
/** A fresh directory of the SFTP user's for one test. */
const freshDir = () => sshd.mkdir(`t${++dirs}`);

function connect(overrides: Partial<SftpConnectionOptions> = {}, id = 'partner') {
  const connection = sftpConnection(id, {
    host: sshd.host,
    port: sshd.port,
    username: sshd.username,
    password: sshd.password,
    hostKey: sshd.hostKeyFingerprint,
    ...overrides,
  });
  closers.push(() => connection.close());
  return connection;
}

/** A CallContext outside any engine, recording the calls' events. */
function context(events: Record<string, unknown>[] = []): CallContext {
  return {
    instanceId: 'test',
    attempt: 1,
    signal: new AbortController().signal,
    idempotencyKey: 'test:1',
    traceparent: '00-00000000000000000000000000000001-0000000000000001-01',
    step: 'step',
    record: (data) => events.push(data),
  };
}

const Order = z.object({ orderId: z.string().min(1), qty: z.coerce.number().int().positive() });
const csv = (from: number, count: number) =>
  `Order No,Qty\n${Array.from({ length: count }, (_, i) => `O-${from + i},${(i % 5) + 1}`).join('\n')}\n`;

function postOrder() {
  return defineIntegration({ id: 'post-order', mode: 'async', input: Order, handler: () => {} });
}

describe('sftpConnection', () => {
  it('authenticates with a password or a key, and puts a file through a temporary name', async () => {
    const dir = freshDir();
    const events: Record<string, unknown>[] = [];
    const byKey = connect({ password: undefined, privateKey: sshd.privateKey }, 'by-key').bind(() =>
      context(events),
    );
    const byPassword = connect().bind(() => context(events));
    await byPassword.put(`${dir}/hello.txt`, 'hello');
    expect(readFileSync(join(dir, 'hello.txt'), 'utf8')).toBe('hello');
    expect((await byKey.get(`${dir}/hello.txt`)).toString()).toBe('hello');

    // While a big file is written, its name holds nothing or all of it, and nothing else is left.
    const big = Buffer.alloc(8 * 1024 * 1024, 'x');
    let seenPartial = false;
    let polling = true;
    const poll = (async () => {
      while (polling) {
        const target = join(dir, 'big.bin');
        if (existsSync(target) && statSync(target).size !== big.length) seenPartial = true;
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    })();
    expect(await byKey.put(`${dir}/big.bin`, big)).toEqual({ path: `${dir}/big.bin`, bytes: big.length });
    polling = false;
    await poll;
    expect(seenPartial).toBe(false);
    expect(statSync(join(dir, 'big.bin')).size).toBe(big.length);
    // A second put replaces the file (a retried step writes the same file again).
    await byPassword.put(`${dir}/hello.txt`, 'hello again');
    expect(readFileSync(join(dir, 'hello.txt'), 'utf8')).toBe('hello again');
    expect(readdirSync(dir).sort()).toEqual(['big.bin', 'hello.txt']);

    expect((await byPassword.list(dir, '*.txt')).map((entry) => entry.name)).toEqual(['hello.txt']);
    const put = events.find((event) => event.operation === 'put' && event.connection === 'by-key');
    expect(put).toMatchObject({ type: 'sftp', path: `${dir}/big.bin`, bytes: big.length, step: 'step' });
  });

  it('refuses a server whose host key is not the pinned one, before authenticating, and does not retry', async () => {
    const wrong = `SHA256:${'A'.repeat(43)}`;
    const client = connect({ hostKey: wrong }).bind(() => context());
    const error = await client.list(sshd.root).catch((thrown: unknown) => thrown);
    expect(error).toMatchObject({ code: 'host-key-mismatch', retryable: false, connection: 'partner' });
    expect((error as Error).message).toContain(sshd.hostKeyFingerprint);
    expect((error as Error).message).toContain('pinned');
    // Pinning a list with the right key among them lets it through.
    const listed = await connect({ hostKey: [wrong, sshd.hostKeyFingerprint] }, 'rotating')
      .bind(() => context())
      .list(sshd.root);
    expect(Array.isArray(listed)).toBe(true);
  });

  it('classifies failures: missing file and permission denied fail at once, an unreachable server is retried', async () => {
    const client = connect({ circuit: false }).bind(() => context());
    await expect(client.get(`${sshd.root}/nope.csv`)).rejects.toMatchObject({
      code: 'no-such-file',
      retryable: false,
    });
    await expect(client.get('/etc/shadow')).rejects.toMatchObject({
      code: 'permission-denied',
      retryable: false,
    });
    await expect(
      connect({ password: 'wrong' }, 'wrong-password')
        .bind(() => context())
        .list(sshd.root),
    ).rejects.toMatchObject({ code: 'authentication-failed', retryable: false });

    // Connection refused, reset and a server that never answers: the network, worth another attempt.
    const sockets: Socket[] = [];
    const reset = createServer((socket) => socket.resetAndDestroy());
    const silent = createServer((socket) => sockets.push(socket));
    for (const server of [reset, silent])
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(async () => {
      for (const socket of sockets) socket.destroy();
      await Promise.all([reset, silent].map((server) => new Promise((resolve) => server.close(resolve))));
    });
    const portOf = (server: typeof reset) => (server.address() as { port: number }).port;
    const closedPort = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as { port: number };
        probe.close(() => resolve(port));
      });
    });
    for (const [name, port, code] of [
      ['refused', closedPort, 'connection-failed'],
      ['reset', portOf(reset), 'connection-failed'],
      ['silent', portOf(silent), 'connection-timeout'],
    ] as const) {
      const failing = connect({ port, timeout: 500, circuit: false }, name).bind(() => context());
      await expect(failing.list('/'), name).rejects.toMatchObject({ code, retryable: true });
    }
  });

  it('fails an instance at once on a refused permission, and retries it through a refused connection', async () => {
    const denied = connect();
    const down = connect({ port: 1, timeout: 1_000, circuit: false }, 'down-for-now');
    const retry = { maxAttempts: 3, initialDelayMs: 10, maxDelayMs: 20, jitter: 0 };
    const t = await testEngine(
      [
        defineIntegration({
          id: 'read-shadow',
          mode: 'async',
          retry,
          handler: (ctx) => ctx.step('get', async () => (await ctx.use(denied).get('/etc/shadow')).length),
        }),
        defineIntegration({
          id: 'read-down',
          mode: 'async',
          retry,
          handler: (ctx) => ctx.step('list', () => ctx.use(down).list('/')),
        }),
      ],
      { connections: [denied, down] },
    );
    closers.push(() => t.close());
    const shadow = await waitForStatus(t.engine, (await t.engine.accept('read-shadow', {})).instanceId);
    expect(shadow).toMatchObject({ status: 'failed', attempt: 1 });
    expect(shadow.error?.message).toContain('Permission denied');
    const unreachable = await waitForStatus(t.engine, (await t.engine.accept('read-down', {})).instanceId);
    expect(unreachable).toMatchObject({ status: 'failed', attempt: 3 });
  });

  it('opens its circuit after failures and then refuses without connecting', async () => {
    const events: Record<string, unknown>[] = [];
    const connection = connect(
      { port: 1, timeout: 500, circuit: { failures: 2, reprobeMs: 60_000 } },
      'down',
    );
    const client = connection.bind(() => context(events));
    await expect(client.list('/')).rejects.toMatchObject({ code: 'connection-failed', retryable: true });
    // The failure that opens it never reached a server: the instance would wait for the probe.
    await expect(client.list('/')).rejects.toMatchObject({ name: 'CircuitOpenError' });
    expect(connection.circuitState()).toBe('open');
    await expect(client.list('/')).rejects.toMatchObject({ name: 'CircuitOpenError' });
    // The third was refused before connecting: no operation, no event.
    expect(events.map((event) => event.error)).toEqual(['connection-failed', 'connection-failed']);
  });
});

describe.each(STORE_KINDS)('sftpFiles as a record source (%s)', (storeKind) => {
  it('fans out every file once, archives it after the fan-out, and reads nothing twice', async () => {
    const dir = freshDir();
    sshd.write(`t${dirs}/orders-1.csv`, csv(0, 30));
    sshd.write(`t${dirs}/orders-2.csv`, `${csv(30, 20)}bad,line,here\n`);
    sshd.write(`t${dirs}/other.csv`, csv(100, 5));
    const partner = connect();
    const child = postOrder();
    const reader = defineIntegration({
      id: 'nightly',
      mode: 'async',
      async handler(ctx) {
        const orders = csvSource(
          sftpFiles(partner, `${dir}/orders-*.csv`, { archive: `${dir}/done`, stableMs: 50 }),
          {
            headers: { 'Order No': 'orderId', Qty: 'qty' },
            schema: Order,
          },
        );
        return ctx.startMany(child, orders);
      },
    });
    const t = await testEngine([reader, child], { storeKind, connections: [partner] });
    closers.push(() => t.close());
    const first = await waitForStatus(t.engine, (await t.engine.accept('nightly', {})).instanceId);
    expect(first.status).toBe('succeeded');
    expect(first.output).toMatchObject({ count: 50, created: 50, invalid: { invalid: 1 } });
    expect((first.output as { invalid: { errors: { file: string }[] } }).invalid.errors[0]?.file).toBe(
      `${dir}/orders-2.csv`,
    );
    expect(readdirSync(dir).sort()).toEqual(['done', 'other.csv']);
    expect(readdirSync(join(dir, 'done')).sort()).toEqual(['orders-1.csv', 'orders-2.csv']);

    // The next run finds only the file that arrived since.
    sshd.write(`t${dirs}/orders-3.csv`, csv(200, 7));
    const second = await waitForStatus(t.engine, (await t.engine.accept('nightly', {})).instanceId);
    expect(second.output).toMatchObject({ count: 7, created: 7 });
    const events = await t.store.getEvents({ instanceId: second.id, limit: 100 });
    const calls = events.filter((event) => event.type === 'connection.call').map((event) => event.data);
    expect(calls.map((call) => call.operation)).toEqual(expect.arrayContaining(['list', 'read', 'rename']));
    expect(calls.find((call) => call.operation === 'rename')).toMatchObject({
      path: `${dir}/orders-3.csv`,
      to: `${dir}/done/orders-3.csv`,
    });
  });

  it('skips a file still being written, and takes a file with its marker', async () => {
    const dir = freshDir();
    const sub = `t${dirs}`;
    sshd.write(`${sub}/growing.jsonl`, '{"orderId":"G-1","qty":1}\n');
    sshd.write(`${sub}/done.jsonl`, '{"orderId":"D-1","qty":1}\n');
    sshd.write(`${sub}/marked.jsonl`, '{"orderId":"M-1","qty":1}\n');
    sshd.write(`${sub}/marked.jsonl.ready`, '');
    sshd.write(`${sub}/unmarked.jsonl`, '{"orderId":"U-1","qty":1}\n');
    const partner = connect();
    const child = postOrder();
    let writing: NodeJS.Timeout | undefined;
    const stable = defineIntegration({
      id: 'stable',
      mode: 'async',
      async handler(ctx) {
        // The partner appends to growing.jsonl while the source watches the sizes.
        let n = 2;
        writing = setInterval(
          () => sshd.write(`${sub}/growing.jsonl`, `${'{"orderId":"G-1","qty":1}\n'.repeat(n++)}`),
          20,
        );
        try {
          return await ctx.startMany(
            child,
            jsonLinesSource(sftpFiles(partner, `${dir}/*.jsonl`, { delete: true, stableMs: 300 }), {
              schema: Order,
            }),
          );
        } finally {
          clearInterval(writing);
        }
      },
    });
    const t = await testEngine([stable, child], { storeKind, connections: [partner] });
    closers.push(async () => {
      clearInterval(writing);
      await t.close();
    });
    const done = await waitForStatus(t.engine, (await t.engine.accept('stable', {})).instanceId);
    expect(done.status).toBe('succeeded');
    // done, marked and unmarked were stable; growing was not, and stays for a later run.
    expect(done.output).toMatchObject({ count: 3 });
    expect(readdirSync(dir).sort()).toEqual(['growing.jsonl', 'marked.jsonl.ready']);
  });

  it('with a marker, reads only the files whose marker is there, and archives the marker too', async () => {
    const dir = freshDir();
    const sub = `t${dirs}`;
    sshd.write(`${sub}/a.jsonl`, '{"orderId":"A-1","qty":1}\n');
    sshd.write(`${sub}/a.jsonl.ready`, '');
    sshd.write(`${sub}/b.jsonl`, '{"orderId":"B-1","qty":1}\n');
    const partner = connect();
    const child = postOrder();
    const marked = defineIntegration({
      id: 'marked',
      mode: 'async',
      handler: (ctx) =>
        ctx.startMany(
          child,
          jsonLinesSource(
            sftpFiles(partner, `${dir}/*.jsonl`, { archive: `${dir}/done`, marker: '.ready' }),
            {
              schema: Order,
            },
          ),
        ),
    });
    const t = await testEngine([marked, child], { storeKind, connections: [partner] });
    closers.push(() => t.close());
    const done = await waitForStatus(t.engine, (await t.engine.accept('marked', {})).instanceId);
    expect(done.output).toMatchObject({ count: 1 });
    expect(readdirSync(dir).sort()).toEqual(['b.jsonl', 'done']);
    expect(readdirSync(join(dir, 'done')).sort()).toEqual(['a.jsonl', 'a.jsonl.ready']);
  });

  it('lets two engines on one store read the same directory at once: each file by one of them', async () => {
    const dir = freshDir();
    const files = 12;
    for (let i = 0; i < files; i++)
      sshd.write(`t${dirs}/f-${String(i).padStart(2, '0')}.csv`, csv(i * 100, 10));
    const partner = connect();
    const child = postOrder();
    const reader = defineIntegration({
      id: 'reader',
      mode: 'async',
      handler: (ctx) =>
        ctx.startMany(
          child,
          csvSource(sftpFiles(partner, `${dir}/*.csv`, { archive: `${dir}/done`, stableMs: 0 }), {
            headers: { 'Order No': 'orderId', Qty: 'qty' },
            schema: Order,
          }),
        ),
    });
    const t = await testEngine([reader, child], { storeKind, connections: [partner] });
    closers.push(() => t.close());
    // A second engine (another process's) on the same database.
    const twinStore =
      storeKind === 'sqlite'
        ? new (t.store.constructor as typeof SqliteStore)({ path: (t.store as SqliteStore).db.name })
        : await (await import('../../src/store/postgres/store.js')).PostgresStore.open({
            url: (await import('vitest')).inject('postgresUrl'),
            schema: (t.store as unknown as { schema: string }).schema,
          });
    const twin = await Engine.create({
      integrations: [reader, child],
      store: twinStore,
      connections: [connect({}, 'partner')],
      logger: quietLogger,
      pollIntervalMs: 50,
    });
    twin.start();
    closers.push(async () => {
      await twin.stop(1_000);
      await twinStore.close();
    });
    const [one, two] = await Promise.all([t.engine.accept('reader', {}), twin.accept('reader', {})]);
    const outputs = await Promise.all(
      [one, two].map(({ instanceId }) => waitForStatus(t.engine, instanceId)),
    );
    const counts = outputs.map((instance) => (instance.output as { count: number }).count);
    expect(counts[0]! + counts[1]!).toBe(files * 10);
    expect(readdirSync(join(dir, 'done'))).toHaveLength(files);
    const children = await t.store.listInstances({ integrationId: 'post-order', limit: 1_000 });
    const orderIds = children.items.map((instance) => (instance.input as { orderId: string }).orderId);
    expect(new Set(orderIds).size).toBe(files * 10);
    expect(orderIds).toHaveLength(files * 10);
  });

  it('retries a fan-out cut short by a dropped server with the same files and no duplicate children', async () => {
    const dir = freshDir();
    const records = 20_000;
    // 200 bytes a line: about 4 MB, sixteen 256 KiB reads, so the server drops mid-file.
    const pad = 'x'.repeat(200);
    sshd.write(
      `t${dirs}/big.csv`,
      `Order No,Qty,Pad\n${Array.from({ length: records }, (_, i) => `O-${i},1,${pad}`).join('\n')}\n`,
    );
    const partner = connect({ timeout: 2_000, circuit: false });
    const child = postOrder();
    // The server goes down while the first attempt is at record 2,000 (the schema sees each record).
    let stopped: Promise<void> | undefined;
    const stopMidFile = Order.transform((order) => {
      if (order.orderId === 'O-2000') stopped ??= sshd.stop();
      return order;
    });
    const reader = defineIntegration({
      id: 'big-reader',
      mode: 'async',
      retry: { maxAttempts: 10, initialDelayMs: 100, maxDelayMs: 200, jitter: 0 },
      handler: (ctx) =>
        ctx.startMany(
          child,
          csvSource(sftpFiles(partner, `${dir}/*.csv`, { archive: `${dir}/done`, stableMs: 0 }), {
            headers: { 'Order No': 'orderId', Qty: 'qty' },
            schema: stopMidFile,
          }),
          { chunkSize: 100 },
        ),
    });
    // Only the reader runs: its children stay queued (the figure is the fan-out).
    const t = await testEngine([reader, child], { storeKind, connections: [partner], run: ['big-reader'] });
    closers.push(() => t.close());
    const { instanceId } = await t.engine.accept('big-reader', {});
    await waitFor(() => stopped !== undefined, 'the server stopped mid-file', 30_000);
    await stopped;
    await waitFor(async () => (await t.engine.getInstance(instanceId)).attempt >= 2, 'a retry', 30_000);
    expect((await t.engine.getInstance(instanceId)).status).not.toBe('succeeded');
    expect(existsSync(join(dir, 'big.csv'))).toBe(true); // not archived: the fan-out did not finish
    await sshd.start();
    const done = await waitForStatus(t.engine, instanceId, undefined, 60_000);
    expect(done.status).toBe('succeeded');
    expect(done.output).toMatchObject({ count: records });
    expect((await t.store.countChildren(instanceId)).total).toBe(records);
    expect(readdirSync(join(dir, 'done'))).toEqual(['big.csv']);
  });

  it('never writes the password to the database, the logs or the activity stream', async () => {
    const dir = freshDir();
    sshd.write(`t${dirs}/orders.csv`, csv(0, 3));
    process.env.TEST_SFTP_PASSWORD = sshd.password;
    const partner = connect({ password: secret('TEST_SFTP_PASSWORD') });
    const plain = connect({}, 'plain'); // the password as text in the options
    let logs = '';
    const logger = pino(
      { level: 'trace' },
      new Writable({
        write(chunk, _encoding, done) {
          logs += chunk.toString();
          done();
        },
      }),
    );
    const child = postOrder();
    const reader = defineIntegration({
      id: 'canary',
      mode: 'async',
      async handler(ctx) {
        await ctx.step('put', () => ctx.use(plain).put(`${dir}/out.txt`, 'x'));
        await ctx.step('fail', () => ctx.use(plain).get(`${dir}/missing`)).catch(() => undefined);
        return ctx.startMany(
          child,
          csvSource(sftpFiles(partner, `${dir}/*.csv`, { delete: true, stableMs: 0 }), {
            headers: { 'Order No': 'orderId', Qty: 'qty' },
            schema: Order,
          }),
        );
      },
    });
    const t = await testEngine([reader, child], { storeKind, connections: [partner, plain], logger });
    closers.push(() => t.close());
    const done = await waitForStatus(t.engine, (await t.engine.accept('canary', {})).instanceId);
    expect(done.status).toBe('succeeded');
    const events = JSON.stringify(await t.store.getEvents({ limit: 1_000 }));
    expect(events).toContain('connection.call');
    expect(events).toContain('no-such-file');
    const detail = JSON.stringify(await t.engine.getDetail(done.id));
    let stored: string;
    if (storeKind === 'sqlite') {
      const db = (t.store as SqliteStore).db;
      db.pragma('wal_checkpoint(FULL)');
      stored = readFileSync(db.name).toString('latin1');
    } else {
      // Every table of the test's schema, as text.
      const { default: pg } = await import('pg');
      const client = new pg.Client({ connectionString: (await import('vitest')).inject('postgresUrl') });
      await client.connect();
      const schema = (t.store as unknown as { schema: string }).schema;
      const tables = await client.query(
        'SELECT table_name FROM information_schema.tables WHERE table_schema = $1',
        [schema],
      );
      stored = '';
      for (const { table_name } of tables.rows as { table_name: string }[]) {
        const rows = await client.query(`SELECT t::text AS row FROM "${schema}"."${table_name}" t`);
        stored += rows.rows.map((row: { row: string }) => row.row).join('\n');
      }
      await client.end();
    }
    for (const [where, text] of [
      ['store', stored],
      ['logs', logs],
      ['events', events],
      ['instance', detail],
      ['connection as JSON', JSON.stringify([partner, plain])],
    ] as const) {
      expect(text.includes(sshd.password), `password in ${where}`).toBe(false);
    }
    expect(stored).toContain('orders.csv'); // the store was read
  });
});

it('refuses a source read outside ctx.startMany, and bad options at definition', async () => {
  const partner = connect();
  const source = csvSource(sftpFiles(partner, `${sshd.root}/*.csv`, { delete: true }));
  await expect(source.batches().next()).rejects.toMatchObject({ code: 'invalid-definition' });
  expect(() => sftpFiles(partner, 'relative/*.csv', { delete: true })).toThrow(/absolute/);
  expect(() => sftpFiles(partner, '/in/*.csv', {})).toThrow(/archive/);
  expect(() => sftpConnection('x', { host: 'h', username: 'u', password: 'p', hostKey: 'nope' })).toThrow(
    /SHA256/,
  );
  expect(() => sftpConnection('x', { host: 'h', username: 'u', hostKey: sshd.hostKeyFingerprint })).toThrow(
    /password or a privateKey/,
  );
});
