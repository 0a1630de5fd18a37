/**
 * The management tokens a server knows, each with a name and a role, gathered once at start from
 * the configuration and the environment. A server without any answers its management API and
 * console to this machine only, as the one with all rights (a local development server).
 */
import type { ServerOptions } from '../define/config.js';
import { InvalidDefinitionError } from '../errors.js';
import type { Actor, Role } from '../model.js';

export interface ManagementToken {
  name: string;
  role: Role;
  secret: string;
  /** Whether input and output bodies are shown (always, but for a viewer not allowed them). */
  bodies: boolean;
}

/** What a request to the management API may do, and who it is recorded as. */
export interface Access {
  role: Role;
  /** The token's name; null on a server without tokens. */
  token: string | null;
  bodies: boolean;
}

/** Each role includes the ones before it. */
const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

export function grants(held: Role, needed: Role): boolean {
  return RANK[held] >= RANK[needed];
}

/** The access of a request on a server without tokens: this machine only, everything. */
export const LOCAL_ACCESS: Access = { role: 'admin', token: null, bodies: true };

export function actorOf(access: Access): Actor {
  return { role: access.role, tokenName: access.token };
}

/**
 * The tokens of a server: the admin token (option `adminToken`, else `TANDEM_ADMIN_TOKEN`) named
 * "admin", and the option `tokens`, else `TANDEM_OPERATOR_TOKEN` and `TANDEM_VIEWER_TOKEN` named
 * after their roles. Two tokens with one name, or one secret, are refused at start.
 */
export function managementTokens(
  options: Pick<ServerOptions, 'adminToken' | 'tokens'>,
  env: NodeJS.ProcessEnv = process.env,
): ManagementToken[] {
  const tokens: ManagementToken[] = [];
  const admin =
    options.adminToken === undefined ? env.TANDEM_ADMIN_TOKEN || null : options.adminToken || null;
  if (admin !== null) tokens.push({ name: 'admin', role: 'admin', secret: admin, bodies: true });
  if (options.tokens !== undefined) {
    for (const token of options.tokens) {
      tokens.push({
        name: token.name,
        role: token.role,
        secret: token.token,
        bodies: token.role !== 'viewer' || token.bodies === true,
      });
    }
  } else {
    for (const role of ['operator', 'viewer'] as const) {
      const secret = env[`TANDEM_${role.toUpperCase()}_TOKEN`];
      if (secret) tokens.push({ name: role, role, secret, bodies: role !== 'viewer' });
    }
  }
  const names = new Set<string>();
  const secrets = new Map<string, string>();
  for (const token of tokens) {
    if (names.has(token.name)) {
      throw new InvalidDefinitionError(
        `Two management tokens are named "${token.name}"${token.name === 'admin' ? ' (the admin token is named "admin")' : ''}: give each its own name`,
      );
    }
    names.add(token.name);
    const other = secrets.get(token.secret);
    if (other !== undefined) {
      throw new InvalidDefinitionError(
        `The management tokens "${other}" and "${token.name}" have the same secret: give each its own`,
      );
    }
    secrets.set(token.secret, token.name);
  }
  return tokens;
}
