/**
 * The web console's files at /console/. They are built by `npm run build:console` into
 * console/dist; the page asks the management API for everything. Without a build, /console
 * answers a problem document that says how to build it, and the rest of the server works as before.
 *
 * With management tokens configured, the console's files too are behind them: `/console/*` answers
 * the sign-in page (401) until `POST /console/sign-in` with a token has set the session cookie
 * (HttpOnly, SameSite=Strict), which the management API then accepts from the console's pages in
 * place of a Bearer token, in that token's role. `GET /console/session` tells the page the role, so
 * that it hides the actions the role lacks (the API refuses them anyway).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { TandemError } from '../errors.js';
import { accessOf, loopbackOnly } from './admin-auth.js';
import { unauthenticated } from './auth-error.js';
import { type ConsoleSessions, fromOwnOrigin, sessionCookie } from './console-session.js';
import type { CredentialRing } from './credentials.js';
import { type Access, LOCAL_ACCESS } from './tokens.js';

export const CONSOLE_DIST = join(import.meta.dirname, '..', '..', 'console', 'dist');

export interface ConsoleAuth {
  sessions: ConsoleSessions;
  ring: CredentialRing;
}

/** The sign-in form's field; a token is at most a few hundred characters. */
const SIGN_IN_BODY_LIMIT = 4096;
const CHALLENGE = 'Bearer realm="tandem"';

export async function consoleRoutes(
  app: FastifyInstance,
  root = CONSOLE_DIST,
  auth: ConsoleAuth | null = null,
): Promise<void> {
  app.get('/console', (_request, reply) => reply.redirect('/console/', 308));
  if (auth) signInRoutes(app, auth);
  // Without a token there is no sign-in: the page asks, and shows no "Sign out".
  else
    app.get('/console/session', () => ({
      signedIn: false,
      signInRequired: false,
      ...shownAccess(LOCAL_ACCESS),
    }));
  if (!existsSync(join(root, 'index.html'))) {
    const notBuilt = async () => {
      throw new TandemError(
        'route-not-found',
        'The console is not built: run `npm run build:console` (or `npm ci`, which builds it), then restart',
      );
    };
    app.get('/console/', notBuilt);
    app.get('/console/*', notBuilt);
    return;
  }
  await app.register(async (scope) => {
    // Without a token, like /api: this machine only.
    if (!auth) scope.addHook('onRequest', async (request) => loopbackOnly(request));
    if (auth) {
      scope.addHook('onRequest', async (request, reply) => {
        if (auth.sessions.verify(request) !== null && fromOwnOrigin(request)) return;
        if (wantsPage(request)) return signInPage(reply, 401);
        throw unauthenticated(
          'The console needs a sign-in with a management token: POST /console/sign-in',
          CHALLENGE,
        );
      });
    }
    await scope.register(fastifyStatic, {
      root,
      prefix: '/console/',
      index: 'index.html',
      cacheControl: false,
      // Asset names carry a content hash; the page itself must be fetched anew after an upgrade.
      setHeaders: (response, path) => {
        response.setHeader(
          'cache-control',
          path.endsWith('index.html') ? 'no-cache' : 'private, max-age=31536000, immutable',
        );
      },
    });
  });
}

/**
 * `GET /console/sign-in` (the form), `POST /console/sign-in` (a management token as the form field
 * `token`, or JSON `{ "token": … }`) and `POST /console/sign-out`. The form works without script.
 */
function signInRoutes(app: FastifyInstance, { sessions, ring }: ConsoleAuth): void {
  app.get('/console/sign-in', (_request, reply) => signInPage(reply, 200));
  app.get('/console/session', (request) => {
    const token = sessions.verify(request);
    if (token === null) {
      throw unauthenticated('No console session: sign in at /console/sign-in', CHALLENGE);
    }
    return { signedIn: true, signInRequired: true, ...shownAccess(accessOf(token)) };
  });
  app.register(async (scope) => {
    scope.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string' },
      (_request, body, done) => done(null, Object.fromEntries(new URLSearchParams(body as string))),
    );
    scope.post('/console/sign-in', { bodyLimit: SIGN_IN_BODY_LIMIT }, async (request, reply) => {
      if (!fromOwnOrigin(request)) {
        throw new TandemError('forbidden', 'Sign in from the console itself, not from another site');
      }
      const token = (request.body as { token?: unknown } | undefined)?.token;
      if (typeof token !== 'string' || token === '') {
        throw new TandemError('invalid-input', 'The sign-in needs a management token in the field "token"', {
          issues: [{ in: 'body', path: 'token', message: 'Required: a management token' }],
        });
      }
      const grant = ring.identify(token);
      if (grant?.kind !== 'management') {
        if (wantsPage(request)) return signInPage(reply, 401, 'That is not a management token.');
        throw unauthenticated('That is not a management token', `${CHALLENGE}, error="invalid_token"`);
      }
      const session = sessions.issue(Date.now(), grant.token.name);
      reply.header('set-cookie', sessionCookie(session.value, session.maxAgeSeconds, secure(request)));
      if (wantsPage(request)) return reply.redirect('/console/', 303);
      return reply.code(204).send();
    });
    scope.post('/console/sign-out', async (request, reply) => {
      reply.header('set-cookie', sessionCookie('', 0, secure(request)));
      if (wantsPage(request)) return reply.redirect('/console/sign-in', 303);
      return reply.code(204).send();
    });
  });
}

const secure = (request: FastifyRequest) => request.protocol === 'https';

/** What the console's page is told of its session: the role it hides actions by, and the token's name. */
function shownAccess(access: Access) {
  return { role: access.role, token: access.token, bodies: access.bodies };
}

/** A browser navigating (or posting the form) wants a page; a program wants problem+json. */
function wantsPage(request: FastifyRequest): boolean {
  return (request.headers.accept ?? '').includes('text/html');
}

/** The sign-in page: no script, no data, no external resources. */
function signInPage(reply: FastifyReply, status: 200 | 401, error?: string): FastifyReply {
  return reply
    .code(status)
    .header('content-type', 'text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .header(
      'content-security-policy',
      "default-src 'none'; img-src data:; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    )
    .header('x-frame-options', 'DENY')
    .send(
      SIGN_IN_HTML.replace('<!--error-->', error ? `<p id="sign-in-error" role="alert">${error}</p>` : ''),
    );
}

const SIGN_IN_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · Tandem console</title>
<link rel="icon" href="data:,">
<style>
:root { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1c1f24; }
main { max-width: 360px; margin: 15vh auto; padding: 0 16px; }
form { display: flex; flex-direction: column; gap: 8px; }
input, button { font: inherit; padding: 6px 8px; }
button { background: #0b57d0; color: #fff; border: 0; border-radius: 4px; cursor: pointer; }
:focus-visible { outline: 3px solid #0b57d0; outline-offset: 2px; }
[role=alert] { color: #b3261e; }
</style>
</head>
<body>
<main>
<h1>Tandem console</h1>
<form method="post" action="/console/sign-in">
<label for="token">Token (admin, operator or viewer)</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button>
<!--error-->
</form>
</main>
</body>
</html>
`;
