import type { FastifyRequest } from 'fastify';
import { forbidden, unauthenticated } from './auth-error.js';
import { type ConsoleSessions, fromOwnOrigin } from './console-session.js';
import type { CredentialRing } from './credentials.js';

const CHALLENGE = 'Bearer realm="tandem"';
const BEARER = /^Bearer +([\x21-\x7e]+) *$/i;

/**
 * Guards the management API with the admin token (`Authorization: Bearer <token>`), or the
 * console's session cookie when the request carries no Authorization header. Without a configured
 * token the API is open (a local development server); `buildApp` logs a warning then.
 */
export function adminGuard(token: string | null, ring: CredentialRing, sessions: ConsoleSessions | null) {
  return async (request: FastifyRequest): Promise<void> => {
    if (!token) return;
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
