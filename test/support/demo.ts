/**
 * The retail demo as a new user starts it: `npm start` in a child process with a fresh data
 * directory, on a free server port and a random range of ports for the simulated applications.
 * The port is chosen here rather than by the server (port 0): the demo's onboarding sends its
 * `employee.created` event to its own API, at the port it was given.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { tempDir } from './tmp.js';
import { waitFor } from './wait.js';

export const root = join(import.meta.dirname, '../..');

export interface Demo {
  /** The server, e.g. http://127.0.0.1:41234. */
  base: string;
  /** Port of the first simulated application (the bank); the directory is one below. */
  appsPort: number;
  /** The simulated applications' directory (what `tandem demo` talks to). */
  directory: string;
  /** Everything the demo printed so far. */
  output(): string;
  stop(): Promise<void>;
}

/** A port free on 127.0.0.1 now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export async function startDemo(): Promise<Demo> {
  const dir = tempDir('tandem-demo-');
  const appsPort = 20_000 + Math.floor(Math.random() * 20_000);
  let output = '';
  const child: ChildProcess = spawn('npm', ['start'], {
    cwd: root,
    env: {
      ...process.env,
      TANDEM_PORT: String(await freePort()),
      TANDEM_LOG_LEVEL: 'warn',
      TANDEM_STORE_URL: `sqlite:${join(dir.path, 'demo.db')}`,
      DEMO_APPS_PORT: String(appsPort),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.stdout!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null && child.pid)
      process.kill(-child.pid, 'SIGTERM');
    await exited;
    dir.cleanup();
  };
  try {
    const port = await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`npm start exited with ${child.exitCode}:\n${output}`);
        return /listening on http:\/\/[^:]+:(\d+)/.exec(output)?.[1];
      },
      'the demo to listen',
      60_000,
    );
    return {
      base: `http://127.0.0.1:${port}`,
      appsPort,
      directory: `http://127.0.0.1:${appsPort - 1}`,
      output: () => output,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
