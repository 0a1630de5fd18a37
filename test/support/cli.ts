/**
 * The `tandem` command of this checkout as a child process, its output collected: what the CLI
 * tests that start servers (`tandem start`, its roles and its supervisor) share. Each test file
 * keeps its own list of running children and kills what is left after each test.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/tandem.js', import.meta.url));

/** Runs `tandem <args>` from the sources (TANDEM_CLI_SOURCE) with info logs; `env` over those. */
export function spawnCli(args: string[], running: ChildProcess[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, TANDEM_CLI_SOURCE: '1', TANDEM_LOG_LEVEL: 'info', ...env },
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
