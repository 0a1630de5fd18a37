import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../src/store/sqlite/store.js';
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

describe('tandem start shutdown', () => {
  it('with an activity stream open, SIGTERM ends the stream, claims nothing more and exits 0 at once', async () => {
    const dir = tempDir('tandem-shutdown-');
    dirs.push(dir);
    writeFileSync(join(dir.path, 'package.json'), JSON.stringify({ type: 'module' }));
    const attempts = join(dir.path, 'attempts.log');
    const config = join(dir.path, 'tandem.config.ts');
    // The first attempt fails; the retry is due 1.5 s later, while the process is shutting down.
    writeFileSync(
      config,
      `import { appendFileSync } from 'node:fs';
import { defineConfig, defineIntegration } from ${JSON.stringify(INDEX)};
const later = defineIntegration({
  id: 'later',
  mode: 'async',
  route: 'POST /later',
  retry: { maxAttempts: 3, initialDelayMs: 1500, jitter: 0 },
  handler: (ctx) => {
    appendFileSync(${JSON.stringify(attempts)}, 'attempt ' + ctx.attempt + '\\n');
    if (ctx.attempt === 1) throw new Error('not yet');
    return 'done';
  },
});
export default defineConfig({ store: 'sqlite:' + ${JSON.stringify(join(dir.path, 'tandem.db'))}, integrations: [later] });
`,
    );
    const child = spawn(
      process.execPath,
      [BIN, 'start', '--port', '0', '--host', '127.0.0.1', '--config', config],
      {
        env: { ...process.env, TANDEM_CLI_SOURCE: '1', TANDEM_LOG_LEVEL: 'info', TANDEM_ADMIN_TOKEN: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    running.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr!.on('data', (chunk) => {
      stderr += chunk;
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const url = await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`the CLI exited: ${stderr}`);
        return /Tandem listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)?.[1];
      },
      'the CLI to listen',
      30_000,
    );

    const stream = await fetch(`${url}/api/activity?after=start`);
    expect(stream.status).toBe(200);
    const reader = stream.body!.getReader();
    let received = '';
    const streamEnded = (async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return true;
        received += Buffer.from(value).toString();
      }
    })();

    const accepted = await fetch(`${url}/later`, { method: 'POST' });
    expect(accepted.status).toBe(202);
    const { instanceId } = (await accepted.json()) as { instanceId: string };
    await waitFor(() => received.includes('event: retry.scheduled'), 'the first attempt to fail');
    const signalledAt = Date.now();
    child.kill('SIGTERM');

    const outcome = await Promise.race([
      exited,
      new Promise((resolve) => setTimeout(() => resolve('still running after 15 s'), 15_000)),
    ]);
    expect(outcome).toBe(0);
    expect(await streamEnded).toBe(true);
    expect(stdout).toContain('"msg":"stopped"');
    // The retry fell due during the shutdown (or would have): nothing claimed it.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, signalledAt + 1_600 - Date.now())));
    expect(readFileSync(attempts, 'utf8').trim().split('\n')).toEqual(['attempt 1']);
    const store = new SqliteStore({ path: join(dir.path, 'tandem.db') });
    try {
      const instance = await store.getInstance(instanceId);
      expect(instance).toMatchObject({ status: 'retrying', attempt: 1 });
    } finally {
      await store.close();
    }
    expect(existsSync(attempts)).toBe(true);
  }, 60_000);
});
