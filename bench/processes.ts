/**
 * What the HTTP benches share: their servers run in processes of their own (bench/http-targets.ts)
 * so that the load generator and the baseline never take the event loop of what is measured; the
 * load comes from autocannon in another process, and /proc tells what each server process spent.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const TARGETS = fileURLToPath(new URL('./http-targets.ts', import.meta.url));
const AUTOCANNON = fileURLToPath(new URL('../node_modules/autocannon/autocannon.js', import.meta.url));
export const ORDER = JSON.stringify({ orderId: 'A-1001', lines: [{ sku: 'A-1', qty: 2 }] });

/** Starts one role of bench/http-targets.ts and resolves once it listens. */
export function startServer(
  role: string,
  port: number,
  backend: string,
  storeDir: string,
): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', TARGETS, role, String(port), backend, storeDir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk) => {
      out += chunk;
      if (out.includes(`ready ${port}`)) resolve(child);
    });
    child.on('exit', (code) => reject(new Error(`${role} exited with ${code} before it was ready`)));
  });
}

export function stop(child: ChildProcess | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (!child || child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/**
 * One autocannon run against `url` (POSTing ORDER when `post`); resolves with its JSON result.
 * `rate`: requests per second over all connections (autocannon's overall rate), else as fast as
 * they answer.
 */
export function load(
  url: string,
  post: boolean,
  connections: number,
  seconds: number,
  rate?: number,
): Promise<any> {
  const args = [AUTOCANNON, '-j', '-c', String(connections), '-d', String(seconds)];
  if (rate !== undefined) args.push('-R', String(Math.max(1, Math.round(rate))));
  if (post) args.push('-m', 'POST', '-H', 'content-type=application/json', '-b', ORDER);
  args.push(url);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout!.on('data', (chunk) => {
    out += chunk;
  });
  return new Promise((resolve, reject) => {
    child.on('exit', (code) =>
      code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`autocannon exited ${code}`)),
    );
  });
}

/** CPU time (user + system) a process has used, in µs; NaN where /proc is not there. */
export function cpuUsOf(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100; // clock ticks of 10 ms
  } catch {
    return Number.NaN;
  }
}

/** A memory figure of /proc/<pid>/status (VmHWM: the peak resident set, VmRSS: now), in MB; NaN where /proc is not there. */
function statusMbOf(pid: number | undefined, field: 'VmHWM' | 'VmRSS'): number {
  try {
    const kb = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1];
    return Number(kb) / 1024;
  } catch {
    return Number.NaN;
  }
}

/** A process's peak resident set (VmHWM), in MB. */
export const peakRssMbOf = (pid: number | undefined) => statusMbOf(pid, 'VmHWM');

/** A process's resident set now (VmRSS), in MB. */
export const rssMbOf = (pid: number | undefined) => statusMbOf(pid, 'VmRSS');

export const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
