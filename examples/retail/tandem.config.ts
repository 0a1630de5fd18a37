/**
 * The retail demo: `npm start` runs this config with its simulated applications, on the embedded
 * SQLite store in ./.tandem/demo.db.
 */
import { defineConfig } from '../../src/define/config.js';
import { startApps } from './apps.js';
import { retail } from './integrations.js';

const apps = await startApps();
const { integrations, connections } = retail(
  Object.fromEntries(Object.entries(apps).map(([name, app]) => [name, app.url])) as Parameters<
    typeof retail
  >[0],
);
process.stdout.write(
  `Simulated applications: ${Object.values(apps)
    .map((app) => `${app.name} ${app.url}`)
    .join(', ')}\n`,
);

export default defineConfig({
  integrations,
  connections,
  store: process.env.TANDEM_STORE_URL ?? 'sqlite:./.tandem/demo.db',
});
