import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { ManagementToken } from './tokens.js';

/** The console's session cookie: set by `POST /console/sign-in`, read by `/console` and `/api`. */
const SESSION_COOKIE = 'tandem_console';
/** How long a console sign-in lasts. */
export const SESSION_HOURS = 12;

const VALUE = /^(\d{10,13})\.([A-Za-z0-9_-]{1,88})\.([A-Za-z0-9_-]{43})$/;

/**
 * Console sessions without server-side state: the cookie holds its expiry, the name of the token
 * signed in with, and an HMAC of both keyed by that token's secret, so any process that knows the
 * tokens verifies it, a changed token ends its sessions at once, and nothing in the cookie reveals
 * a secret. A session has the role of its token.
 */
export class ConsoleSessions {
  private readonly keys = new Map<string, { token: ManagementToken; key: Buffer }>();

  constructor(tokens: ManagementToken[] | string) {
    const list: ManagementToken[] =
      typeof tokens === 'string' ? [{ name: 'admin', role: 'admin', secret: tokens, bodies: true }] : tokens;
    for (const token of list) {
      // A key of its own, so that a session MAC is never usable as, or derived from, another MAC.
      const key = createHmac('sha256', token.secret).update('tandem console session v2').digest();
      this.keys.set(token.name, { token, key });
    }
  }

  /** A new session's cookie value for a token (default: the admin token), valid for SESSION_HOURS from `now`. */
  issue(now = Date.now(), name = 'admin'): { value: string; maxAgeSeconds: number } {
    const entry = this.keys.get(name);
    if (entry === undefined) throw new Error(`No management token is named "${name}"`);
    const maxAgeSeconds = SESSION_HOURS * 3600;
    const expires = Math.floor(now / 1000) + maxAgeSeconds;
    const encoded = Buffer.from(name, 'utf8').toString('base64url');
    return { value: `${expires}.${encoded}.${mac(entry.key, expires, encoded)}`, maxAgeSeconds };
  }

  /** The token of the request's unexpired session cookie, or null when it carries none valid. */
  verify(request: FastifyRequest, now = Date.now()): ManagementToken | null {
    const value = cookie(request.headers.cookie, SESSION_COOKIE);
    const match = value === null ? null : VALUE.exec(value);
    if (!match) return null;
    const expires = Number(match[1]);
    const encoded = match[2]!;
    const entry = this.keys.get(Buffer.from(encoded, 'base64url').toString('utf8'));
    if (entry === undefined) return null;
    const expected = Buffer.from(mac(entry.key, expires, encoded));
    const presented = Buffer.from(match[3]!);
    return timingSafeEqual(expected, presented) && expires * 1000 > now ? entry.token : null;
  }
}

function mac(key: Buffer, expires: number, encodedName: string): string {
  return createHmac('sha256', key).update(`${expires}.${encodedName}`).digest('base64url');
}

/** `Set-Cookie` for a session value; `Max-Age=0` with an empty value signs out. */
export function sessionCookie(value: string, maxAgeSeconds: number, secure: boolean): string {
  return [
    `${SESSION_COOKIE}=${value}`,
    'Path=/',
    `Max-Age=${maxAgeSeconds}`,
    'HttpOnly',
    'SameSite=Strict',
    ...(secure ? ['Secure'] : []),
  ].join('; ');
}

/** One cookie's value from a Cookie header (the first of that name), or null. */
function cookie(header: string | undefined, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(';')) {
    const at = part.indexOf('=');
    if (at > 0 && part.slice(0, at).trim() === name) return part.slice(at + 1).trim();
  }
  return null;
}

/**
 * A request that the cookie may authorise only when it comes from the console's own pages: a
 * browser sends `Sec-Fetch-Site` and, on unsafe methods, `Origin`; either naming another site
 * means a page elsewhere is using the browser's cookie (SameSite=Strict already keeps it off
 * cross-site requests; this holds also for a same-site page on another port or subdomain).
 */
export function fromOwnOrigin(request: FastifyRequest): boolean {
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return false;
  const origin = request.headers.origin;
  if (origin === undefined) return true;
  const host = request.headers.host;
  return host !== undefined && (origin === `http://${host}` || origin === `https://${host}`);
}
