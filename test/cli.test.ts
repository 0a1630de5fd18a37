import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from './support/tmp.js';
import { waitFor } from './support/wait.js';

const BIN = fileURLToPath(new URL('../bin/tandem.js', import.meta.url));
const INDEX = fileURLToPath(new URL('../src/index.ts', import.meta.url));

const running: ChildProcess[] = [];
const dirs: { cleanup: () => void }[] = [];
afterEach(() => {
  for (const child of running.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  for (const dir of dirs.splice(0)) dir.cleanup();
});

/** A user's project is an ESM package, like ours. */
function projectDir() {
  const dir = tempDir('tandem-cli-');
  dirs.push(dir);
  writeFileSync(join(dir.path, 'package.json'), JSON.stringify({ type: 'module' }));
  return dir;
}

function configFile(dir: string, integrations: string): string {
  const file = join(dir, 'tandem.config.ts');
  writeFileSync(
    file,
    `import { writeFileSync } from 'node:fs';
import { defineConfig, defineIntegration } from ${JSON.stringify(INDEX)};
const slow = defineIntegration({
  id: 'slow',
  mode: 'sync',
  route: 'GET /slow',
  handler: async () => {
    writeFileSync(${JSON.stringify(join(dir, 'slow-started'))}, '1');
    await new Promise((resolve) => setTimeout(resolve, 400));
    return { body: 'finished' };
  },
});
const work = defineIntegration({ id: 'work', mode: 'async', route: 'POST /work', handler: () => 'done' });
export default defineConfig({ store: 'sqlite:' + ${JSON.stringify(join(dir, 'tandem.db'))}, integrations: [${integrations}] });
`,
  );
  return file;
}

function launch(args: string[]) {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, TANDEM_CLI_SOURCE: '1', TANDEM_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.push(child);
  const output = { stdout: '', stderr: '' };
  child.stdout!.on('data', (chunk) => {
    output.stdout += chunk;
  });
  child.stderr!.on('data', (chunk) => {
    output.stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output, exited };
}

describe('tandem start', () => {
  it('serves the config, and on SIGTERM lets an in-flight sync request finish before exiting 0', async () => {
    const dir = projectDir();
    const config = configFile(dir.path, 'slow, work');
    const cli = launch(['start', '--port', '0', '--host', '127.0.0.1', '--config', config]);
    const url = await waitFor(
      () => {
        if (cli.child.exitCode !== null) throw new Error(`the CLI exited: ${cli.output.stderr}`);
        return /Tandem listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(cli.output.stdout)?.[1];
      },
      'the CLI to listen',
      30_000,
    );
    const accepted = await fetch(`${url}/work`, { method: 'POST' });
    expect(accepted.status).toBe(202);

    const slow = fetch(`${url}/slow`).then(async (res) => [res.status, await res.text()] as const);
    await waitFor(() => existsSync(join(dir.path, 'slow-started')), 'the slow handler to start');
    cli.child.kill('SIGTERM');
    expect(await slow).toEqual([200, 'finished']);
    expect(await cli.exited).toBe(0);
    expect(cli.output.stdout).toContain('"msg":"stopped"');
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  });

  it('refuses to start with a trigger route under a reserved path, saying why', async () => {
    const dir = projectDir();
    const config = join(dir.path, 'reserved.config.ts');
    writeFileSync(
      config,
      `import { defineConfig, defineIntegration } from ${JSON.stringify(INDEX)};
export default defineConfig({
  store: 'sqlite:' + ${JSON.stringify(join(dir.path, 'tandem.db'))},
  integrations: [defineIntegration({ id: 'sneaky', mode: 'sync', route: 'GET /api/orders', handler: () => 1 })],
});
`,
    );
    const cli = launch(['start', '--port', '0', '--config', config]);
    expect(await cli.exited).toBe(1);
    expect(cli.output.stderr).toContain('route path "/api/orders" is under "/api", which Tandem reserves');
  });

  it('explains a missing config and an unknown command', async () => {
    const missing = launch(['start', '--config', '/nonexistent/tandem.config.ts']);
    expect(await missing.exited).toBe(1);
    expect(missing.output.stderr).toContain('does not exist');
    const unknown = launch(['launch']);
    expect(await unknown.exited).toBe(2);
    expect(unknown.output.stderr).toContain('Unknown command "launch"');
  });
});
