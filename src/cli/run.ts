/**
 * `tandem run <integration> [--param k=v] [--input json]`: starts an instance now and follows it to
 * the end, with a progress bar for a batch (its children's counts). The argument parsing and the
 * engine's creation belong to the CLI's entry point; this module does the command's work.
 */

import { parseParameterArgs } from '../define/parameters.js';
import type { Engine, Progress } from '../engine/engine.js';
import { isFinal } from '../lifecycle/index.js';
import type { Instance } from '../model.js';

export interface RunCommandOptions {
  /** `name=value` strings from `--param`; converted to the declared parameter types. */
  params?: string[];
  /** Input of an async integration. */
  input?: unknown;
  /** Follow the instance until it is final. Default true. */
  wait?: boolean;
  /** Where progress goes. Default stderr (stdout keeps the result, for pipes). */
  progressOut?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Where the result goes. Default stdout. */
  resultOut?: NodeJS.WritableStream;
  /** How often progress is read. Default 250 ms. */
  intervalMs?: number;
  signal?: AbortSignal;
}

export interface RunCommandResult {
  instanceId: string;
  instance: Instance | null;
  /** 0 succeeded (or not waited for), 1 failed or cancelled. */
  exitCode: number;
}

export async function runCommand(
  engine: Engine,
  integrationId: string,
  options: RunCommandOptions = {},
): Promise<RunCommandResult> {
  const progressOut = options.progressOut ?? process.stderr;
  const resultOut = options.resultOut ?? process.stdout;
  const parameters = options.params ? parseParameterArgs(options.params) : undefined;
  const accepted = await engine.runNow(integrationId, {
    ...(parameters ? { parameters } : {}),
    ...(options.input !== undefined ? { input: options.input } : {}),
  });
  progressOut.write(`started ${integrationId} instance ${accepted.instanceId}\n`);
  if (options.wait === false) {
    resultOut.write(`${JSON.stringify({ instanceId: accepted.instanceId, status: accepted.status })}\n`);
    return { instanceId: accepted.instanceId, instance: null, exitCode: 0 };
  }
  const tty = progressOut.isTTY === true;
  let lastLine = '';
  let progress: Progress;
  for (;;) {
    progress = await engine.getProgress(accepted.instanceId);
    const line = progressLine(progress, Math.min(40, Math.max(10, (progressOut.columns ?? 80) - 60)));
    if (tty) progressOut.write(`\r${line}\x1b[K`);
    else if (line !== lastLine) progressOut.write(`${line}\n`);
    lastLine = line;
    if (isFinal(progress.instance.status) || options.signal?.aborted) break;
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 250));
  }
  if (tty) progressOut.write('\n');
  const { instance } = progress;
  resultOut.write(
    `${JSON.stringify({ instanceId: instance.id, status: instance.status, output: instance.output, error: instance.error?.message ?? null })}\n`,
  );
  return { instanceId: instance.id, instance, exitCode: instance.status === 'succeeded' ? 0 : 1 };
}

/**
 * One line of progress: a bar of the children that are done when the instance has children,
 * otherwise its status.
 *
 * @example
 * progressLine(p, 20) // "[██████████░░░░░░░░░░] 49,500/99,000 done (120 failed) · retrying"
 */
export function progressLine(progress: Progress, width = 30): string {
  const { instance, children } = progress;
  const status =
    instance.status === 'retrying' && children.total > 0 ? 'waiting for children' : instance.status;
  if (children.total === 0) return `${instance.integrationId}: ${status}`;
  const done = children.succeeded + children.failed + children.cancelled;
  const filled = Math.round((done / children.total) * width);
  const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
  const failed = children.failed > 0 ? ` (${children.failed.toLocaleString('en')} failed)` : '';
  return `[${bar}] ${done.toLocaleString('en')}/${children.total.toLocaleString('en')} done${failed} · ${status}`;
}
