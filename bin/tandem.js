#!/usr/bin/env node
// Runs the built CLI (dist/) when there is one; in a source checkout it runs src/ through tsx.
import { existsSync } from 'node:fs';

const built = new URL('../dist/cli/main.js', import.meta.url);
let entry = built;
if (process.env.TANDEM_CLI_SOURCE === '1' || !existsSync(built)) {
  const { register } = await import('tsx/esm/api');
  register();
  entry = new URL('../src/cli/main.ts', import.meta.url);
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));
