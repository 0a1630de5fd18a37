import { InvalidDefinitionError } from '../errors.js';

/** Paths that belong to Tandem itself; a trigger route under one of them is refused at start. */
const RESERVED_PREFIXES = [
  '/api',
  '/callbacks',
  '/console',
  '/metrics',
  '/healthz',
  '/openapi.json',
] as const;

export function checkTriggerPath(integrationId: string, path: string): void {
  const lower = path.toLowerCase();
  for (const prefix of RESERVED_PREFIXES) {
    if (lower === prefix || lower.startsWith(`${prefix}/`)) {
      throw new InvalidDefinitionError(
        `Integration "${integrationId}": route path "${path}" is under "${prefix}", which Tandem reserves for itself; choose another path`,
      );
    }
  }
  if (path.startsWith('/:')) {
    throw new InvalidDefinitionError(
      `Integration "${integrationId}": route path "${path}" starts with a parameter, which would also match Tandem's own paths (${RESERVED_PREFIXES.join(', ')}); start it with a literal segment`,
    );
  }
}

/**
 * Every registered route as a pattern, to tell "no such path" (404) from "no such method on this
 * path" (405, with `Allow`). Fastify's router answers only the first question.
 */
export class RouteTable {
  private readonly routes: { pattern: RegExp; methods: Set<string> }[] = [];
  private readonly byPath = new Map<string, Set<string>>();

  add(methods: string | string[], path: string): void {
    let known = this.byPath.get(path);
    if (!known) {
      known = new Set();
      this.byPath.set(path, known);
      this.routes.push({ pattern: toPattern(path), methods: known });
    }
    for (const method of Array.isArray(methods) ? methods : [methods]) known.add(method.toUpperCase());
  }

  /** Methods allowed on a concrete path (query string ignored); empty when no route matches. */
  allowedMethods(url: string): string[] {
    const path = url.split('?', 1)[0]!;
    const allowed = new Set<string>();
    for (const route of this.routes) {
      if (route.pattern.test(path)) for (const method of route.methods) allowed.add(method);
    }
    return [...allowed].sort();
  }
}

function toPattern(path: string): RegExp {
  const source = path
    .split('/')
    .map((segment) =>
      segment.startsWith(':')
        ? '[^/]+'
        : segment === '*'
          ? '.*'
          : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'),
    )
    .join('/');
  return new RegExp(`^${source}$`);
}
