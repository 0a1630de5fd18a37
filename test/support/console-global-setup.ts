import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Builds the web console when it is missing or stale, so the server tests serve the current one;
 * empties the browser tests' screenshot folder once per run (not per test file: files run at once),
 * but not in a run nested in another (test/built-package.test.ts), which would empty it after the
 * outer run's browser tests wrote it.
 */
export default function setup(): void {
  const artifacts = join(import.meta.dirname, '..', '..', 'test-artifacts', 'console');
  if (!process.env.TANDEM_KEEP_SCREENSHOTS) rmSync(artifacts, { recursive: true, force: true });
  mkdirSync(artifacts, { recursive: true });
  execFileSync(process.execPath, [join(import.meta.dirname, '..', '..', 'console', 'ensure-built.js')], {
    stdio: 'inherit',
  });
}
