import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { tempDir } from './support/tmp.js';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..');

describe('tandem run', () => {
  it('runs a scheduled integration now with parameter overrides, and exits 1 when it fails', async () => {
    const dir = tempDir('tandem-cli-run-');
    try {
      // A project of its own, as ESM (the config imports the ESM package).
      writeFileSync(join(dir.path, 'package.json'), '{"type":"module"}');
      const config = join(dir.path, 'tandem.config.ts');
      const src = pathToFileURL(join(root, 'src/index.ts')).href;
      writeFileSync(
        config,
        `import { defineConfig, defineIntegration } from '${src}';
const report = defineIntegration({
  id: 'nightly-report',
  mode: 'scheduled',
  cron: '0 2 * * *',
  parameters: { limit: 10, region: 'north' },
  handler: (ctx) => ({ limit: ctx.parameters.limit, region: ctx.parameters.region }),
});
const broken = defineIntegration({ id: 'broken', mode: 'async', retry: { maxAttempts: 1 }, handler: () => { throw new Error('nope'); } });
export default defineConfig({ integrations: [report, broken], store: 'sqlite:${join(dir.path, 'cli.db')}' });
`,
      );
      const env = { ...process.env, TANDEM_CLI_SOURCE: '1', TANDEM_LOG_LEVEL: 'error' };
      const ok = await run(
        process.execPath,
        [join(root, 'bin/tandem.js'), 'run', 'nightly-report', '--param', 'limit=5', '--config', config],
        { env },
      );
      const result = JSON.parse(ok.stdout.trim().split('\n').at(-1)!);
      expect(result).toMatchObject({ status: 'succeeded', output: { limit: 5, region: 'north' } });
      expect(ok.stderr).toContain('started nightly-report instance');
      const failed = await run(
        process.execPath,
        [join(root, 'bin/tandem.js'), 'run', 'broken', '--input', '{}', '--config', config],
        { env },
      ).catch((error: { code: number; stdout: string }) => error);
      expect((failed as { code: number }).code).toBe(1);
      expect(JSON.parse((failed as { stdout: string }).stdout.trim())).toMatchObject({
        status: 'failed',
        error: 'nope',
      });
    } finally {
      dir.cleanup();
    }
  }, 60_000);
});

/** Holds a port, as a running demo would; resolves to null when something else holds it already. */
const hold = (port: number) =>
  new Promise<Server | null>((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(null));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });

describe('tandem run of the demo', () => {
  it('runs beside a running demo on free ports of its own, keeps stdout for the result, and exits', async () => {
    const dir = tempDir('tandem-cli-run-demo-');
    // The demo's directory and first applications' ports, taken as by `npm start` in another terminal.
    const held = await Promise.all([4000, 4001, 4011].map(hold));
    try {
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        TANDEM_CLI_SOURCE: '1',
        TANDEM_LOG_LEVEL: 'warn',
        TANDEM_STORE_URL: `sqlite:${join(dir.path, 'demo.db')}`,
      };
      delete env.DEMO_APPS_PORT;
      delete env.TANDEM_COMMAND;
      const done = await run(
        process.execPath,
        [
          join(root, 'bin/tandem.js'),
          'run',
          'nightly-orders',
          '--config',
          'examples/retail/tandem.config.ts',
        ],
        { cwd: root, env, timeout: 90_000 },
      );
      // stdout: the result alone, one JSON line.
      const lines = done.stdout.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0]!)).toMatchObject({
        status: 'succeeded',
        output: { children: { total: 6, succeeded: 6 } },
        error: null,
      });
      // Everything else on stderr: the applications' list (on ports of its own), the progress.
      const apps = [...done.stderr.matchAll(/^ {2}(\S+)\s+http:\/\/127\.0\.0\.1:(\d+)$/gm)];
      expect(apps.map((m) => m[1])).toContain('order-processing');
      for (const [, , port] of apps) expect([4000, 4001, 4011]).not.toContain(Number(port));
      expect(done.stderr).toContain('started nightly-orders instance');
    } finally {
      for (const server of held) server?.close();
      dir.cleanup();
    }
  }, 120_000);
});
