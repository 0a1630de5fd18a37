/**
 * Builds the console into console/dist when it is missing or older than its sources, so that
 * `npm start` and the tests serve the current console without a separate build step.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = import.meta.dirname;
const built = join(root, 'dist', 'index.html');

function newest(path) {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((name) => newest(join(path, name))));
}

export function consoleIsStale() {
  if (!existsSync(built)) return true;
  const sources = Math.max(
    newest(join(root, 'src')),
    newest(join(root, 'index.html')),
    newest(join(root, 'vite.config.ts')),
  );
  return sources > statSync(built).mtimeMs;
}

export function ensureConsoleBuilt() {
  if (!consoleIsStale()) return false;
  const vite = join(root, '..', 'node_modules', 'vite', 'bin', 'vite.js');
  if (!existsSync(vite)) {
    // An install without the development dependencies: the server answers /console with how to build.
    process.stderr.write(
      'The console is not built and Vite is not installed; /console will be unavailable\n',
    );
    return false;
  }
  // Vite keeps a NODE_ENV it is given (vitest sets "test"), which would ship a development build.
  execFileSync(
    process.execPath,
    [vite, 'build', '--config', join(root, 'vite.config.ts'), '--logLevel', 'warn'],
    { stdio: 'inherit', env: { ...process.env, NODE_ENV: 'production' } },
  );
  return true;
}

if (process.argv[1] === import.meta.filename) ensureConsoleBuilt();
