import { InvalidDefinitionError } from '../errors.js';

const ROUTE_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
type RouteMethod = (typeof ROUTE_METHODS)[number];

/** A parsed HTTP trigger, e.g. `POST /orders/:orderId/lines`. */
export interface RouteSpec {
  method: RouteMethod;
  path: string;
  /** Names of the `:param` segments, in order. */
  params: string[];
}

const SEGMENT = /^(?::[A-Za-z_][A-Za-z0-9_]{0,63}|[A-Za-z0-9._~-]+)$/;

/**
 * Parses `"METHOD /path"`. Paths are literal segments and `:name` parameters only: no wildcards
 * and no regular expressions, so that every trigger can be described in the OpenAPI document and
 * matched the same way by the server and by the 405 check.
 */
export function parseRoute(route: string, where = 'Route'): RouteSpec {
  const match = /^([A-Z]+) +(\/\S*)$/.exec(typeof route === 'string' ? route.trim() : '');
  if (!match) {
    throw new InvalidDefinitionError(
      `${where}: route ${JSON.stringify(route)} must look like "POST /orders" or "GET /orders/:id"`,
    );
  }
  const method = match[1] as RouteMethod;
  if (!ROUTE_METHODS.includes(method)) {
    throw new InvalidDefinitionError(`${where}: method ${method} is not one of ${ROUTE_METHODS.join(', ')}`);
  }
  const path = match[2]!;
  const segments = path === '/' ? [] : path.slice(1).split('/');
  const params: string[] = [];
  for (const segment of segments) {
    if (!SEGMENT.test(segment)) {
      throw new InvalidDefinitionError(
        `${where}: path segment ${JSON.stringify(segment)} in "${path}" is not a literal or a :name parameter`,
      );
    }
    if (segment.startsWith(':')) {
      const name = segment.slice(1);
      if (params.includes(name))
        throw new InvalidDefinitionError(`${where}: parameter :${name} is used twice`);
      params.push(name);
    }
  }
  return { method, path, params };
}
