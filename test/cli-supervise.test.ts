import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { EXIT } from '../src/cli/exit.js';
import { main } from '../src/cli/main.js';
import { parseStartArgs } from '../src/cli/start.js';
import { spawnCli } from './support/cli.js';
import { tempDir } from './support/tmp.js';
import { waitFor } from './support/wait.js';

const INDEX = fileURLToPath(new URL('../src/index.ts', import.meta.url));

const running: ChildProcess[] = [];
const pids: number[] = [];
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const child of running.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  for (const pid of pids.splice(0)) if (alive(pid)) process.kill(pid, 'SIGKILL');
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A project whose async integration answers with the pid of the process that ran it. The poll
 * interval is long (30 s): work started sooner was woken by the api process's commit. Loading the
 * config fails while the file `broken` exists.
 */
function project(store?: string) {
  const dir = tempDir('tandem-supervise-');
  cleanups.push(dir.cleanup);
  writeFileSync(join(dir.path, 'package.json'), JSON.stringify({ type: 'module' }));
  const config = join(dir.path, 'tandem.config.ts');
  const broken = join(dir.path, 'broken');
  writeFileSync(
    config,
    `import { existsSync } from 'node:fs';
import { defineConfig, defineIntegration } from ${JSON.stringify(INDEX)};
if (existsSync(${JSON.stringify(broken)})) throw new Error('the config is broken');
const work = defineIntegration({ id: 'work', mode: 'async', route: 'POST /work', handler: () => ({ pid: process.pid }) });
export default defineConfig({
  store: ${JSON.stringify(store ?? `sqlite:${join(dir.path, 'tandem.db')}`)},
  integrations: [work],
  pollIntervalMs: 30_000,
});
`,
  );
  return { config, broken };
}

/** `tandem start` (supervising unless told otherwise) with its output. */
function launch(args: string[], env: Record<string, string> = {}) {
  const { child, output, exited } = spawnCli(
    ['start', '--host', '127.0.0.1', '--port', '0', ...args],
    running,
    {
      TANDEM_ADMIN_TOKEN: '',
      ...env,
    },
  );
  const lines = () =>
    output.stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  /** The pids of the children, once the supervisor says it supervises them. */
  const supervised = async () => {
    const line = await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`tandem start exited: ${output.stderr}`);
        return lines().find((l) => String(l.msg).startsWith('supervising'));
      },
      'the supervisor to start its processes',
      60_000,
    );
    const found = line.processes as { process: string; pid: number }[];
    pids.push(...found.map((p) => p.pid));
    return Object.fromEntries(found.map((p) => [p.process, p.pid]));
  };
  const url = () => /Tandem listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(output.stdout)?.[1];
  return { child, output, exited, lines, supervised, url };
}

async function accept(url: string): Promise<string> {
  const response = await fetch(`${url}/work`, { method: 'POST' });
  expect(response.status).toBe(202);
  return ((await response.json()) as { instanceId: string }).instanceId;
}

/** The instance once it succeeded: who ran it, and how long after its accept it finished. */
async function succeeded(url: string, id: string) {
  return waitFor(
    async () => {
      const { instance } = (await (await fetch(`${url}/api/instances/${id}`)).json()) as {
        instance: { status: string; output: { pid: number }; createdAt: number; updatedAt: number };
      };
      return instance.status === 'succeeded'
        ? { pid: instance.output.pid, ms: instance.updatedAt - instance.createdAt }
        : undefined;
    },
    `instance ${id} to succeed`,
    20_000,
  );
}

describe('tandem start, supervised', () => {
  it('runs an api process and a worker on one SQLite file: the worker is woken by the accept, a crashed worker is restarted, one SIGTERM stops all', async () => {
    const { config } = project();
    const cli = launch(['--config', config, '--workers', '1']);
    const { api, 'worker 1': worker } = (await cli.supervised()) as Record<string, number>;
    const url = cli.url()!;
    expect(api).not.toBe(worker);

    // The worker ran it, far sooner than its 30 s poll: the api's commit woke it.
    const first = await succeeded(url, await accept(url));
    expect(first.pid).toBe(worker);
    expect(first.ms).toBeLessThan(10_000);

    // A worker that crashes is restarted, and the new one takes the work.
    process.kill(worker!, 'SIGKILL');
    const restarted = await waitFor(
      () => cli.lines().find((l) => l.msg === 'worker 1 exited unexpectedly; restarting it'),
      'the supervisor to restart the worker',
    );
    expect(restarted).toMatchObject({ role: 'supervisor', process: 'worker 1', signal: 'SIGKILL' });
    const second = await waitFor(
      () => cli.lines().find((l) => l.role === 'worker' && l.msg === 'tandem listening' && l.pid !== worker),
      'a new worker to start',
      60_000,
    );
    pids.push(second.pid as number);
    expect((await succeeded(url, await accept(url))).pid).toBe(second.pid);

    cli.child.kill('SIGTERM');
    expect(await cli.exited).toBe(0);
    for (const pid of [api, second.pid as number]) expect(alive(pid!)).toBe(false);
    // One merged output: the startup lines once, every other line JSON naming its process.
    expect(cli.output.stdout.match(/Tandem listening on/g)).toHaveLength(1);
    expect(cli.output.stdout.match(/Console: /g)).toHaveLength(1);
    const roles = new Set(cli.lines().map((l) => `${l.role}`));
    expect([...roles].sort()).toEqual(['api', 'supervisor', 'worker']);
    for (const line of cli.lines()) expect(typeof line.pid).toBe('number');
    expect(
      cli
        .lines()
        .filter((l) => l.msg === 'stopped')
        .map((l) => l.role),
    ).toEqual(expect.arrayContaining(['api', 'worker']));
  }, 180_000);

  it('leaves no child behind when the supervisor is SIGKILLed', async () => {
    const { config } = project();
    const cli = launch(['--config', config, '--workers', '2']);
    const children = Object.values(await cli.supervised());
    expect(children).toHaveLength(3);
    cli.child.kill('SIGKILL');
    await waitFor(() => children.every((pid) => !alive(pid)), 'every child to exit', 15_000);
  }, 120_000);

  it('gives up with exit 1 when a crashed child fails again at every restart', async () => {
    const { config, broken } = project();
    const cli = launch(['--config', config], { TANDEM_WORKERS: '1' });
    const { 'worker 1': worker } = await cli.supervised();
    writeFileSync(broken, '');
    process.kill(worker!, 'SIGKILL');
    const code = await Promise.race([
      cli.exited,
      new Promise((resolve) => setTimeout(() => resolve('still running after 90 s'), 90_000)),
    ]);
    expect(code).toBe(1);
    expect(cli.output.stderr).toContain('the config is broken');
    const gaveUp = cli.lines().find((l) => String(l.msg).includes('giving up'));
    expect(gaveUp).toMatchObject({ role: 'supervisor', process: 'worker 1', failures: 5 });
    expect(
      cli.lines().filter((l) => l.msg === 'worker 1 exited unexpectedly; restarting it').length,
    ).toBeGreaterThanOrEqual(4);
  }, 180_000);

  it('runs one process when the store is in memory, which a second process could not open', async () => {
    const { config } = project('sqlite::memory:');
    const cli = launch(['--config', config, '--workers', '1']);
    const { api, ...others } = await cli.supervised();
    expect(others).toEqual({});
    const url = cli.url()!;
    expect((await succeeded(url, await accept(url))).pid).toBe(api);
    cli.child.kill('SIGTERM');
    expect(await cli.exited).toBe(0);
  }, 120_000);

  it('reads --workers over TANDEM_WORKERS, only without a role, and refuses what is not a count', () => {
    // One process by default: measured faster on SQLite (docs/deploy.md).
    expect(parseStartArgs([], {}).workers).toBeUndefined();
    expect(parseStartArgs(['--workers', '1'], {}).workers).toBe(1);
    expect(parseStartArgs(['--workers', '3'], { TANDEM_WORKERS: '2' }).workers).toBe(3);
    expect(parseStartArgs([], { TANDEM_WORKERS: '2' }).workers).toBe(2);
    // 0: this process does all, as before supervision.
    expect(parseStartArgs(['--workers', '0'], {})).toMatchObject({ role: 'all' });
    expect(parseStartArgs(['--workers', '0'], {}).workers).toBeUndefined();
    expect(parseStartArgs([], { TANDEM_ROLE: 'worker', TANDEM_WORKERS: '2' }).workers).toBeUndefined();
    expect(() => parseStartArgs(['--role', 'api', '--workers', '2'], {})).toThrow(
      '--workers is for a supervised start: with --role api, this process is that one role',
    );
    expect(() => parseStartArgs(['--workers', 'many'], {})).toThrow(
      '--workers many is not a number of processes',
    );
  });

  it('tandem dev refuses --workers: it restarts one process', async () => {
    const write = process.stderr.write;
    let stderr = '';
    process.stderr.write = ((chunk: string) => {
      stderr += chunk;
      return true;
    }) as typeof process.stderr.write;
    try {
      expect(await main(['dev', '--workers', '2'])).toBe(EXIT.usage);
    } finally {
      process.stderr.write = write;
    }
    expect(stderr).toContain('tandem dev runs one process: --workers is for tandem start');
  });
});
