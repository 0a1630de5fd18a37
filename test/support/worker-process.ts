import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const CRASH_WORKER = join(import.meta.dirname, '../fixtures/crash-worker.ts');

/** Starts the crash-test worker as a child process; collects its stdout lines. */
export function startWorker(args: string[]) {
  return startScript(CRASH_WORKER, args);
}

/** Runs a TypeScript script as a child process (through tsx); collects its stdout lines. */
export function startScript(script: string, args: string[]) {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  let buffered = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop()!;
    lines.push(...parts);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { child, lines, exited };
}

export type Worker = ReturnType<typeof startWorker>;

/** The side-effect log: one line per step execution, `<instance id> <step>`. */
export const readEffects = (path: string) =>
  existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean) : [];
