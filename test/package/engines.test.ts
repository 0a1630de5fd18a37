/**
 * package.json promises Node ≥ 20.19: no locked dependency may ask for a newer Node (cookie 2, through
 * light-my-request, once did). npm's own engine check over the lockfile, without installing.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../support/tmp.js';

const ROOT = join(import.meta.dirname, '..', '..');

describe('declared Node support', () => {
  it('no locked dependency needs a newer Node than the one running the tests', () => {
    const dir = tempDir('tandem-engines-');
    try {
      for (const file of ['package.json', 'package-lock.json'])
        copyFileSync(join(ROOT, file), join(dir.path, file));
      const run = spawnSync(
        'npm',
        ['ci', '--dry-run', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel', 'warn'],
        { cwd: dir.path, encoding: 'utf8' },
      );
      expect(run.status).toBe(0);
      // npm warns on stderr, one EBADENGINE block per package whose engines exclude this Node.
      expect(run.stderr).not.toContain('EBADENGINE');
    } finally {
      dir.cleanup();
    }
  });
});
