import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';

/** The console's session cookie: set by `POST /console/sign-in`, read by `/console` and `/api`. */
const SESSION_COOKIE = 'tandem_console';
/** How long a console sign-in lasts. */
export const SESSION_HOURS = 12;

const VALUE = /^(\d{10,13})\.([A-Za-z0-9_-]{43})$/;

/**
 * Console sessions without server-side state: the cookie holds its expiry and an HMAC of that
 * expiry keyed by the admin token, so any process that knows the token verifies it, a changed
 * token ends every session at once, and nothing in the cookie reveals the token.
 */
export class ConsoleSessions {
  private readonly key: Buffer;

  constructor(adminToken: string) {
    // A key of its own, so that a session MAC is never usable as, or derived from, another MAC.
    this.key = createHmac('sha256', adminToken).update('tandem console session v1').digest();
  }

  /** A new session's cookie value, valid for SESSION_HOURS from `now`. */
  issue(now = Date.now()): { value: string; maxAgeSeconds: number } {
    const maxAgeSeconds = SESSION_HOURS * 3600;
    const expires = Math.floor(now / 1000) + maxAgeSeconds;
    return { value: `${expires}.${this.mac(expires)}`, maxAgeSeconds };
  }

  /** Whether the request carries an unexpired session cookie made with this admin token. */
  verify(request: FastifyRequest, now = Date.now()): boolean {
    const value = cookie(request.headers.cookie, SESSION_COOKIE);
    const match = value === null ? null : VALUE.exec(value);
    if (!match) return false;
    const expires = Number(match[1]);
    const expected = Buffer.from(this.mac(expires));
    const presented = Buffer.from(match[2]!);
    return timingSafeEqual(expected, presented) && expires * 1000 > now;
  }

  private mac(expires: number): string {
    return createHmac('sha256', this.key).update(String(expires)).digest('base64url');
  }
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
