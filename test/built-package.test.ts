/**
 * Every command of README.md and docs/ against the built package: the checkout is built
 * (`npm run build`), then test/docs-commands.test.ts runs again in its own vitest with
 * TANDEM_CLI_SOURCE=0, so that `tandem`, `npx tandem` and `npm start` run dist/ and the demo's
 * `import … from 'tandem'` resolves to dist/ too (the package's default export condition). The
 * other run of that file covers the sources.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');

describe('the built package', () => {
  it('runs every command of README.md and docs/', async () => {
    await promisify(execFile)('npm', ['run', 'build', '--silent'], { cwd: root, timeout: 600_000 });
    expect(existsSync(join(root, 'dist/cli/main.js'))).toBe(true);
    // The docs' own test, in a vitest of its own (this run's variables would make it a worker of ours).
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([name]) => !name.startsWith('VITEST')),
    );
    const run = await promisify(execFile)(
      process.execPath,
      [
        join(root, 'node_modules/vitest/vitest.mjs'),
        'run',
        'test/docs-commands.test.ts',
        '--project',
        'suites',
      ],
      {
        cwd: root,
        // TANDEM_KEEP_SCREENSHOTS: the nested run's global setup would empty the browser tests'
        // screenshot folder, written earlier in the outer run.
        env: {
          ...env,
          TANDEM_CLI_SOURCE: '0',
          TANDEM_KEEP_SCREENSHOTS: '1',
          NO_COLOR: '1',
          FORCE_COLOR: '0',
        },
        timeout: 1_200_000,
        maxBuffer: 64 * 1024 * 1024,
      },
    ).catch((error: { stdout: string; stderr: string; code: number }) => {
      throw new Error(
        `docs commands failed against dist/ (exit ${error.code}):\n${error.stdout}\n${error.stderr}`,
      );
    });
    // biome-ignore lint/suspicious/noControlCharactersInRegex: colour codes, should a terminal's settings win.
    const report = run.stdout.replace(/\u001b\[[0-9;]*m/g, '');
    expect(report).toMatch(/Test Files\s+1 passed/);
    expect(report).not.toMatch(/skipped/);
  }, 1_500_000);
});
