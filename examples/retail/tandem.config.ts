/**
 * The retail demo: `npm start` runs this config with its simulated applications, on the embedded
 * SQLite store in ./.tandem/demo.db (or `TANDEM_STORE_URL`). The day's order file for
 * `nightly-orders` is written beside the database (or into `DEMO_DATA_DIR`); with
 * `DEMO_ORDERS_SFTP_URL` (`sftp://user@host:22/outbox/orders-*.csv`), `DEMO_ORDERS_SFTP_HOST_KEY`
 * (`SHA256:…`) and `DEMO_ORDERS_SFTP_PASSWORD` (or `DEMO_ORDERS_SFTP_KEY`, a private key's text),
 * it reads the order files from that SFTP server instead and archives them to `…/archive`.
 */
import { dirname, posix, resolve } from 'node:path';
import { defineConfig, secret, sftpConnection } from 'tandem';
import { startApps } from './apps.js';
import { retail } from './integrations.js';
import { writeOrderFile } from './orders-file.js';

const store = process.env.TANDEM_STORE_URL ?? 'sqlite:./.tandem/demo.db';
const dataDir = resolve(
  process.env.DEMO_DATA_DIR ??
    (store.startsWith('sqlite:') ? dirname(store.slice('sqlite:'.length)) : '.tandem'),
);
const orderFile = writeOrderFile(dataDir);
// Under `tandem run` (a one-off run, maybe beside a running demo), the applications take free ports.
const { apps, directory } = await startApps(
  process.env.DEMO_APPS_PORT === undefined && process.env.TANDEM_COMMAND === 'run'
    ? 0
    : Number(process.env.DEMO_APPS_PORT ?? 4001),
);
const sftpUrl = process.env.DEMO_ORDERS_SFTP_URL;
const ordersSftp = sftpUrl === undefined || sftpUrl === '' ? undefined : sftpOrders(new URL(sftpUrl));
const { integrations, connections } = retail({
  ...(ordersSftp ? { ordersSftp } : {}),
  urls: Object.fromEntries(Object.entries(apps).map(([name, app]) => [name, app.url])) as Parameters<
    typeof retail
  >[0]['urls'],
  inbox: dataDir,
});
// A notice, not a result: stderr (stdout is where `tandem run` writes its result).
process.stderr.write(
  [
    'Simulated applications (POST <url>/_down and /_up, or tandem demo down|up <name>):',
    ...Object.values(apps).map((app) => `  ${app.name.padEnd(17)}${app.url}`),
    `  ${'directory'.padEnd(17)}${directory.url}`,
    ordersSftp
      ? `Order files for nightly-orders: ${sftpUrl} (archived to ${ordersSftp.archive})`
      : `Order file for nightly-orders: ${orderFile}`,
    'Walk-through: docs/demo.md; mixed traffic with an inventory outage: npm run demo:traffic',
    '',
  ].join('\n'),
);

export default defineConfig({ integrations, connections, store });

/** The partner's SFTP server of DEMO_ORDERS_SFTP_URL; its credentials stay in the environment. */
function sftpOrders(url: URL) {
  const pattern = decodeURIComponent(url.pathname);
  return {
    connection: sftpConnection('orders-sftp', {
      host: url.hostname,
      port: url.port === '' ? 22 : Number(url.port),
      username: decodeURIComponent(url.username),
      hostKey: process.env.DEMO_ORDERS_SFTP_HOST_KEY ?? '',
      ...(process.env.DEMO_ORDERS_SFTP_KEY
        ? { privateKey: secret('DEMO_ORDERS_SFTP_KEY') }
        : { password: secret('DEMO_ORDERS_SFTP_PASSWORD') }),
    }),
    pattern,
    archive: posix.join(posix.dirname(pattern), 'archive'),
  };
}
