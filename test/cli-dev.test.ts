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

/** A config whose integration ids come from `./ids.ts`, an imported module as integrations are. */
function config(db: string): string {
  const src = pathToFileURL(join(root, 'src/index.ts')).href;
  return `import { defineConfig, defineIntegration } from '${src}';
import { IDS } from './ids.ts';
export default defineConfig({
  store: 'sqlite:${db}',
  integrations: IDS.map((id) => defineIntegration({ id, mode: 'async', handler: () => id })),
});
`;
}
const idsModule = (ids: string[]) => `export const IDS: string[] = ${JSON.stringify(ids)};\n`;

describe('tandem dev', () => {
  it('restarts when an integration module changes, and not when its store (beside it) is written', async () => {
    const dir = tempDir('tandem-dev-');
    const file = join(dir.path, 'tandem.config.ts');
    writeFileSync(join(dir.path, 'package.json'), '{"type":"module"}');
    writeFileSync(join(dir.path, 'ids.ts'), idsModule(['first']));
    // The store in the config's own folder, where users keep it.
    writeFileSync(file, config(join(dir.path, 'dev.db')));
    const port = await freePort();
    const child = spawn(
      process.execPath,
      [join(root, 'bin/tandem.js'), 'dev', '--port', String(port), '--host', '127.0.0.1', '--config', file],
      {
        env: { ...process.env, TANDEM_CLI_SOURCE: '1', TANDEM_LOG_LEVEL: 'error' },
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    let output = '';
    child.stdout!.on('data', (chunk) => {
      output += chunk;
    });
    const restarts = () => output.split('Restarting').length - 1;
    const exited = new Promise((resolve) => child.once('exit', resolve));
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
      const before = restarts();
      for (let i = 0; i < 5; i++) {
        const response = await fetch(`http://127.0.0.1:${port}/api/integrations/first/run`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{}',
        });
        expect(response.status).toBe(202);
      }
      // The accepts and their runs wrote the store; Node's watcher reacts within a few hundred ms.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(restarts()).toBe(before);
      expect(await ids()).toBe('first');

      writeFileSync(join(dir.path, 'ids.ts'), idsModule(['first', 'second']));
      await waitFor(async () => (await ids()) === 'first,second', 'the reload', 30_000);
      expect(restarts()).toBeGreaterThan(before);
    } finally {
      child.kill('SIGTERM');
      await exited;
      dir.cleanup();
    }
  }, 60_000);
});
