import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** Builds the web console when it is missing or stale, so the server tests serve the current one. */
export default function setup(): void {
  execFileSync(process.execPath, [join(import.meta.dirname, '..', '..', 'console', 'ensure-built.js')], {
    stdio: 'inherit',
  });
}
