/**
 * Simulated business applications for the demo: real HTTP servers on 127.0.0.1, each switchable
 * down and up (`POST /_down`, `POST /_up` on the app itself, e.g. `curl -X POST localhost:4003/_down`).
 * A down app refuses every other request with 503, as an application in maintenance would.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

type Route = (
  body: any,
  req: IncomingMessage,
) => { status?: number; body: unknown } | Promise<{ status?: number; body: unknown }>;

export interface App {
  name: string;
  url: string;
  down: boolean;
  /** Effects, deduplicated by Idempotency-Key: what the application really did. */
  effects: Map<string, unknown>;
  close(): Promise<void>;
}

async function app(name: string, port: number, routes: Record<string, Route>): Promise<App> {
  const state: App = {
    name,
    url: `http://127.0.0.1:${port}`,
    down: false,
    effects: new Map(),
    close: async () => {},
  };
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const send = (status: number, body: unknown) =>
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/_down' || path === '/_up') {
      state.down = path === '/_down';
      return send(200, { app: name, down: state.down });
    }
    if (path === '/_status') return send(200, { app: name, down: state.down, effects: state.effects.size });
    if (state.down) return send(503, { error: `${name} is down for maintenance` });
    const route = routes[`${req.method} ${path.replace(/\/[^/]*\d[^/]*$/, '/:id')}`];
    if (!route) return send(404, { error: `no route ${req.method} ${path}` });
    const key = req.headers['idempotency-key'];
    if (typeof key === 'string' && state.effects.has(key)) return send(200, state.effects.get(key));
    const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : undefined;
    const result = await route(body, req);
    if (typeof key === 'string' && (result.status ?? 200) < 400) state.effects.set(key, result.body);
    send(result.status ?? 200, result.body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  state.close = () => new Promise((resolve) => server.close(() => resolve()));
  return state;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts the demo's applications on consecutive ports from `base` (default 4001). */
export async function startApps(base = Number(process.env.DEMO_APPS_PORT ?? 4001)) {
  let stock = 1_000;
  let orders = 0;
  return {
    bank: await app('bank', base, {
      'GET /accounts/:id': async () => {
        await sleep(20);
        return { body: { balance: 1234.56, currency: 'EUR' } };
      },
    }),
    inventory: await app('inventory', base + 1, {
      'GET /stock/:id': () => ({ body: { available: stock } }),
      'POST /reservations': (body) => {
        stock -= body.qty;
        return { status: 201, body: { reservationId: `R-${++orders}`, remaining: stock } };
      },
    }),
    crm: await app('crm', base + 2, {
      'POST /customers': (body) => ({ status: 201, body: { customerId: `C-${body.email}` } }),
    }),
    marketing: await app('marketing', base + 3, {
      'POST /subscriptions': () => ({ status: 201, body: { subscribed: true } }),
    }),
    warehouse: await app('warehouse', base + 4, {
      'POST /packing-lists': (body) => ({ status: 201, body: { packingListId: `P-${body.orderId}` } }),
    }),
    hr: await app('hr', base + 5, {
      'POST /employees': (body) => ({ status: 201, body: { employeeId: body.employeeId } }),
    }),
    documents: await app('documents', base + 6, {
      'POST /documents': (body) => ({ status: 201, body: { stored: body.title } }),
    }),
  };
}
