import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { defineConfig, type TandemConfig } from '../define/config.js';
import type { EngineOptions } from '../engine/engine.js';
import { InvalidDefinitionError } from '../errors.js';

const CANDIDATES = ['tandem.config.ts', 'tandem.config.mts', 'tandem.config.js', 'tandem.config.mjs'];

let tsxRegistered = false;

/**
 * Loads `tandem.config.ts` (or the file given): TypeScript is compiled on the fly with tsx's
 * register API, into the same module graph as the CLI, so that the config's `tandem` imports and
 * the CLI share one copy of every module (and `instanceof` checks hold).
 */
export async function loadConfig(path: string | undefined, cwd = process.cwd()): Promise<TandemConfig> {
  const file = path ? resolve(cwd, path) : CANDIDATES.map((c) => resolve(cwd, c)).find((c) => existsSync(c));
  if (!file || !existsSync(file)) {
    throw new InvalidDefinitionError(
      path
        ? `Config file ${file} does not exist`
        : `No config found: create tandem.config.ts in ${cwd} or pass --config`,
    );
  }
  if (/\.[mc]?ts$/.test(file) && !tsxRegistered) {
    const { register } = await import('tsx/esm/api');
    register();
    tsxRegistered = true;
  }
  const module = (await import(pathToFileURL(file).href)) as { default?: unknown; config?: unknown };
  const config = module.default ?? module.config;
  if (!config || typeof config !== 'object') {
    throw new InvalidDefinitionError(
      `${file} must export a config: export default defineConfig({ integrations: [...] })`,
    );
  }
  return defineConfig(config as TandemConfig);
}

/** The engine options a config sets; the caller adds its own (logger, grace period). */
export function engineOptionsOf(config: TandemConfig): EngineOptions {
  return {
    integrations: config.integrations,
    ...(config.connections === undefined ? {} : { connections: config.connections }),
    ...(config.store === undefined ? {} : { store: config.store }),
    ...(config.concurrency === undefined ? {} : { concurrency: config.concurrency }),
    ...(config.leaseMs === undefined ? {} : { leaseMs: config.leaseMs }),
    ...(config.pollIntervalMs === undefined ? {} : { pollIntervalMs: config.pollIntervalMs }),
    ...(config.retention === undefined ? {} : { retention: config.retention }),
  };
}
