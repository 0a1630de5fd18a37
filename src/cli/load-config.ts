/**
 * Loading a project's `tandem.config.ts`: TypeScript compiled on the fly, the user's modules noted
 * as they load (for `tandem dev`'s watch), and a failure told with the file and line it comes from,
 * which is what a person fixing a typo needs first.
 */
import { existsSync } from 'node:fs';
import { resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { defineConfig, publicUrlOf, type TandemConfig } from '../define/config.js';
import type { EngineOptions } from '../engine/engine.js';
import { InvalidDefinitionError } from '../errors.js';

const CANDIDATES = ['tandem.config.ts', 'tandem.config.mts', 'tandem.config.js', 'tandem.config.mjs'];

/** Tandem's own code (src/ from a checkout, dist/ when built): not the user's, never watched. */
const OWN = ['src', 'dist'].map((dir) => fileURLToPath(new URL(`../../${dir}/`, import.meta.url)));

/** Whether a loaded file is the project's own: not Tandem's, not a dependency's. */
function isProjectFile(path: string): boolean {
  return !path.includes(`${sep}node_modules${sep}`) && !OWN.some((own) => path.startsWith(own));
}

/** The project's files loaded so far, in load order (the config first). */
const loaded = new Set<string>();
const listeners = new Set<(file: string) => void>();

/** Calls `listener` with each project file loaded from now on, and with those already loaded. */
function onProjectFile(listener: (file: string) => void): () => void {
  for (const file of loaded) listener(file);
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function noteLoaded(url: string): void {
  if (!url.startsWith('file:')) return;
  const file = fileURLToPath(url);
  if (!isProjectFile(file) || loaded.has(file)) return;
  loaded.add(file);
  for (const listener of listeners) listener(file);
}

/** What a `tandem start` child tells its `tandem dev` parent (see dev.ts). */
export type DevMessage = { type: 'tandem-dev:file'; file: string };

let reporting = false;

/** In a child of `tandem dev`: each project file, as it loads, goes to the parent to be watched. */
function reportFilesToDev(): void {
  if (reporting || process.env.TANDEM_DEV_CHILD !== '1' || !process.send) return;
  reporting = true;
  const send = process.send.bind(process);
  onProjectFile((file) => {
    // A parent that is gone (its channel closed) loses nothing by missing a file.
    if (process.connected) send({ type: 'tandem-dev:file', file } satisfies DevMessage, () => {});
  });
}

let tsxRegistered = false;

/**
 * Loads `tandem.config.ts` (or the file given). TypeScript is compiled on the fly with tsx's
 * register API, into the same module graph as the CLI; a config's `import … from 'tandem'` resolves
 * to the copy of Tandem this CLI is (see docs/configuration.md, "One copy of Tandem").
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
  reportFilesToDev();
  noteLoaded(pathToFileURL(file).href);
  if (!tsxRegistered) {
    // Also for a JavaScript config: its imports may be TypeScript, and tsx reports what loads.
    const { register } = await import('tsx/esm/api');
    register({ onImport: noteLoaded });
    tsxRegistered = true;
  }
  let module: { default?: unknown; config?: unknown };
  try {
    module = (await import(pathToFileURL(file).href)) as typeof module;
  } catch (error) {
    throw located(error);
  }
  const config = module.default ?? module.config;
  if (!config || typeof config !== 'object') {
    throw new InvalidDefinitionError(
      `${file} must export a config: export default defineConfig({ integrations: [...] })`,
    );
  }
  return defineConfig(config as TandemConfig);
}

/** A config that failed to load, told with the project file and line the failure comes from. */
class ConfigLoadError extends Error {
  constructor(
    message: string,
    /** The project file at fault, when it is known. */
    readonly file: string | undefined,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'ConfigLoadError';
  }
}

const LOCATION = /((?:file:\/\/)?(?:\/|[A-Za-z]:[\\/])[^\s():'"]+?\.[cm]?[jt]sx?):(\d+)(?::(\d+))?/g;

/** Where a load error comes from: the first location in a project file the error names. */
function locate(error: unknown): { file: string; line: number; column?: number } | undefined {
  const text = error instanceof Error ? `${error.message}\n${error.stack ?? ''}` : String(error);
  for (const match of text.matchAll(LOCATION)) {
    const file = match[1]!.startsWith('file:') ? fileURLToPath(match[1]!) : match[1]!;
    if (!isProjectFile(file)) continue;
    return { file, line: Number(match[2]), ...(match[3] ? { column: Number(match[3]) } : {}) };
  }
  // "Cannot find module 'x' imported from /project/file.ts": the importing file is at fault.
  const from = /imported from (\S+)/.exec(text)?.[1];
  if (from) {
    const file = from.startsWith('file:') ? fileURLToPath(from) : from;
    if (isProjectFile(file)) return { file, line: 0 };
  }
  return undefined;
}

function located(error: unknown): ConfigLoadError {
  const message = error instanceof Error ? error.message : String(error);
  const where = locate(error);
  if (!where) return new ConfigLoadError(message, undefined, { cause: error });
  noteLoaded(pathToFileURL(where.file).href); // Watched by `tandem dev` from now on, even if it never loaded.
  const position = where.line > 0 ? `:${where.line}${where.column ? `:${where.column}` : ''}` : '';
  const prefix = `${where.file}${position}`;
  // A compiler's message already opens with the location.
  const text = message.includes(prefix) ? message : `${prefix}: ${message}`;
  return new ConfigLoadError(text, where.file, { cause: error });
}

/** The engine options a config sets; the caller adds its own (logger, grace period). */
export function engineOptionsOf(config: TandemConfig): EngineOptions {
  const publicUrl = publicUrlOf(config.server);
  return {
    integrations: config.integrations,
    ...(config.connections === undefined ? {} : { connections: config.connections }),
    ...(config.store === undefined ? {} : { store: config.store }),
    ...(config.concurrency === undefined ? {} : { concurrency: config.concurrency }),
    ...(config.leaseMs === undefined ? {} : { leaseMs: config.leaseMs }),
    ...(config.pollIntervalMs === undefined ? {} : { pollIntervalMs: config.pollIntervalMs }),
    ...(config.retention === undefined ? {} : { retention: config.retention }),
    ...(config.events === undefined ? {} : { events: config.events }),
    ...(config.alerts === undefined ? {} : { alerts: config.alerts }),
    ...(config.activityWebhook === undefined ? {} : { activityWebhook: config.activityWebhook }),
    ...(config.tracing === undefined ? {} : { tracing: config.tracing }),
    // Callback URLs are handed out by whichever process runs the handler: a worker needs it too.
    ...(publicUrl === undefined ? {} : { publicUrl }),
  };
}
