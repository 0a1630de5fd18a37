import { isIPv4 } from 'node:net';
import type { FastifyRequest } from 'fastify';
import { forbidden, unauthenticated } from './auth-error.js';
import { type ConsoleSessions, fromOwnOrigin } from './console-session.js';
import type { CredentialRing } from './credentials.js';

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
  'in the configuration) and send "Authorization: Bearer <token>"';

/** Refuses a management request from another machine when no admin token is set. */
export function loopbackOnly(request: FastifyRequest): void {
  if (!isLoopback(request.socket.remoteAddress)) throw forbidden(LOOPBACK_ONLY);
}

/**
 * Guards the management API with the admin token (`Authorization: Bearer <token>`), or the
 * console's session cookie when the request carries no Authorization header. Without a configured
 * token the API answers this machine only (a local development server), so that a server started
 * without one is not open to the network; `buildApp` logs a warning then.
 */
export function adminGuard(token: string | null, ring: CredentialRing, sessions: ConsoleSessions | null) {
  return async (request: FastifyRequest): Promise<void> => {
    if (!token) return loopbackOnly(request);
    const header = request.headers.authorization;
    if ((header === undefined || header === '') && sessions?.verify(request)) {
      if (fromOwnOrigin(request)) return;
      throw forbidden('The console session cookie is accepted only from the console itself');
    }
    const queryToken = sseToken(request);
    if ((header === undefined || header === '') && queryToken !== null) {
      const grant = ring.identify(queryToken);
      if (grant?.kind === 'admin') return;
      throw unauthenticated('The access_token is not the admin token', `${CHALLENGE}, error="invalid_token"`);
    }
    if (header === undefined || header === '') {
      throw unauthenticated('The management API needs "Authorization: Bearer <admin token>"', CHALLENGE);
    }
    const match = BEARER.exec(header);
    if (!match) throw unauthenticated('The Authorization header is not a Bearer token', CHALLENGE);
    const grant = ring.identify(match[1]!);
    if (grant === null) {
      throw unauthenticated('The bearer token is not valid', `${CHALLENGE}, error="invalid_token"`);
    }
    if (grant.kind !== 'admin') {
      throw forbidden('This credential is a trigger key; the management API needs the admin token');
    }
  };
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
