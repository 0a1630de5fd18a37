import { isIPv4 } from 'node:net';
import type { FastifyRequest } from 'fastify';
import type { TandemError } from '../errors.js';
import type { Role } from '../model.js';
import { forbidden, unauthenticated } from './auth-error.js';
import { type ConsoleSessions, fromOwnOrigin } from './console-session.js';
import type { CredentialRing } from './credentials.js';
import { type Access, grants, LOCAL_ACCESS, type ManagementToken } from './tokens.js';

const CHALLENGE = 'Bearer realm="tandem"';
const BEARER = /^Bearer +([\x21-\x7e]+) *$/i;

/**
 * Whether a peer address is this machine's loopback (127.0.0.0/8, ::1, or 127.x mapped to IPv6).
 * The socket's address, never a forwarded-for header: a client can write that header itself.
 */
export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  if (address === '::1') return true;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return isIPv4(v4) && v4.startsWith('127.');
}

/** What a refused request without a token is told: how to open the API to the network. */
const LOOPBACK_ONLY =
  'Without an admin token the management API and the console answer requests from this machine only. ' +
  'To use them from elsewhere, start the server with TANDEM_ADMIN_TOKEN set to a secret (or server.adminToken ' +
  'or server.tokens in the configuration) and send "Authorization: Bearer <token>"';

/** Refuses a management request from another machine when no management token is set. */
export function loopbackOnly(request: FastifyRequest): void {
  if (!isLoopback(request.socket.remoteAddress)) throw forbidden(LOOPBACK_ONLY);
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the management API's guard: the role and token of the request. */
    access: Access | null;
  }
  interface FastifyContextConfig {
    /** The role a management route needs (from the route table). */
    role?: Role;
  }
}

/**
 * Guards the management API with the management tokens (`Authorization: Bearer <token>`), or the
 * console's session cookie when the request carries no Authorization header, and refuses a token
 * whose role lacks the route's (`config.role`, from the route table) with 403. The request's
 * `access` says who made it. Without any token the API answers this machine only (a local
 * development server), so that a server started without one is not open to the network;
 * `buildApp` logs a warning then.
 */
export function accessGuard(
  tokens: readonly ManagementToken[],
  ring: CredentialRing,
  sessions: ConsoleSessions | null,
) {
  const guarded = tokens.length > 0;
  return async (request: FastifyRequest): Promise<void> => {
    if (!guarded) loopbackOnly(request);
    const access = guarded ? identify(request, ring, sessions) : LOCAL_ACCESS;
    request.access = access;
    const needed = request.routeOptions.config.role;
    if (needed !== undefined && !grants(access.role, needed)) throw lacksRole(access, needed);
  };
}

/** 403 for a token whose role does not include the one needed. */
export function lacksRole(access: Access, needed: Role): TandemError {
  return forbidden(`This needs the ${needed} role; the token "${access.token}" has the ${access.role} role`);
}

/** Who a request to a guarded management API is, or a 401 (403 for a trigger key). */
function identify(request: FastifyRequest, ring: CredentialRing, sessions: ConsoleSessions | null): Access {
  const header = request.headers.authorization;
  if (header === undefined || header === '') {
    const session = sessions?.verify(request) ?? null;
    if (session !== null) {
      if (fromOwnOrigin(request)) return accessOf(session);
      throw forbidden('The console session cookie is accepted only from the console itself');
    }
    const queryToken = sseToken(request);
    if (queryToken !== null) {
      const grant = ring.identify(queryToken);
      if (grant?.kind === 'management') return accessOf(grant.token);
      throw unauthenticated(
        'The access_token is not a management token',
        `${CHALLENGE}, error="invalid_token"`,
      );
    }
    throw unauthenticated('The management API needs "Authorization: Bearer <token>"', CHALLENGE);
  }
  const match = BEARER.exec(header);
  if (!match) throw unauthenticated('The Authorization header is not a Bearer token', CHALLENGE);
  const grant = ring.identify(match[1]!);
  if (grant === null) {
    throw unauthenticated('The bearer token is not valid', `${CHALLENGE}, error="invalid_token"`);
  }
  if (grant.kind !== 'management') {
    throw forbidden('This credential is a trigger key; the management API needs a management token');
  }
  return accessOf(grant.token);
}

export function accessOf(token: ManagementToken): Access {
  return { role: token.role, token: token.name, bodies: token.bodies };
}

/**
 * The token of `?access_token=` on the activity stream only: a browser's EventSource cannot send
 * an Authorization header. Elsewhere a token in a URL would end up in logs and histories.
 */
function sseToken(request: FastifyRequest): string | null {
  if (request.routeOptions.url !== '/api/activity') return null;
  const token = (request.query as Record<string, unknown> | undefined)?.access_token;
  return typeof token === 'string' && token !== '' ? token : null;
}
