import { InvalidDefinitionError } from '../errors.js';
import { type AnyIntegration, isIntegration } from './integration.js';

/** Everything a Tandem process needs to know; usually the default export of `tandem.config.ts`. */
export interface TandemConfig {
  integrations: AnyIntegration[];
  /** Store URL: `sqlite:./path.db` (default `sqlite:./.tandem/tandem.db`) or `postgres://…`. */
  store?: string;
  /** Instances run at the same time by this process. Default 50. */
  concurrency?: number;
  /** Lease length in ms; renewed at a third of it. Default 30 s. */
  leaseMs?: number;
  /** Safety-net poll for due work in ms. Default 1 s. */
  pollIntervalMs?: number;
}

/**
 * Checks and returns a configuration.
 *
 * @example
 * export default defineConfig({ integrations: [placeOrder, fulfilOrder] });
 */
export function defineConfig(config: TandemConfig): TandemConfig {
  if (!config || !Array.isArray(config.integrations)) {
    throw new InvalidDefinitionError('defineConfig needs { integrations: [...] }');
  }
  checkIntegrations(config.integrations);
  return config;
}

/** Every entry is a defined integration and no id is used twice. */
export function checkIntegrations(
  integrations: readonly unknown[],
): asserts integrations is AnyIntegration[] {
  const seen = new Set<string>();
  for (const integration of integrations) {
    if (!isIntegration(integration)) {
      throw new InvalidDefinitionError('Every integration must be created with defineIntegration()');
    }
    if (seen.has(integration.id)) {
      throw new InvalidDefinitionError(`Integration id "${integration.id}" is defined twice`);
    }
    seen.add(integration.id);
  }
}
