/**
 * The whole path a new user goes, as docs/getting-started.md tells it, against the package as
 * `npm pack` makes it: pack → a fresh folder → install the tarball → `tandem init` → `npm test` of
 * the scaffold → `npm run dev` answers, shows an injected mistake with its file and line and comes
 * back on the fix → `npm start` answers the sync route and completes an async instance against a
 * warehouse. Each command comes from the page itself, so the page cannot drift from what works.
 *
 * Slow by nature: `npm install` fetches from the registry (and may compile better-sqlite3).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packTarball, root } from './support/pack.js';
import { tempDir } from './support/tmp.js';
import { waitFor } from './support/wait.js';

/** The test kit is a separate piece of work; the scaffold's own test needs it. */
const KIT = existsSync(join(root, 'src/testing/index.ts'));

const GUIDE = 'docs/getting-started.md';

/** The ```sh blocks of the guide, each a list of command lines. */
function guideBlocks(): string[][] {
  const text = readFileSync(join(root, GUIDE), 'utf8');
  return [...text.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((match) =>
    match[1]!
      .replace(/\\\n\s*/g, ' ')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== ''),
  );
}

const CURL = `curl() { command curl -sS --fail-with-body --max-time 10 "$@"; echo; }`;

async function bash(script: string, cwd: string, env: NodeJS.ProcessEnv = {}) {
  try {
    return await promisify(execFile)('bash', ['-c', `set -euo pipefail\n${CURL}\n${script}`], {
      cwd,
      env: { ...process.env, ...env },
      timeout: 900_000,
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (error) {
    const { stdout, stderr, code } = error as { stdout: string; stderr: string; code: number };
    throw new Error(`exit ${code}:\n${script}\n--- stderr\n${stderr}\n--- stdout\n${stdout}`);
  }
}

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });

/** A long-running npm script in its own process group, so that stopping it stops all it started. */
function background(command: string, cwd: string, env: NodeJS.ProcessEnv) {
  const [program, ...args] = command.split(' ');
  const child: ChildProcess = spawn(program!, args, {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout!.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr!.on('data', (chunk) => {
    output += chunk;
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  return {
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null && child.pid)
        process.kill(-child.pid, 'SIGTERM');
      await exited;
    },
  };
}

async function get(url: string): Promise<{ status: number; body: unknown } | null> {
  try {
    const response = await fetch(url);
    return { status: response.status, body: await response.json() };
  } catch {
    return null;
  }
}

/** The application the scaffold's async integration calls. */
async function warehouse(): Promise<{ url: string; received: string[]; server: Server }> {
  const received: string[] = [];
  const server = createServer((request, response) => {
    received.push(`${request.method} ${request.url}`);
    request.resume();
    request.on('end', () => {
      const reserve = request.method === 'POST' && request.url === '/reservations';
      response.writeHead(reserve ? 201 : 200, { 'content-type': 'application/json' });
      response.end(JSON.stringify(reserve ? { reservationId: 'R-1' } : { available: 10 }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, received, server };
}

const work = tempDir('tandem-adoption-');
let tarball: string;

beforeAll(async () => {
  tarball = await packTarball(work.path);
}, 900_000);
afterAll(() => work.cleanup());

describe('the packed package', () => {
  it('holds dist/ (JS and .d.ts), bin/, the built console, README and LICENSE, and no tests or benches', async () => {
    const { stdout } = await promisify(execFile)('tar', ['-tzf', tarball]);
    const files = stdout.split('\n').filter(Boolean);
    for (const file of [
      'package/package.json',
      'package/README.md',
      'package/LICENSE',
      'package/bin/tandem.js',
      'package/dist/index.js',
      'package/dist/index.d.ts',
      'package/dist/cli/main.js',
      'package/console/dist/index.html',
    ]) {
      expect(files, file).toContain(file);
    }
    if (KIT) expect(files).toContain('package/dist/testing/index.d.ts');
    const stray = files.filter((f) => /^package\/(test|bench|examples|src)\/|\.test\.|\.map$/.test(f));
    expect(stray).toEqual([]);
  });
});

describe(`a new user, by ${GUIDE}`, () => {
  it('init → npm test → npm run dev (a mistake and its fix) → npm start completes an async instance', async () => {
    const blocks = guideBlocks();
    // The guide's shape: set-up, test, dev, requests to it, start.
    expect(blocks.map((b) => b[0])).toEqual([
      'mkdir my-integrations && cd my-integrations',
      'npm test',
      'npm run dev',
      'curl localhost:3000/hello/Ann',
      'npm start',
    ]);
    const [setUp, test, , requests] = blocks as [string[], string[], string[], string[], string[]];

    // 1. The set-up, with the tarball for the registry's package.
    const setUpScript = setUp
      .map((line) => (line === 'npm install tandem' ? `npm install --no-audit --no-fund ${tarball}` : line))
      .join('\n');
    const installed = await bash(setUpScript, work.path);
    const project = join(work.path, 'my-integrations');
    expect(installed.stderr).toMatch(/Wrote .*tandem\.config\.ts/);
    // What a user installs supports the Node the package declares (a root `overrides` would not
    // reach them: the dependency pinned in the package does).
    expect(installed.stderr).not.toContain('EBADENGINE');
    const manifest = JSON.parse(readFileSync(join(project, 'package.json'), 'utf8'));
    expect(manifest.type).toBe('module');
    expect(manifest.scripts).toMatchObject({ dev: 'tandem dev', start: 'tandem start', test: 'vitest run' });
    expect(manifest.dependencies.tandem).toMatch(/^file:.*tandem-.*\.tgz$/);

    // A second init refuses, and changes nothing.
    const config = readFileSync(join(project, 'tandem.config.ts'), 'utf8');
    await expect(bash('npx tandem init', project)).rejects.toThrow(/does not overwrite/);
    expect(readFileSync(join(project, 'tandem.config.ts'), 'utf8')).toBe(config);

    // 2. The scaffold's tests, on the test kit.
    if (KIT) {
      const tested = await bash(test.join('\n'), project, { NO_COLOR: '1', FORCE_COLOR: '0' });
      // biome-ignore lint/suspicious/noControlCharactersInRegex: colour codes, should a terminal's settings win.
      const report = `${tested.stdout}${tested.stderr}`.replace(/\u001b\[[0-9;]*m/g, '');
      expect(report).toMatch(/Tests\s+3 passed/);
    }

    // 3. `npm run dev`, the requests of the guide, then a mistake and its fix.
    const devPort = await freePort();
    const dev = background('npm run dev', project, {
      TANDEM_PORT: String(devPort),
      TANDEM_LOG_LEVEL: 'warn',
    });
    const base = `http://127.0.0.1:${devPort}`;
    try {
      await waitFor(async () => (await get(`${base}/hello/Ann`))?.status === 200, 'npm run dev', 60_000);
      const asked = await bash(
        requests.map((l) => l.replaceAll('localhost:3000', `127.0.0.1:${devPort}`)).join('\n'),
        project,
      );
      expect(asked.stdout).toContain('{"greeting":"Hello, Ann"}');
      expect(asked.stdout).toMatch(/"instanceId"/);
      expect(asked.stdout).toMatch(/"integrationId":"reserve-stock"/);

      const file = join(project, 'src/integrations.ts');
      const good = readFileSync(file, 'utf8');
      writeFileSync(file, good.replace("mode: 'sync'", "mdoe: 'sync'"));
      await waitFor(() => /waiting for a change/.test(dev.output()), 'dev to show the mistake', 60_000);
      expect(dev.output()).toMatch(/src\/integrations\.ts:\d+:\d+: Integration "hello": mode must be/);
      expect(await get(`${base}/hello/Ann`)).toBeNull();
      writeFileSync(file, good);
      await waitFor(
        async () => (await get(`${base}/hello/Ann`))?.status === 200,
        'dev after the fix',
        60_000,
      );
    } finally {
      await dev.stop();
    }

    // 4. `npm start` with a warehouse that answers: the sync route, and an async instance to the end.
    const app = await warehouse();
    const port = await freePort();
    const server = background('npm start', project, {
      TANDEM_PORT: String(port),
      WAREHOUSE_URL: app.url,
      TANDEM_LOG_LEVEL: 'warn',
    });
    try {
      const started = `http://127.0.0.1:${port}`;
      await waitFor(async () => (await get(`${started}/healthz`))?.status === 200, 'npm start', 60_000);
      expect(await get(`${started}/hello/Bo`)).toEqual({ status: 200, body: { greeting: 'Hello, Bo' } });
      const accepted = await fetch(`${started}/reservations`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ orderId: 'A-2', sku: 'KB-42', quantity: 2 }),
      });
      expect(accepted.status).toBe(202);
      const { instanceId } = (await accepted.json()) as { instanceId: string };
      const done = await waitFor(
        async () => {
          const detail = (await get(`${started}/api/instances/${instanceId}`))?.body as
            | { instance: { status: string; output: unknown } }
            | undefined;
          return detail?.instance.status === 'succeeded' ? detail.instance : null;
        },
        'the reservation to complete',
        60_000,
      );
      expect(done.output).toEqual({ reserved: true, reservationId: 'R-1' });
      expect(app.received).toEqual(['GET /stock/KB-42', 'POST /reservations']);
    } finally {
      await server.stop();
      await new Promise((resolve) => app.server.close(resolve));
    }
  }, 1_800_000);
});
