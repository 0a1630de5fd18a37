/**
 * Simulated business applications for the demo: real HTTP servers on 127.0.0.1, each switchable
 * down and up (`POST /_down`, `POST /_up` on the application itself, or through the directory on
 * the port below the first application: `tandem demo down inventory`). A down application answers
 * every other request with 503, as an application in maintenance would. The warehouse, like a real
 * one, confirms a shipment later: it calls the packing list's `callbackUrl` back after a delay.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

type Answer = { status?: number; body: unknown };
type Route = (body: any, params: Record<string, string>) => Answer | Promise<Answer>;

export interface App {
  name: string;
  url: string;
  down: boolean;
  /** Effects, deduplicated by Idempotency-Key: what the application really did. */
  effects: Map<string, unknown>;
  close(): Promise<void>;
}

/** The demo's applications, in port order from the base port (default 4001). */
export const APP_NAMES = [
  'bank',
  'inventory',
  'crm',
  'marketing',
  'warehouse',
  'hr',
  'documents',
  'webshop',
  'credit-bureau',
  'identity',
  'order-processing',
] as const;
export type AppName = (typeof APP_NAMES)[number];
export type Apps = Record<AppName, App>;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A shipment of the warehouse, and how its callback went. */
interface Shipment {
  orderId: string;
  trackingNumber: string;
  /** Null until shipped. */
  shippedAt: string | null;
  /** Where to confirm it: the URL of the last packing list of the order. */
  callbackUrl: string;
  /** The callback's answer: 202 taken, 409 answered before, 410 expired; null: not yet, or no answer. */
  callbackStatus: number | null;
}

/**
 * Calls a shipment's callback URL as a partner does: retried while there is no answer or a 5xx
 * (Tandem restarting), given up on any 4xx (used, expired, unknown), at most ten times.
 */
async function callBack(shipment: Shipment): Promise<void> {
  const url = shipment.callbackUrl;
  const { orderId, trackingNumber, shippedAt } = shipment;
  const body = { orderId, trackingNumber, shippedAt };
  for (let attempt = 1; attempt <= 10; attempt++) {
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      await response.arrayBuffer();
      shipment.callbackStatus = response.status;
      if (response.status < 500) return;
    } catch {
      shipment.callbackStatus = null;
    }
    await sleep(1_000 * attempt);
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : undefined;
}

/** Matches `GET /events/:id/seats` against a request; returns the path parameters. */
function match(pattern: string, method: string, path: string): Record<string, string> | null {
  const [patternMethod, patternPath] = pattern.split(' ') as [string, string];
  if (patternMethod !== method) return null;
  const want = patternPath.split('/');
  const got = path.split('/');
  if (want.length !== got.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    if (want[i]!.startsWith(':')) params[want[i]!.slice(1)] = decodeURIComponent(got[i]!);
    else if (want[i] !== got[i]) return null;
  }
  return params;
}

/** Listens on 127.0.0.1 (port 0: a free one); resolves to the port. */
function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
  });
}

/**
 * An application: its routes, deduplicated by `Idempotency-Key` (a repeated key gets the first
 * answer and changes nothing); `onRepeat` is told of such a repeat (route pattern and body).
 */
async function app(
  name: string,
  port: number,
  routes: Record<string, Route>,
  onRepeat?: (pattern: string, body: any) => void,
): Promise<App> {
  const state: App = {
    name,
    url: '',
    down: false,
    effects: new Map(),
    close: async () => {},
  };
  const server = createServer(async (req, res) => {
    try {
      const path = (req.url ?? '/').split('?')[0]!;
      const body = await readJson(req);
      if (path === '/_down' || path === '/_up') {
        state.down = path === '/_down';
        return send(res, 200, { app: name, down: state.down });
      }
      if (path === '/_status')
        return send(res, 200, { app: name, down: state.down, effects: state.effects.size });
      if (state.down) return send(res, 503, { error: `${name} is down for maintenance` });
      for (const [pattern, route] of Object.entries(routes)) {
        const params = match(pattern, req.method ?? 'GET', path);
        if (!params) continue;
        const key = req.headers['idempotency-key'];
        if (typeof key === 'string' && state.effects.has(key)) {
          onRepeat?.(pattern, body);
          return send(res, 200, state.effects.get(key));
        }
        const result = await route(body, params);
        if (typeof key === 'string' && req.method !== 'GET' && (result.status ?? 200) < 400)
          state.effects.set(key, result.body);
        return send(res, result.status ?? 200, result.body);
      }
      send(res, 404, { error: `no route ${req.method} ${path}` });
    } catch (error) {
      send(res, 400, { error: (error as Error).message });
    }
  });
  state.url = `http://127.0.0.1:${await listen(server, port)}`;
  state.close = () => new Promise((resolve) => server.close(() => resolve()));
  return state;
}

/**
 * The directory of the simulated applications, on the port below the first one (default 4000):
 * `GET /` lists them, `POST /<name>/down` and `POST /<name>/up` switch one. `tandem demo` and the
 * traffic script talk to it.
 */
async function directory(port: number, apps: Apps): Promise<App> {
  const server = createServer(async (req, res) => {
    const list = () => Object.values(apps).map(({ name, url, down }) => ({ name, url, down }));
    const path = (req.url ?? '/').split('?')[0]!;
    if (req.method === 'GET' && path === '/') return send(res, 200, { apps: list() });
    const switched = /^\/([a-z-]+)\/(down|up)$/.exec(path);
    const target = switched && apps[switched[1] as AppName];
    if (req.method === 'POST' && target) {
      target.down = switched[2] === 'down';
      return send(res, 200, { name: target.name, url: target.url, down: target.down });
    }
    send(res, 404, { error: `no route ${req.method} ${path}; known applications: ${APP_NAMES.join(', ')}` });
  });
  const listening = await listen(server, port);
  return {
    name: 'directory',
    url: `http://127.0.0.1:${listening}`,
    down: false,
    effects: new Map(),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/**
 * Starts the demo's applications on consecutive ports from `base` (default 4001, or
 * `DEMO_APPS_PORT`), and their directory on `base - 1`; with `base` 0, each on a free port.
 */
export interface AppsOptions {
  /**
   * How long the warehouse takes to ship a packing list, then calls its callback URL back. Default
   * `DEMO_SHIPMENT_DELAY_MS`, else 10 s: long enough to see the order waiting in the console.
   */
  shipmentDelayMs?: number;
}

export async function startApps(
  base = Number(process.env.DEMO_APPS_PORT ?? 4001),
  options: AppsOptions = {},
) {
  const shipmentDelayMs = options.shipmentDelayMs ?? Number(process.env.DEMO_SHIPMENT_DELAY_MS ?? 10_000);
  const stock = new Map<string, number>();
  const stockOf = (sku: string) => stock.get(sku) ?? 1_000;
  const shopStock = new Map<string, { available: number; syncedAt: string }>();
  const packingLists = new Map<string, number>();
  const shipments = new Map<string, Shipment>();
  const notifications = new Map<string, unknown[]>();
  const users = new Map<string, string>();
  /** Ships an order after the delay, then confirms at the packing list's callback URL (if it had one). */
  const ship = (body: { orderId: string; callbackUrl?: unknown }) => {
    if (typeof body?.callbackUrl !== 'string') return;
    const known = shipments.get(body.orderId);
    if (known) {
      known.callbackUrl = body.callbackUrl;
      if (known.shippedAt !== null) void callBack(known);
      return;
    }
    const shipment: Shipment = {
      orderId: body.orderId,
      trackingNumber: `1Z${String(100_001 + shipments.size)}`,
      shippedAt: null,
      callbackUrl: body.callbackUrl,
      callbackStatus: null,
    };
    shipments.set(body.orderId, shipment);
    setTimeout(() => {
      shipment.shippedAt = new Date().toISOString();
      void callBack(shipment);
    }, shipmentDelayMs).unref();
  };
  const received = new Map<string, { count: number; order: unknown }>();
  let reservations = 0;
  const port = (name: AppName) => (base === 0 ? 0 : base + APP_NAMES.indexOf(name));
  const apps: Apps = {
    bank: await app('bank', port('bank'), {
      'GET /accounts/:id': async (_, { id }) => {
        await sleep(20);
        return { body: { account: id, balance: 1234.56, currency: 'EUR' } };
      },
      'GET /quotes/:symbol': async (_, { symbol }) => {
        await sleep(10);
        const price = 100 + ((Date.now() / 1000) % 10) + symbol!.length;
        return {
          body: {
            symbol,
            price: Math.round(price * 100) / 100,
            currency: 'EUR',
            at: new Date().toISOString(),
          },
        };
      },
    }),
    inventory: await app('inventory', port('inventory'), {
      'GET /stock/:sku': (_, { sku }) => ({ body: { sku, available: stockOf(sku!) } }),
      'POST /reservations': (body) => {
        stock.set(body.sku, stockOf(body.sku) - body.qty);
        return { status: 201, body: { reservationId: `R-${++reservations}`, remaining: stockOf(body.sku) } };
      },
    }),
    crm: await app('crm', port('crm'), {
      'POST /customers': (body) => ({ status: 201, body: { customerId: `C-${body.email}` } }),
      /** A message to a customer (the shipping notice), sent by the CRM's mailer. */
      'POST /notifications': (body) => {
        notifications.set(body.orderId, [...(notifications.get(body.orderId) ?? []), body]);
        return { status: 201, body: { notified: body.email } };
      },
      /** Notices sent, by order id. */
      'GET /notifications': () => ({ body: Object.fromEntries(notifications) }),
    }),
    marketing: await app('marketing', port('marketing'), {
      'POST /subscriptions': () => ({ status: 201, body: { subscribed: true } }),
    }),
    warehouse: await app(
      'warehouse',
      port('warehouse'),
      {
        'POST /packing-lists': (body) => {
          packingLists.set(body.orderId, (packingLists.get(body.orderId) ?? 0) + 1);
          ship(body);
          return { status: 201, body: { packingListId: `P-${body.orderId}` } };
        },
        /** Packing lists received, by order id: how many of each. */
        'GET /packing-lists': () => ({ body: Object.fromEntries(packingLists) }),
        /** Shipments, by order id: tracking number, when shipped, and what the callback was answered. */
        'GET /shipments': () => ({
          body: Object.fromEntries(
            [...shipments].map(([id, { orderId, trackingNumber, shippedAt, callbackStatus }]) => [
              id,
              { orderId, trackingNumber, shippedAt, callbackStatus },
            ]),
          ),
        }),
      },
      // A packing list sent again (a retry, a rerun) is not packed twice, but its callback URL is the
      // one to confirm at: an order already shipped is confirmed there at once.
      (pattern, body) => {
        if (pattern === 'POST /packing-lists') ship(body);
      },
    ),
    hr: await app('hr', port('hr'), {
      'POST /employees': (body) => ({ status: 201, body: { employeeId: body.employeeId } }),
    }),
    documents: await app('documents', port('documents'), {
      'POST /documents': (body) => ({ status: 201, body: { stored: body.title } }),
    }),
    webshop: await app('webshop', port('webshop'), {
      'GET /events/:id/seats': async (_, { id }) => {
        await sleep(5);
        return { body: { event: id, available: 40 - (id!.length % 7), capacity: 40 } };
      },
      'GET /products/:sku': (_, { sku }) => ({
        body: { sku, name: `Product ${sku}`, price: 10 + (sku!.length % 5) * 5 },
      }),
      'PUT /stock/:sku': (body, { sku }) => {
        shopStock.set(sku!, { available: body.available, syncedAt: new Date().toISOString() });
        return { body: { sku, ...shopStock.get(sku!) } };
      },
      'GET /stock/:sku': (_, { sku }) => {
        const known = shopStock.get(sku!);
        return known ? { body: { sku, ...known } } : { status: 404, body: { error: `unknown sku ${sku}` } };
      },
    }),
    'credit-bureau': await app('credit-bureau', port('credit-bureau'), {
      'GET /scores/:customer': async (_, { customer }) => {
        await sleep(30);
        const score = 550 + ((customer!.charCodeAt(customer!.length - 1) * 37) % 300);
        return { body: { customer, score, rating: score >= 700 ? 'A' : score >= 620 ? 'B' : 'C' } };
      },
    }),
    identity: await app('identity', port('identity'), {
      'POST /users': (body) => {
        users.set(body.employeeId, `u-${String(body.employeeId).toLowerCase()}`);
        return { status: 201, body: { userId: users.get(body.employeeId) } };
      },
      'GET /users/:employeeId': (_, { employeeId }) => {
        const userId = users.get(employeeId!);
        return userId
          ? { body: { employeeId, userId } }
          : { status: 404, body: { error: `no user for ${employeeId}` } };
      },
    }),
    'order-processing': await app('order-processing', port('order-processing'), {
      'POST /orders': (body) => {
        const seen = received.get(body.orderId);
        received.set(body.orderId, { count: (seen?.count ?? 0) + 1, order: body });
        return { status: 201, body: { orderId: body.orderId, accepted: true } };
      },
      /** Orders received, by order id: how many times each, and the last one. */
      'GET /orders': () => ({ body: Object.fromEntries(received) }),
    }),
  };
  const dir = await directory(base === 0 ? 0 : base - 1, apps);
  return {
    apps,
    directory: dir,
    close: async () => {
      await Promise.all([dir, ...Object.values(apps)].map((a) => a.close()));
    },
  };
}
