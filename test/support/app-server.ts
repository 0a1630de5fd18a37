import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  at: number;
}

export type Handler = (request: SeenRequest, response: ServerResponse) => void | Promise<void>;

/**
 * A real HTTP server on 127.0.0.1 playing a business application. It records every request (unless
 * `keep` is false: a long soak would hold them all), can be taken down (port closed, connections
 * reset) and brought back on the same port.
 */
export async function appServer(handler: Handler, { keep = true }: { keep?: boolean } = {}) {
  const seen: SeenRequest[] = [];
  const sockets = new Set<Socket>();
  let inFlight = 0;
  let peak = 0;
  const make = () => {
    const server = createServer(async (req, res) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      res.on('close', () => inFlight--);
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const request = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
        at: performance.now(),
      };
      if (keep) seen.push(request);
      try {
        await handler(request, res);
      } catch {
        if (!res.headersSent) res.writeHead(500).end('handler failed');
      }
    });
    server.keepAliveTimeout = 60_000;
    server.on('connection', (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    return server;
  };
  let server: Server = make();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  let up = true;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    seen,
    get peakInFlight() {
      return peak;
    },
    get isUp() {
      return up;
    },
    /** Closes the port and resets open connections, as a crashed application would. */
    async down() {
      if (!up) return;
      up = false;
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    async up() {
      if (up) return;
      server = make();
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
      up = true;
    },
    async close() {
      await this.down();
    },
  };
}

/** A webhook receiver that answers 204 and keeps what it was sent; `cleanups` gets its close. */
export async function webhookReceiver(cleanups: (() => Promise<void> | void)[]) {
  const server = await appServer((_request, response) => void response.writeHead(204).end());
  cleanups.push(() => server.close());
  return server;
}

export function json(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}
