import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
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
