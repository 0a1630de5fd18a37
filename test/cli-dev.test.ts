import { type ChildProcess, spawn } from 'node:child_process';
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
function config(db: string, mode = 'mode'): string {
  const src = pathToFileURL(join(root, 'src/index.ts')).href;
  return `import { defineConfig, defineIntegration } from '${src}';
import { IDS } from './ids.ts';
export default defineConfig({
  store: 'sqlite:${db}',
  integrations: IDS.map((id) => defineIntegration({ id, ${mode}: 'async', handler: () => id } as never)),
});
`;
}
const idsModule = (ids: string[]) => `export const IDS: string[] = ${JSON.stringify(ids)};\n`;

/** `tandem dev` on a project in a temporary folder (the store beside the config, where users keep it). */
async function devProject(files: { ids: string; config?: (db: string) => string }) {
  const dir = tempDir('tandem-dev-');
  const file = join(dir.path, 'tandem.config.ts');
  writeFileSync(join(dir.path, 'package.json'), '{"type":"module"}');
  writeFileSync(join(dir.path, 'ids.ts'), files.ids);
  writeFileSync(file, (files.config ?? config)(join(dir.path, 'dev.db')));
  const port = await freePort();
  const child: ChildProcess = spawn(
    process.execPath,
    [join(root, 'bin/tandem.js'), 'dev', '--port', String(port), '--host', '127.0.0.1', '--config', file],
    {
      env: { ...process.env, TANDEM_CLI_SOURCE: '1', TANDEM_LOG_LEVEL: 'error' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout!.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr!.on('data', (chunk) => {
    output += chunk;
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const ids = async () => {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/api/integrations`);
      return ((await response.json()) as { items: { id: string }[] }).items.map((i) => i.id).join(',');
    } catch {
      return '';
    }
  };
  return {
    dir: dir.path,
    file,
    ids,
    output: () => output,
    restarts: () => output.split('Restarting').length - 1,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      dir.cleanup();
    },
  };
}

describe('tandem dev', () => {
  it('restarts when an integration module changes, and not when its store (beside it) is written', async () => {
    const dev = await devProject({ ids: idsModule(['first']) });
    try {
      await waitFor(async () => (await dev.ids()) === 'first', 'the first config', 30_000);
      const before = dev.restarts();
      const port = /listening on http:\/\/[^:]+:(\d+)/.exec(dev.output())![1];
      for (let i = 0; i < 5; i++) {
        const response = await fetch(`http://127.0.0.1:${port}/api/integrations/first/run`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{}',
        });
        expect(response.status).toBe(202);
      }
      // The accepts and their runs wrote the store; a watcher reacts within a few hundred ms.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(dev.restarts()).toBe(before);
      expect(await dev.ids()).toBe('first');

      writeFileSync(join(dev.dir, 'ids.ts'), idsModule(['first', 'second']));
      await waitFor(async () => (await dev.ids()) === 'first,second', 'the reload', 30_000);
      expect(dev.restarts()).toBeGreaterThan(before);
    } finally {
      await dev.stop();
    }
  }, 90_000);

  it('shows a config error with its file and line, waits, and restarts on the fix', async () => {
    const dev = await devProject({ ids: idsModule(['first']), config: (db) => config(db, 'mdoe') });
    try {
      await waitFor(() => /waiting for a change/.test(dev.output()), 'dev to wait after the error', 30_000);
      // The error, where it is: the config's line that defines the integration.
      expect(dev.output()).toMatch(
        /tandem\.config\.ts:5:\d+: Integration "first": mode must be "sync", "async" or "scheduled"/,
      );
      expect(await dev.ids()).toBe('');
      writeFileSync(dev.file, config(join(dev.dir, 'dev.db')));
      await waitFor(async () => (await dev.ids()) === 'first', 'the server after the fix', 30_000);
    } finally {
      await dev.stop();
    }
  }, 90_000);

  it('after a syntax error in an imported module, the save of that module restarts it', async () => {
    const dev = await devProject({ ids: 'export const IDS: string[] = ["first", ;\n' });
    try {
      await waitFor(() => /waiting for a change/.test(dev.output()), 'dev to wait after the error', 30_000);
      expect(dev.output()).toMatch(/ids\.ts:1:\d+/);
      writeFileSync(join(dev.dir, 'ids.ts'), idsModule(['first']));
      await waitFor(async () => (await dev.ids()) === 'first', 'the server after the fix', 30_000);
      // A mistake again, in a running server's module: it stops, says why, and comes back on the fix.
      writeFileSync(join(dev.dir, 'ids.ts'), 'export const IDS: string[] = [;\n');
      await waitFor(
        () => dev.output().split('waiting for a change').length === 3,
        'the second error',
        30_000,
      );
      writeFileSync(join(dev.dir, 'ids.ts'), idsModule(['first', 'second']));
      await waitFor(async () => (await dev.ids()) === 'first,second', 'the second fix', 30_000);
    } finally {
      await dev.stop();
    }
  }, 90_000);
});
