import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tempDir } from './support/tmp.js';
import { waitFor } from './support/wait.js';

const root = join(import.meta.dirname, '..');

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });

function config(ids: string[], db: string): string {
  const src = pathToFileURL(join(root, 'src/index.ts')).href;
  return `import { defineConfig, defineIntegration } from '${src}';
export default defineConfig({
  store: 'sqlite:${db}',
  integrations: [${ids.map((id) => `defineIntegration({ id: '${id}', mode: 'async', handler: () => '${id}' })`).join(', ')}],
});
`;
}

describe('tandem dev', () => {
  it('restarts with the new integrations when the config changes', async () => {
    const dir = tempDir('tandem-dev-');
    const file = join(dir.path, 'tandem.config.ts');
    writeFileSync(join(dir.path, 'package.json'), '{"type":"module"}');
    writeFileSync(file, config(['first'], join(dir.path, 'dev.db')));
    const port = await freePort();
    const child = spawn(
      process.execPath,
      [join(root, 'bin/tandem.js'), 'dev', '--port', String(port), '--host', '127.0.0.1', '--config', file],
      { env: { ...process.env, TANDEM_CLI_SOURCE: '1', TANDEM_LOG_LEVEL: 'error' }, stdio: 'ignore' },
    );
    const ids = async () => {
      try {
        const response = await fetch(`http://127.0.0.1:${port}/api/integrations`);
        return ((await response.json()) as { items: { id: string }[] }).items.map((i) => i.id).join(',');
      } catch {
        return '';
      }
    };
    try {
      await waitFor(async () => (await ids()) === 'first', 'the first config', 30_000);
      writeFileSync(file, config(['first', 'second'], join(dir.path, 'dev.db')));
      await waitFor(async () => (await ids()) === 'first,second', 'the reload', 30_000);
      expect(await ids()).toBe('first,second');
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
      dir.cleanup();
    }
  }, 60_000);
});
