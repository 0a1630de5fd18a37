/**
 * The package as `npm pack` makes it, for tests that install it as a user would. It is packed from
 * a copy of the checkout (its node_modules linked), so that the build `prepack` runs writes the
 * copy's dist/, not the checkout's, which other tests may be running at the same time.
 */
import { execFile } from 'node:child_process';
import { cpSync, existsSync, readdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from './tmp.js';

export const root = join(import.meta.dirname, '../..');

/** What a pack needs: the sources, the build settings, the console's sources and what is shipped. */
const COPIED = [
  'package.json',
  'README.md',
  'LICENSE',
  'bin',
  'src',
  'console',
  'tsconfig.json',
  'tsconfig.build.json',
];

/** Packs the checkout into `destination`; resolves to the tarball's path. */
export async function packTarball(destination: string): Promise<string> {
  const copy = tempDir('tandem-pack-');
  try {
    for (const entry of COPIED) {
      // Timestamps kept: the console is rebuilt only if its sources are newer than its build.
      cpSync(join(root, entry), join(copy.path, entry), { recursive: true, preserveTimestamps: true });
    }
    symlinkSync(join(root, 'node_modules'), join(copy.path, 'node_modules'), 'dir');
    await promisify(execFile)('npm', ['pack', '--pack-destination', destination, '--silent'], {
      cwd: copy.path,
      timeout: 600_000,
    });
    const tarball = readdirSync(destination).find((name) => /^tandem-.*\.tgz$/.test(name));
    if (!tarball || !existsSync(join(destination, tarball))) throw new Error('npm pack made no tarball');
    return join(destination, tarball);
  } finally {
    copy.cleanup();
  }
}
