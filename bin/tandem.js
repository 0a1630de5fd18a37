#!/usr/bin/env node
// One copy of Tandem per process: the built CLI (dist/) when there is one, else the sources (src/,
// compiled on the fly by tsx) with the `tandem-source` export condition on, so that a config's
// `import … from 'tandem'` resolves to the same files as the CLI, never the other half.
import { existsSync } from 'node:fs';
import { register } from 'node:module';

const built = new URL('../dist/cli/main.js', import.meta.url);
const sources = new URL('../src/cli/main.ts', import.meta.url);
let entry = built;
if (process.env.TANDEM_CLI_SOURCE === '1' || !existsSync(built)) {
  if (!existsSync(sources)) {
    process.stderr.write('tandem: dist/cli/main.js is missing; build the package with `npm run build`\n');
    process.exit(1);
  }
  register(new URL('../src/cli/source-condition.mjs', import.meta.url));
  const tsx = await import('tsx/esm/api');
  tsx.register();
  entry = sources;
}
const { main } = await import(entry.href);
const code = await main(process.argv.slice(2));
process.exitCode = code;
// A command that failed leaves nothing running: a config that failed half-way may have started
// servers of its own. The short delay lets output and messages to a parent (`tandem dev`) go out.
if (code !== 0) setTimeout(() => process.exit(code), 200).unref();
