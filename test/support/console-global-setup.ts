import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Builds the web console when it is missing or stale, so the server tests serve the current one;
 * empties the browser tests' screenshot folder once per run (not per test file: files run at once).
 */
export default function setup(): void {
  const artifacts = join(import.meta.dirname, '..', '..', 'test-artifacts', 'console');
  rmSync(artifacts, { recursive: true, force: true });
  mkdirSync(artifacts, { recursive: true });
  execFileSync(process.execPath, [join(import.meta.dirname, '..', '..', 'console', 'ensure-built.js')], {
    stdio: 'inherit',
  });
}
