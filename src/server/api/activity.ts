/**
 * GET /api/activity: the activity stream as Server-Sent Events. Each event's SSE id is its stream
 * cursor, so a client that reconnects with `Last-Event-ID` (or `?after=`) continues exactly after
 * the last event it received: no gaps, no duplicates. When the server closes, every stream ends
 * (clients reconnect to another process with `Last-Event-ID`): an open stream must not hold a
 * shutdown open.
 */
import type { FastifyInstance } from 'fastify';
import { InvalidInputError } from '../../errors.js';
import { EVENTS_INTO } from '../../lifecycle/transitions.js';
import type { ServerContext } from '../context.js';
import { API_ROUTES } from './routes.js';
import { NOT_ISSUED } from './schemas.js';
import { serve } from './serve.js';

const HEARTBEAT_MS = 15_000;

export function activityRoutes(app: FastifyInstance, context: ServerContext): void {
  /** The open streams: each one's abort, and a promise settled once its response has ended. */
  const open = new Map<AbortController, Promise<void>>();
  app.addHook('preClose', async () => {
    for (const controller of open.keys()) controller.abort();
    await Promise.all(open.values());
  });
  serve(app, API_ROUTES.followActivity, async (request, reply) => {
    const { query } = request;
    const lastEventId = request.headers['last-event-id'];
    const after = typeof lastEventId === 'string' && lastEventId !== '' ? lastEventId : query.after;
    if (after !== undefined && after !== 'start' && !context.engine.isStreamCursor(after)) {
      throw notIssued(
        after === lastEventId ? 'header' : 'query',
        after === lastEventId ? 'last-event-id' : 'after',
      );
    }
    const controller = new AbortController();
    request.raw.on('close', () => controller.abort());
    let ended!: () => void;
    open.set(
      controller,
      new Promise<void>((resolve) => {
        ended = resolve;
      }),
    );
    reply.hijack();
    const out = reply.raw;
    out.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    out.write('retry: 1000\n\n');
    const heartbeat = setInterval(() => out.write(': keep-alive\n\n'), HEARTBEAT_MS);
    try {
      for await (const event of context.engine.followActivity({
        ...(after === undefined ? {} : { after: after === 'start' ? '' : after }),
        ...(query.integration ? { integrationId: query.integration } : {}),
        ...(query.status ? { types: [...EVENTS_INTO[query.status]] } : {}),
        ...(query.tracking ? { tracking: query.tracking } : {}),
        signal: controller.signal,
        onChange: (listener) => context.engine.onChange(listener),
      })) {
        const { cursor, ...data } = event;
        const ok = out.write(`id: ${cursor}\nevent: ${event.type}\ndata: ${JSON.stringify(data)}\n\n`);
        if (!ok) await drained(out, controller.signal);
      }
    } catch (error) {
      if (!controller.signal.aborted) request.log.error({ err: error }, 'activity stream failed');
    } finally {
      clearInterval(heartbeat);
      open.delete(controller);
      // The connection closes with the stream: kept alive, it would hold the server's close open.
      out.end(() => out.socket?.end());
      ended();
    }
  });
}

/** A stream position (`after`, `Last-Event-ID`) that the store did not issue. */
function notIssued(part: 'query' | 'header', path: string): InvalidInputError {
  return new InvalidInputError([{ in: part, path, message: NOT_ISSUED }]);
}

/** Resolves when the client has read what is buffered, or when the stream is being ended. */
function drained(out: NodeJS.WritableStream, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      out.off('drain', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    out.once('drain', done);
    signal.addEventListener('abort', done, { once: true });
  });
}
