import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { EXIT } from '../src/cli/exit.js';
import { HELP, USAGE } from '../src/cli/help.js';
import { COMMAND_NAMES, main } from '../src/cli/main.js';
import { spawnCli } from './support/cli.js';
import { tempDir } from './support/tmp.js';
import { waitFor } from './support/wait.js';

const INDEX = fileURLToPath(new URL('../src/index.ts', import.meta.url));

const running: ChildProcess[] = [];
const dirs: { cleanup: () => void }[] = [];
afterEach(() => {
  for (const child of running.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  for (const dir of dirs.splice(0)) dir.cleanup();
});

/** A port nothing listens on. */
const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
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
  return spawnCli(args, running);
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
    expect(unknown.output.stderr).toContain('unknown command "launch"');
  });
});

/** Runs `main` in this process with stdout and stderr captured: for the many quick answers. */
async function inProcess(argv: string[]) {
  const captured = { stdout: '', stderr: '' };
  const writes = { stdout: process.stdout.write, stderr: process.stderr.write };
  process.stdout.write = ((chunk: string) => {
    captured.stdout += chunk;
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string) => {
    captured.stderr += chunk;
    return true;
  }) as typeof process.stderr.write;
  try {
    const code = await main(argv);
    return { code, ...captured };
  } finally {
    process.stdout.write = writes.stdout;
    process.stderr.write = writes.stderr;
  }
}

describe('CLI manners', () => {
  it('answers --help and -h on every command and subcommand: its own text, on stdout, exit 0', async () => {
    const topics = Object.keys(HELP);
    for (const command of COMMAND_NAMES) expect(topics, `the help of ${command}`).toContain(command);
    for (const sub of ['ls', 'show', 'rerun', 'cancel']) expect(topics).toContain(`instances ${sub}`);
    for (const topic of topics) {
      const words = topic.split(' ');
      for (const flag of ['--help', '-h']) {
        const asked = await inProcess([...words, flag]);
        expect(asked, `tandem ${topic} ${flag}`).toEqual({ code: 0, stdout: HELP[topic], stderr: '' });
        expect(asked.stdout).toMatch(new RegExp(`^Usage: tandem ${words[0]}\\b`));
      }
      expect(await inProcess(['help', ...words])).toEqual({ code: 0, stdout: HELP[topic], stderr: '' });
    }
    // Help wins over whatever else is on the line, and a subcommand's beats its command's.
    expect((await inProcess(['instances', 'ls', '--status', 'failed', '--help'])).stdout).toBe(
      HELP['instances ls'],
    );
    expect(await inProcess(['--help'])).toEqual({ code: 0, stdout: USAGE, stderr: '' });
    // No command at all is a usage error: the usage goes to stderr.
    expect(await inProcess([])).toEqual({ code: 2, stdout: '', stderr: USAGE });
  });

  it('prints the package version for --version, -v and version', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    for (const argv of [['--version'], ['-v'], ['version']]) {
      expect(await inProcess(argv)).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
    }
  });

  it('exits 2 for a usage error, with a pointer to the help, and 3 when no server answers', async () => {
    for (const argv of [
      ['start', '--bogus'],
      ['start', '--port', 'eighty'],
      ['run'],
      ['run', 'a', 'b'],
      ['run', 'nightly', '--input', '{'],
      ['run', 'nightly', '--param', 'limit'],
      ['instances', 'frob'],
      ['instances', 'show'],
      ['instances', 'rerun', 'x', '--from', 'middle'],
      ['decide', '--immediate', 'maybe', '--seconds', 'yes', '--rerun', 'no'],
      ['demo', 'sideways'],
      ['help', 'nothing'],
    ]) {
      const result = await inProcess(argv);
      expect(result.code, argv.join(' ')).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(new RegExp(`^tandem ${argv[0]}: .+\\nRun \`tandem ${argv[0]} --help\``));
    }
    const nobody = await freePort();
    const remote = await inProcess(['instances', 'ls', '--url', `http://127.0.0.1:${nobody}`]);
    expect(remote).toEqual({
      code: 3,
      stdout: '',
      stderr: `tandem instances: no Tandem server at http://127.0.0.1:${nobody}: start one with \`tandem start\`, or set TANDEM_URL (or --url) to where it runs\n`,
    });
    const demo = await inProcess(['demo', 'status', '--apps', `http://127.0.0.1:${nobody}`]);
    expect(demo.code).toBe(3);
    expect(demo.stderr).toContain(`no demo applications at http://127.0.0.1:${nobody}`);
  });

  it('documents exactly the exit codes it uses, in docs/cli.md and in its usage', () => {
    const doc = readFileSync(new URL('../docs/cli.md', import.meta.url), 'utf8');
    const documented = [...doc.matchAll(/^\| (\d+) +\| /gm)].map((m) => Number(m[1]));
    expect(documented).toEqual(Object.values(EXIT));
    for (const code of Object.values(EXIT)) expect(USAGE).toMatch(new RegExp(`\\b${code} \\w`));
  });

  it('answers --help of start and instances ls in its own process, as a user types them', async () => {
    const startHelp = launch(['start', '--help']);
    expect(await startHelp.exited).toBe(0);
    expect(startHelp.output.stdout).toBe(HELP.start);
    const lsHelp = launch(['instances', 'ls', '--help']);
    expect(await lsHelp.exited).toBe(0);
    expect(lsHelp.output.stdout).toBe(HELP['instances ls']);
    expect(lsHelp.output.stderr).toBe('');
    const version = launch(['--version']);
    expect(await version.exited).toBe(0);
    expect(version.output.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  }, 60_000);
});
