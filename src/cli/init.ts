/**
 * `tandem init [dir]`: a project of one's own, ready to test and run: a config with a sync route
 * and an async integration of two steps calling one connection, a test of them on the test kit, and
 * the scripts to run both. It adds to a folder, never overwrites: a file that exists stops it before
 * anything is written, except package.json, which gains the scripts and dependencies it lacks (so
 * that `npm init -y && npm install tandem && npx tandem init` works).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';

/** The versions the scaffold asks for; the test kit's tests run on these. */
const ZOD = '^4.1.0';
const VITEST = '^4.0.0';
const TYPES_NODE = '^20.19.0';

/** What `npm init -y` puts in `test`: a placeholder that may be replaced. */
const NPM_PLACEHOLDER_TEST = /^echo "Error: no test specified" && exit 1$/;

const SCRIPTS: Record<string, string> = {
  dev: 'tandem dev',
  start: 'tandem start',
  test: 'vitest run',
};

export interface InitResult {
  dir: string;
  written: string[];
  /** package.json fields it set, when package.json was there already. */
  updated: string[];
}

function ownVersion(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return manifest.version;
}

/** Writes the scaffold into `dir`; throws, having written nothing, if one of its files exists. */
export function initProject(dir: string): InitResult {
  const root = resolve(dir);
  const files = scaffold(basename(root));
  const taken = Object.keys(files).filter((file) => existsSync(join(root, file)));
  if (taken.length > 0) {
    throw new Error(
      `${taken.map((file) => join(relative(process.cwd(), root) || '.', file)).join(', ')} already ${
        taken.length === 1 ? 'exists' : 'exist'
      }; tandem init does not overwrite files (choose an empty folder: tandem init <dir>)`,
    );
  }
  const manifestPath = join(root, 'package.json');
  const updated: string[] = [];
  let manifest: string;
  if (existsSync(manifestPath)) {
    const existing = JSON.parse(readFileSync(manifestPath, 'utf8')) as Record<string, unknown>;
    const merged = mergeManifest(existing, updated);
    manifest = `${JSON.stringify(merged, null, 2)}\n`;
  } else {
    manifest = `${JSON.stringify(newManifest(basename(root)), null, 2)}\n`;
  }
  mkdirSync(root, { recursive: true });
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, file)), { recursive: true });
    writeFileSync(join(root, file), text, { flag: 'wx' });
  }
  writeFileSync(manifestPath, manifest);
  const written = [...Object.keys(files)];
  if (updated.length === 0) written.unshift('package.json');
  return { dir: root, written, updated };
}

function newManifest(name: string) {
  return {
    name: name.toLowerCase().replace(/[^a-z0-9._-]+/g, '-') || 'integrations',
    version: '0.1.0',
    private: true,
    type: 'module',
    scripts: SCRIPTS,
    dependencies: { tandem: `^${ownVersion()}`, zod: ZOD },
    devDependencies: { '@types/node': TYPES_NODE, vitest: VITEST },
  };
}

/** The scaffold's needs added to a package.json that exists; what it set goes to `updated`. */
function mergeManifest(manifest: Record<string, unknown>, updated: string[]): Record<string, unknown> {
  const result = { ...manifest };
  if (result.type !== 'module') {
    // `npm init -y` writes "commonjs"; the scaffold's files are ES modules, as Tandem is.
    result.type = 'module';
    updated.push('type: "module"');
  }
  const scripts = { ...((result.scripts as Record<string, string> | undefined) ?? {}) };
  for (const [name, command] of Object.entries(SCRIPTS)) {
    const current = scripts[name];
    if (current === command) continue;
    if (current !== undefined && !(name === 'test' && NPM_PLACEHOLDER_TEST.test(current))) {
      throw new Error(
        `package.json already has a "${name}" script (${JSON.stringify(current)}); the scaffold's is "${command}"`,
      );
    }
    scripts[name] = command;
    updated.push(`scripts.${name}`);
  }
  result.scripts = scripts;
  const dependencies = { ...((result.dependencies as Record<string, string> | undefined) ?? {}) };
  const devDependencies = { ...((result.devDependencies as Record<string, string> | undefined) ?? {}) };
  const has = (name: string) => dependencies[name] !== undefined || devDependencies[name] !== undefined;
  const need = (target: Record<string, string>, field: string, name: string, version: string) => {
    if (has(name)) return;
    target[name] = version;
    updated.push(`${field}.${name}`);
  };
  need(dependencies, 'dependencies', 'tandem', `^${ownVersion()}`);
  need(dependencies, 'dependencies', 'zod', ZOD);
  need(devDependencies, 'devDependencies', '@types/node', TYPES_NODE);
  need(devDependencies, 'devDependencies', 'vitest', VITEST);
  result.dependencies = dependencies;
  result.devDependencies = devDependencies;
  return result;
}

/** `tandem init [dir]`: writes the scaffold and says what to do next. */
export function initCommand(dir: string | undefined): number {
  const result = initProject(dir ?? '.');
  const where = relative(process.cwd(), result.dir) || '.';
  const lines = [`Wrote ${result.written.map((f) => join(where, f)).join(', ')}`];
  if (result.updated.length > 0)
    lines.push(`Added to ${join(where, 'package.json')}: ${result.updated.join(', ')}`);
  lines.push(
    '',
    'Next:',
    ...(where === '.' ? [] : [`  cd ${where}`]),
    '  npm install',
    '  npm test          # the integrations on the test kit',
    '  npm run dev       # the server on http://localhost:3000, restarted on each save',
    '',
  );
  process.stderr.write(lines.join('\n'));
  return 0;
}

/** The files of the scaffold, by path (package.json apart). */
function scaffold(name: string): Record<string, string> {
  return {
    'tsconfig.json': `${JSON.stringify(
      {
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          skipLibCheck: true,
          noEmit: true,
          allowImportingTsExtensions: true,
          verbatimModuleSyntax: true,
          types: ['node'],
        },
        include: ['*.ts', 'src', 'test'],
      },
      null,
      2,
    )}\n`,
    'tandem.config.ts': CONFIG,
    'src/integrations.ts': INTEGRATIONS,
    'test/integrations.test.ts': TEST,
    '.gitignore': 'node_modules/\n.tandem/\n*.db\n*.db-wal\n*.db-shm\n',
    'README.md': readme(name),
  };
}

const CONFIG = `/**
 * What \`tandem dev\` and \`tandem start\` run: the integrations, the connections they call and the store
 * (SQLite in ./.tandem/tandem.db unless TANDEM_STORE_URL says otherwise, e.g. postgres://…).
 */
import { defineConfig } from 'tandem';
import { integrations } from './src/integrations.ts';

const { hello, reserveStock, nightlyCheck, warehouse } = integrations({
  warehouseUrl: process.env.WAREHOUSE_URL ?? 'http://127.0.0.1:4100',
});

export default defineConfig({
  integrations: [hello, reserveStock, nightlyCheck],
  connections: [warehouse],
  ...(process.env.TANDEM_STORE_URL ? { store: process.env.TANDEM_STORE_URL } : {}),
});
`;

const INTEGRATIONS = `/**
 * Your integrations. Made by a function of the applications' URLs, so that the tests point the
 * connection at a fake application and the config at the real one.
 */
import { defineIntegration, httpConnection } from 'tandem';
import { z } from 'zod';

export function integrations(urls: { warehouseUrl: string }) {
  /** The application the async integration calls: retried with backoff while it is down. */
  const warehouse = httpConnection('warehouse', { baseUrl: urls.warehouseUrl, timeout: 5_000 });

  /** sync: the caller waits for the answer (GET /hello/Ann → { "greeting": "Hello, Ann" }). */
  const hello = defineIntegration({
    id: 'hello',
    mode: 'sync',
    route: 'GET /hello/:name',
    params: z.object({ name: z.string().min(1) }),
    deadline: 2_000,
    async handler(ctx) {
      return { body: { greeting: \`Hello, \${ctx.params.name}\` } };
    },
  });

  /**
   * async: answered 202 once stored, then run: two steps, each kept once it succeeded, so a retry
   * after a failure in the second step does not repeat the first.
   */
  const reserveStock = defineIntegration({
    id: 'reserve-stock',
    mode: 'async',
    route: 'POST /reservations',
    input: z.object({ orderId: z.string().min(1), sku: z.string().min(1), quantity: z.number().int().positive() }),
    track: { orderId: 'orderId' },
    retry: { maxAttempts: 5, initialDelayMs: 60_000, factor: 2, jitter: 0 },
    async handler(ctx) {
      const stock = await ctx.step('check-stock', () =>
        ctx.call<{ available: number }>(warehouse, 'GET', \`/stock/\${encodeURIComponent(ctx.input.sku)}\`),
      );
      if (stock.available < ctx.input.quantity) return { reserved: false, available: stock.available };
      const reservation = await ctx.step('reserve', () =>
        ctx.call<{ reservationId: string }>(warehouse, 'POST', '/reservations', { json: ctx.input }),
      );
      return { reserved: true, reservationId: reservation.reservationId };
    },
  });

  /** scheduled: every day at 02:00 Berlin time, a stock check of the best seller. */
  const nightlyCheck = defineIntegration({
    id: 'nightly-check',
    mode: 'scheduled',
    cron: '0 2 * * *',
    timezone: 'Europe/Berlin',
    parameters: { sku: 'KB-42' },
    async handler(ctx) {
      return ctx.step('check-stock', () =>
        ctx.call<{ available: number }>(warehouse, 'GET', \`/stock/\${encodeURIComponent(ctx.parameters.sku)}\`),
      );
    },
  });

  return { hello, reserveStock, nightlyCheck, warehouse };
}
`;

const TEST = `/**
 * The integrations on the real engine and a real (temporary) store, with a clock the test moves:
 * a backoff of minutes and a nightly slot take milliseconds. See Tandem's docs/testing.md.
 */
import { createTestEngine, fakeApplication } from 'tandem/testing';
import { afterEach, expect, it } from 'vitest';
import { integrations } from '../src/integrations.ts';

const closing: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const item of closing.splice(0)) await item.close();
});

async function setUp(now?: string) {
  const app = await fakeApplication({
    routes: {
      'GET /stock/:sku': { body: { available: 10 } },
      'POST /reservations': { status: 201, body: { reservationId: 'R-1' } },
    },
  });
  closing.push(app);
  const { hello, reserveStock, nightlyCheck, warehouse } = integrations({ warehouseUrl: app.url });
  const t = await createTestEngine({
    integrations: [hello, reserveStock, nightlyCheck],
    connections: [warehouse],
    ...(now ? { now } : {}),
  });
  closing.unshift(t);
  return { t, app, hello, reserveStock, nightlyCheck };
}

it('answers the sync route', async () => {
  const { t, hello } = await setUp();
  const answer = await t.call(hello, { params: { name: 'Ann' } });
  expect(answer.status).toBe(200);
  expect(answer.body).toEqual({ greeting: 'Hello, Ann' });
});

it('retries the reservation with backoff while the warehouse fails, without checking stock again', async () => {
  // A fixed start, hours from the nightly slot: its stock check must not count among these calls.
  const { t, app, reserveStock } = await setUp('2026-03-10T09:00:00Z');
  app.failNext(2, { route: 'POST /reservations', status: 503 });
  const { instanceId } = await t.trigger(reserveStock, { orderId: 'A-1', sku: 'KB-42', quantity: 2 });
  await t.runUntilIdle();
  expect((await t.result(instanceId)).status).toBe('retrying');
  await t.advance(60_000); // the first backoff: 1 min
  expect((await t.result(instanceId)).status).toBe('retrying');
  await t.advance(120_000); // the second: 2 min
  const result = await t.result(instanceId);
  expect(result.status).toBe('succeeded');
  expect(result.output).toEqual({ reserved: true, reservationId: 'R-1' });
  expect(app.count('GET /stock/:sku')).toBe(1); // the first step's result was kept
  expect(app.count('POST /reservations')).toBe(3);
});

it('runs the nightly check at 02:00 Berlin time', async () => {
  const { t, app } = await setUp('2026-03-10T00:30:00Z'); // 01:30 in Berlin
  await t.advance(20 * 60_000);
  expect(app.count('GET /stock/:sku')).toBe(0);
  await t.advance(20 * 60_000); // past 02:00 Berlin (01:00 UTC)
  expect(app.count('GET /stock/:sku')).toBe(1);
});
`;

function readme(name: string): string {
  return `# ${name}

Integrations on [Tandem](https://github.com/tandem-dev/tandem).

\`\`\`sh
npm install
npm test          # the integrations on the test kit: real engine, temporary store, a clock the test moves
npm run dev       # the server on http://localhost:3000, restarted on each save; errors shown, then it waits
\`\`\`

- \`src/integrations.ts\` — \`hello\` (sync, \`GET /hello/:name\`), \`reserve-stock\` (async,
  \`POST /reservations\`: two steps calling the warehouse), \`nightly-check\` (scheduled, 02:00 Berlin).
- \`tandem.config.ts\` — what the server runs. The warehouse is at \`WAREHOUSE_URL\`
  (default http://127.0.0.1:4100); until it answers, \`reserve-stock\` instances retry with backoff.
- \`test/integrations.test.ts\` — a retry with backoff and the nightly slot, in milliseconds.

Try it with the server running:

\`\`\`sh
curl localhost:3000/hello/Ann
curl -X POST localhost:3000/reservations -H 'content-type: application/json' \\
  -d '{"orderId":"A-1","sku":"KB-42","quantity":2}'
\`\`\`

The console is at http://localhost:3000/console/. \`npm start\` runs the server without the restarts;
the store is SQLite in \`./.tandem/tandem.db\` unless \`TANDEM_STORE_URL\` names another (\`postgres://…\`).
`;
}
