/**
 * Shared pieces of the reliability suite: a real server on a given store, with an async
 * integration whose steps count their executions and a sync one that hands off to it.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import { Engine, type EngineOptions } from '../../src/engine/engine.js';
import { buildApp } from '../../src/server/app.js';
import type { Store } from '../../src/store/store.js';
import { quietLogger } from '../support/engine.js';

export interface Answer {
  status: number;
  contentType: string;
  retryAfter: string | null;
  json: any;
}

/** Sends one JSON request and reads the whole answer; a refused connection is status 0. */
export async function send(
  url: string,
  method: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  try {
    const response = await fetch(url, {
      method,
      headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
      body: body === undefined ? null : JSON.stringify(body),
    });
    const text = await response.text();
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    return {
      status: response.status,
      contentType: response.headers.get('content-type') ?? '',
      retryAfter: response.headers.get('retry-after'),
      json,
    } satisfies Answer;
  } catch {
    return { status: 0, contentType: '', retryAfter: null, json: undefined } satisfies Answer;
  }
}

/** Executions per `<instance> <step>`, counted in this process. */
export type Effects = Map<string, number>;

/** `ship` (async, POST /orders, two steps) and `quote` (sync, POST /quotes, hands off to `ship`). */
export function orderIntegrations(effects: Effects) {
  const ship = defineIntegration({
    id: 'ship',
    mode: 'async',
    route: 'POST /orders',
    input: z.object({ orderId: z.string(), pad: z.string().optional() }),
    track: { orderId: 'orderId' },
    retry: { maxAttempts: 50, initialDelayMs: 20, maxDelayMs: 200 },
    async handler(ctx) {
      for (const step of ['reserve', 'ship']) {
        await ctx.step(step, async () => {
          const key = `${ctx.instanceId} ${step}`;
          effects.set(key, (effects.get(key) ?? 0) + 1);
          return step;
        });
      }
      return { orderId: ctx.input.orderId };
    },
  });
  const quote = defineIntegration({
    id: 'quote',
    mode: 'sync',
    route: 'POST /quotes',
    input: z.object({ orderId: z.string(), pad: z.string().optional() }),
    async handler(ctx) {
      ctx.start(ship, { orderId: ctx.input.orderId, pad: ctx.input.pad });
      return { quoted: ctx.input.orderId };
    },
  });
  return [ship, quote] as const;
}

/** A started engine and a listening server on `store`. */
export async function serverOn(
  store: Store,
  integrations: Parameters<typeof Engine.create>[0]['integrations'],
  options: Partial<EngineOptions> = {},
): Promise<{ engine: Engine; app: FastifyInstance; url: string; close: () => Promise<void> }> {
  const engine = await Engine.create({
    integrations,
    store,
    logger: quietLogger,
    pollIntervalMs: 50,
    ...options,
  });
  engine.start();
  const app = await buildApp({ engine, adminToken: null });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  return {
    engine,
    app,
    url: `http://127.0.0.1:${port}`,
    async close() {
      await app.close();
      await engine.stop(1_000);
    },
  };
}

/**
 * A size-limited file system (tmpfs) mounted on a fresh directory, or null where this machine does
 * not allow mounts (not root, no CAP_SYS_ADMIN). `owner` chowns its root (e.g. to `postgres`).
 */
export function smallFileSystem(
  sizeBytes: number,
  owner?: string,
): { path: string; remove: () => void } | null {
  const path = mkdtempSync(join(tmpdir(), 'tandem-small-fs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tandem-small-fs', path], {
      stdio: 'ignore',
    });
  } catch {
    rmSync(path, { recursive: true, force: true });
    return null;
  }
  if (owner) execFileSync('chown', [owner, path]);
  mkdirSync(path, { recursive: true });
  return {
    path,
    remove() {
      execFileSync('umount', ['-l', path], { stdio: 'ignore' });
      rmSync(path, { recursive: true, force: true });
    },
  };
}
