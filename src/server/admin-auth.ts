import type { FastifyRequest } from 'fastify';
import { forbidden, unauthenticated } from './auth-error.js';
import type { CredentialRing } from './credentials.js';

const CHALLENGE = 'Bearer realm="tandem"';
const BEARER = /^Bearer +([\x21-\x7e]+) *$/i;

/**
 * Guards the management API with the admin token (`Authorization: Bearer <token>`). Without a
 * configured token the API is open (a local development server); `buildApp` logs a warning then.
 */
export function adminGuard(token: string | null, ring: CredentialRing) {
  return async (request: FastifyRequest): Promise<void> => {
    if (!token) return;
    const header = request.headers.authorization;
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
