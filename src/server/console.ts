/**
 * The web console's files at /console/. They are built by `npm run build:console` into
 * console/dist; the page asks the management API for everything, with the admin token when one is
 * configured, so the files themselves are public. Without a build, /console answers a problem
 * document that says how to build it, and the rest of the server works as before.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { TandemError } from '../errors.js';

export const CONSOLE_DIST = join(import.meta.dirname, '..', '..', 'console', 'dist');

export async function consoleRoutes(app: FastifyInstance, root = CONSOLE_DIST): Promise<void> {
  app.get('/console', (_request, reply) => reply.redirect('/console/', 308));
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
  await app.register(fastifyStatic, {
    root,
    prefix: '/console/',
    index: 'index.html',
    cacheControl: false,
    // Asset names carry a content hash; the page itself must be fetched anew after an upgrade.
    setHeaders: (response, path) => {
      response.setHeader(
        'cache-control',
        path.endsWith('index.html') ? 'no-cache' : 'public, max-age=31536000, immutable',
      );
    },
  });
}
