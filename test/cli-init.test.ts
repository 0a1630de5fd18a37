import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { initProject } from '../src/cli/init.js';
import { tempDir } from './support/tmp.js';

const dirs: { cleanup(): void }[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) dir.cleanup();
});
const folder = () => {
  const dir = tempDir('tandem-init-');
  dirs.push(dir);
  return dir.path;
};

const FILES = [
  'package.json',
  'tsconfig.json',
  'tandem.config.ts',
  'src/integrations.ts',
  'test/integrations.test.ts',
  '.gitignore',
  'README.md',
];

describe('tandem init', () => {
  it('writes a project into a new folder: scripts, dependencies, config, integrations and their test', () => {
    const dir = join(folder(), 'my-app');
    const result = initProject(dir);
    expect(result.written.sort()).toEqual([...FILES].sort());
    for (const file of FILES) expect(existsSync(join(dir, file)), file).toBe(true);
    const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    expect(manifest).toMatchObject({
      name: 'my-app',
      type: 'module',
      scripts: { dev: 'tandem dev', start: 'tandem start', test: 'vitest run' },
    });
    expect(Object.keys(manifest.dependencies).sort()).toEqual(['tandem', 'zod']);
    expect(manifest.devDependencies).toHaveProperty('vitest');
    const integrations = readFileSync(join(dir, 'src/integrations.ts'), 'utf8');
    expect(integrations).toMatch(/mode: 'sync',\n\s+route: 'GET \/hello\/:name'/);
    expect(integrations.match(/ctx\.step\(/g)?.length).toBeGreaterThanOrEqual(2);
    expect(readFileSync(join(dir, 'test/integrations.test.ts'), 'utf8')).toContain("from 'tandem/testing'");
  });

  it('refuses when one of its files exists, and writes nothing', () => {
    const dir = folder();
    writeFileSync(join(dir, 'tandem.config.ts'), '// mine\n');
    expect(() => initProject(dir)).toThrow(
      /tandem\.config\.ts already exists; tandem init does not overwrite/,
    );
    expect(readFileSync(join(dir, 'tandem.config.ts'), 'utf8')).toBe('// mine\n');
    for (const file of FILES.filter((f) => f !== 'tandem.config.ts')) {
      expect(existsSync(join(dir, file)), file).toBe(false);
    }
  });

  it("adds to npm init's package.json only what it lacks, keeping the installed tandem", () => {
    const dir = folder();
    const npmInit = {
      name: 'shop',
      version: '1.0.0',
      main: 'index.js',
      scripts: { test: 'echo "Error: no test specified" && exit 1', lint: 'biome check' },
      type: 'commonjs',
      dependencies: { tandem: 'file:../tandem-0.1.0.tgz' },
    };
    writeFileSync(join(dir, 'package.json'), JSON.stringify(npmInit));
    const result = initProject(dir);
    expect(result.written).not.toContain('package.json');
    const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    expect(manifest).toMatchObject({
      name: 'shop',
      type: 'module',
      scripts: { dev: 'tandem dev', start: 'tandem start', test: 'vitest run', lint: 'biome check' },
      dependencies: { tandem: 'file:../tandem-0.1.0.tgz' },
    });
    expect(manifest.dependencies).toHaveProperty('zod');
    expect(result.updated).toContain('scripts.test');
    expect(result.updated).not.toContain('dependencies.tandem');
  });

  it('refuses a package.json whose script of the same name is not its own, and writes nothing', () => {
    const dir = folder();
    const mine = JSON.stringify({ name: 'shop', type: 'module', scripts: { dev: 'vite' } });
    writeFileSync(join(dir, 'package.json'), mine);
    expect(() => initProject(dir)).toThrow(/already has a "dev" script/);
    expect(readFileSync(join(dir, 'package.json'), 'utf8')).toBe(mine);
    expect(existsSync(join(dir, 'tandem.config.ts'))).toBe(false);
  });
});
