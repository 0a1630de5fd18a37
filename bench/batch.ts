/**
 * Batch benchmark: read + validate + fan-out of CSV records. A parent instance reads a generated
 * CSV file with csvSource (zod schema, header mapping, 1% invalid rows) and starts one child
 * instance per valid record with ctx.startMany, committed in chunks (synchronous=FULL). Children
 * are not run (this process runs only the parent): the figure is the fan-out itself. Baselines in
 * the same run: csv-parse alone on the same file, and csvSource (parse + validate) without inserts.
 *
 *   npm run bench:batch                       # 1,000,000 records
 *   npm run bench:batch -- --records 200000 --chunk 2000
 */

import { once } from 'node:events';
import {
  chownSync,
  copyFileSync,
  createReadStream,
  createWriteStream,
  mkdtempSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parse } from 'csv-parse';
import pino from 'pino';
import { z } from 'zod';
import { type SftpConnection, sftpConnection } from '../src/connections/sftp.js';
import { defineIntegration } from '../src/define/integration.js';
import { Engine } from '../src/engine/engine.js';
import { uuidv7 } from '../src/engine/ids.js';
import { csvSource } from '../src/sources/csv.js';
import { sftpFiles } from '../src/sources/sftp-files.js';
import { SqliteStore } from '../src/store/sqlite/store.js';
import type { NewInstance } from '../src/store/store.js';
import { type SshServer, startSshd } from '../test/support/sshd.js';
import { peakRssMbOf } from './processes.js';

const { values } = parseArgs({
  options: {
    records: { type: 'string', default: '1000000' },
    chunk: { type: 'string', default: '1000' },
    'no-sftp': { type: 'boolean', default: false },
  },
});
const RECORDS = Number(values.records);
const CHUNK = Number(values.chunk);

const dir = mkdtempSync(join(tmpdir(), 'tandem-bench-batch-'));
const file = join(dir, 'orders.csv');
const mb = (kb: number) => Math.round(kb / 1024);
const rate = (count: number, ms: number) => Math.round((count / ms) * 1000);

async function generate(): Promise<void> {
  const out = createWriteStream(file);
  out.write('Order No,SKU,Qty,Customer Email\n');
  let buffer = '';
  for (let i = 0; i < RECORDS; i++) {
    buffer +=
      i % 100 === 99
        ? `O-${i},SKU-${i % 500},none,c${i}@example.com\n`
        : `O-${i},SKU-${i % 500},${(i % 9) + 1},c${i}@example.com\n`;
    if (buffer.length > 256_000) {
      if (!out.write(buffer)) await once(out, 'drain');
      buffer = '';
    }
  }
  out.end(buffer);
  await once(out, 'finish');
}

const Order = z.object({
  orderId: z.string().min(1),
  sku: z.string().min(1),
  quantity: z.coerce.number().int().positive(),
  email: z.email(),
});
const headers = { 'Order No': 'orderId', SKU: 'sku', Qty: 'quantity', 'Customer Email': 'email' };

const postOrder = defineIntegration({
  id: 'post-order',
  mode: 'async',
  input: Order,
  track: { orderId: 'orderId' },
  handler: () => {},
});
/** Where the fan-out reads the file: locally, or over SFTP (set before the SFTP case). */
let partner: { connection: SftpConnection; path: string } | undefined;
const importOrders = defineIntegration({
  id: 'import-orders',
  mode: 'async',
  timeout: 30 * 60_000,
  async handler(ctx) {
    const orders = csvSource(
      partner ? sftpFiles(partner.connection, partner.path, { delete: true, stableMs: 0 }) : file,
      { headers, schema: Order },
    );
    return ctx.startMany(postOrder, orders, { chunkSize: CHUNK });
  },
});

/** csv-parse alone: the floor of reading the file. */
async function parseOnly(): Promise<number> {
  const started = performance.now();
  let n = 0;
  for await (const _ of createReadStream(file).pipe(parse({ columns: true }))) n++;
  return rate(n, performance.now() - started);
}

/** csvSource: parse, header mapping, line numbers and zod validation, no store. */
async function readAndValidate(): Promise<number> {
  const started = performance.now();
  const source = csvSource(file, { headers, schema: Order });
  for await (const _ of source.batches());
  return rate(source.report().read, performance.now() - started);
}

/**
 * The store's ceiling for the same children: rows like the ones startMany builds (input, tracking,
 * idempotency key, parent), built in memory beforehand and inserted in 1,000-row transactions.
 */
async function storeOnly(): Promise<number> {
  const store = new SqliteStore({ path: join(dir, 'ceiling.db'), synchronous: 'FULL' });
  const parent = uuidv7();
  const count = Math.round(RECORDS * 0.99);
  let ms = 0;
  for (let i = 0; i < count; i += CHUNK) {
    const rows: NewInstance[] = [];
    for (let j = i; j < Math.min(count, i + CHUNK); j++) {
      const now = Date.now();
      rows.push({
        id: uuidv7(now),
        integrationId: 'post-order',
        mode: 'async',
        status: 'queued',
        inputJson: `{"orderId":"O-${j}","sku":"SKU-${j % 500}","quantity":3,"email":"c${j}@example.com"}`,
        inputHash: 'x'.repeat(43),
        tracking: { orderId: `O-${j}` },
        orderingKey: null,
        idempotencyKey: `${parent}:start:1:${String(j).padStart(10, '0')}`,
        parentId: parent,
        announce: false,
        createdAt: now,
        runAt: now,
      });
    }
    const started = performance.now();
    await store.insertInstances(rows);
    ms += performance.now() - started;
  }
  await store.close();
  return rate(count, ms);
}

/** The real path: a parent instance fanning out every valid record to a child instance. */
async function fanOut(name = 'tandem'): Promise<{ perSecond: number; created: number; ms: number }> {
  const store = new SqliteStore({ path: join(dir, `${name}.db`), synchronous: 'FULL' });
  const engine = await Engine.create({
    integrations: [importOrders, postOrder],
    connections: partner ? [partner.connection] : [],
    store,
    run: ['import-orders'],
    logger: pino({ level: 'warn' }),
  });
  engine.start();
  const started = performance.now();
  const { instanceId } = await engine.accept('import-orders', null);
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    const instance = await engine.getInstance(instanceId);
    if (instance.status === 'succeeded') break;
    if (instance.status === 'failed') throw new Error(`fan-out failed: ${instance.error?.message}`);
  }
  const ms = performance.now() - started;
  const output = (await engine.getInstance(instanceId)).output as { created: number };
  await engine.stop();
  await store.close();
  return { perSecond: rate(RECORDS, ms), created: output.created, ms };
}

/** Resets the process's peak RSS (VmHWM), so that each case's peak is its own (Linux; else a no-op). */
function resetPeakRss(): void {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
  } catch {}
}

/** The fan-out again, the file read over SFTP from a local sshd, with its own peak RSS. */
async function overSftp(): Promise<{ perSecond: number; created: number; ms: number; peakMb: number }> {
  let sshd: SshServer | undefined;
  try {
    sshd = await startSshd();
    const inbox = sshd.mkdir('inbox');
    const remote = join(inbox, 'orders.csv');
    copyFileSync(file, remote);
    const { uid, gid } = statSync(inbox);
    chownSync(remote, uid, gid);
    const connection = sftpConnection('partner', {
      host: sshd.host,
      port: sshd.port,
      username: sshd.username,
      privateKey: sshd.privateKey,
      hostKey: sshd.hostKeyFingerprint,
    });
    partner = { connection, path: join(inbox, 'orders*.csv') };
    resetPeakRss();
    const result = await fanOut('sftp');
    const peakMb = peakRssMbOf(process.pid);
    await connection.close();
    return { ...result, peakMb };
  } finally {
    partner = undefined;
    await sshd?.close();
  }
}

try {
  console.log(`# npm run bench:batch -- --records ${RECORDS} --chunk ${CHUNK}`);
  console.log(`# node ${process.version}, synchronous=FULL, WAL, file in ${tmpdir()}\n`);
  await generate();
  const rssBefore = process.resourceUsage().maxRSS;
  resetPeakRss();
  const full = await fanOut();
  const rssPeak = process.resourceUsage().maxRSS;
  const localPeakMb = peakRssMbOf(process.pid);
  const sftp = values['no-sftp'] ? undefined : await overSftp();
  const floor = await parseOnly();
  const validated = await readAndValidate();
  const ceiling = await storeOnly();
  const row = (name: string, perSecond: number) =>
    console.log(`| ${name} | ${perSecond.toLocaleString('en')} | ${(perSecond / ceiling).toFixed(2)} |`);
  console.log('| measure | records/s | × store ceiling |');
  console.log('|---|---:|---:|');
  row('csv-parse alone (reading floor)', floor);
  row('csvSource: parse + header mapping + line numbers + zod, no store', validated);
  row(`store.insertInstances of prebuilt child rows, ${CHUNK}-row transactions (ceiling)`, ceiling);
  row(`read + validate + fan-out (${full.created.toLocaleString('en')} children committed)`, full.perSecond);
  if (sftp) {
    row(
      `the same over SFTP from a local sshd (${sftp.created.toLocaleString('en')} children committed)`,
      sftp.perSecond,
    );
  }
  console.log(
    `\n${RECORDS.toLocaleString('en')} records in ${(full.ms / 1000).toFixed(1)} s; peak RSS ${mb(rssPeak)} MB (${mb(rssBefore)} MB before the fan-out)`,
  );
  console.log(
    `peak RSS of the fan-out alone (VmHWM reset before it): local file ${Math.round(localPeakMb)} MB`,
  );
  if (sftp)
    console.log(`over SFTP: ${(sftp.ms / 1000).toFixed(1)} s, peak RSS ${Math.round(sftp.peakMb)} MB`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
