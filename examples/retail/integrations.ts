/**
 * The retail demo's integrations, one or more per pattern:
 * - sync (time-sensitive, never rerun): `check-balance`, `credit-check`, `current-inventory`,
 *   `seats-available`, `stock-price`;
 * - sync → async: `place-order` answers with a confirmation number at once and hands off
 *   `fulfil-order` (customer account, marketing sign-up, stock reservation, packing list, warehouse,
 *   then a durable wait for the warehouse's shipment callback and the customer's shipping notice),
 *   committed before the answer is sent;
 * - async: `sync-inventory` (inventory → web shop), `onboard-employee` (HR, identity, then the
 *   `employee.created` event), and a document for the employee attached once the employee exists,
 *   two ways side by side: `attach-document` (ordering key) and `attach-document-by-event` (waits
 *   for `employee.created`);
 * - scheduled: `nightly-orders` reads the day's order file, reports its bad rows and hands each
 *   good one to `post-order` (enrich from the web shop's catalogue, post to order processing).
 */
import { join } from 'node:path';
import {
  csvSource,
  defineIntegration,
  HttpError,
  httpConnection,
  NonRetryableError,
  type SftpConnection,
  secret,
  sftpFiles,
} from 'tandem';
import { z } from 'zod';
import type { AppName } from './apps.js';

export interface RetailOptions {
  /** Base URL of each simulated application. */
  urls: Record<AppName, string>;
  /** Where the day's order files are (`orders-*.csv`). */
  inbox: string;
  /**
   * Tandem's own API, for the events an integration sends (`POST /api/events`). Default
   * `TANDEM_URL`, else `http://127.0.0.1:<TANDEM_PORT or 3000>`.
   */
  tandemUrl?: string;
  /**
   * Read the order files over SFTP instead (a partner's server): `pattern` like
   * `/outbox/orders-*.csv`; each file read is moved to `archive` once its orders are handed on.
   */
  ordersSftp?: { connection: SftpConnection; pattern: string; archive: string };
}

/** What the warehouse posts to a shipment callback. */
interface Shipment {
  orderId: string;
  trackingNumber: string;
  shippedAt: string;
}

export function retail({ urls, inbox, tandemUrl, ordersSftp }: RetailOptions) {
  const circuit = { failures: 5, reprobeMs: 5_000 };
  const connection = (id: AppName, timeout?: number) =>
    httpConnection(id, { baseUrl: urls[id], circuit, ...(timeout === undefined ? {} : { timeout }) });
  const connections = {
    bank: connection('bank', 2_000),
    creditBureau: connection('credit-bureau', 2_000),
    inventory: connection('inventory'),
    crm: connection('crm'),
    marketing: connection('marketing'),
    warehouse: connection('warehouse'),
    hr: connection('hr'),
    identity: connection('identity'),
    documents: connection('documents'),
    webshop: connection('webshop'),
    orderProcessing: connection('order-processing'),
    // Tandem itself, for business events: the documented endpoint any application sends them to,
    // from whichever process runs the step. With an admin token set, /api wants it.
    tandem: httpConnection('tandem', {
      baseUrl: tandemUrl ?? process.env.TANDEM_URL ?? `http://127.0.0.1:${process.env.TANDEM_PORT ?? '3000'}`,
      circuit,
      ...(process.env.TANDEM_ADMIN_TOKEN
        ? { auth: { type: 'bearer' as const, token: secret('TANDEM_ADMIN_TOKEN') } }
        : {}),
    }),
  };

  // Sync: the caller waits, the deadline bounds the wait, and a failure is answered, never rerun.
  const checkBalance = defineIntegration({
    id: 'check-balance',
    mode: 'sync',
    route: 'GET /accounts/:account/balance',
    params: z.object({ account: z.string().min(1) }),
    deadline: 2_000,
    async handler(ctx) {
      // A path parameter, never pasted into the path: "../../_status" stays one account number.
      const { account } = ctx.params;
      return { body: await ctx.call(connections.bank, 'GET', '/accounts/:account', { params: { account } }) };
    },
  });

  const creditCheck = defineIntegration({
    id: 'credit-check',
    mode: 'sync',
    route: 'GET /customers/:customer/credit',
    params: z.object({ customer: z.string().min(1) }),
    deadline: 2_000,
    async handler(ctx) {
      const score = await ctx.call<{ score: number; rating: string }>(
        connections.creditBureau,
        'GET',
        '/scores/:customer',
        { params: { customer: ctx.params.customer } },
      );
      return { body: { customer: ctx.params.customer, ...score, approved: score.rating !== 'C' } };
    },
  });

  const currentInventory = defineIntegration({
    id: 'current-inventory',
    mode: 'sync',
    route: 'GET /inventory/:sku',
    params: z.object({ sku: z.string().min(1) }),
    deadline: 1_000,
    async handler(ctx) {
      return {
        body: await ctx.call(connections.inventory, 'GET', '/stock/:sku', {
          params: { sku: ctx.params.sku },
        }),
      };
    },
  });

  const seatsAvailable = defineIntegration({
    id: 'seats-available',
    mode: 'sync',
    route: 'GET /events/:event/seats',
    params: z.object({ event: z.string().min(1) }),
    deadline: 1_000,
    async handler(ctx) {
      return {
        body: await ctx.call(connections.webshop, 'GET', '/events/:event/seats', {
          params: { event: ctx.params.event },
        }),
      };
    },
  });

  const stockPrice = defineIntegration({
    id: 'stock-price',
    mode: 'sync',
    route: 'GET /stocks/:symbol/price',
    params: z.object({ symbol: z.string().regex(/^[A-Z]{1,5}$/, 'a ticker symbol such as ACME') }),
    deadline: 500,
    async handler(ctx) {
      return {
        body: await ctx.call(connections.bank, 'GET', '/quotes/:symbol', {
          params: { symbol: ctx.params.symbol },
        }),
      };
    },
  });

  // Sync → async: a confirmation now, the fulfilment later, durable and retried.
  const order = z.object({
    orderId: z.string().min(1),
    email: z.string().email(),
    sku: z.string().min(1),
    qty: z.number().int().positive(),
    marketing: z.boolean().default(false),
  });

  const fulfilOrder = defineIntegration({
    id: 'fulfil-order',
    mode: 'async',
    input: order,
    track: { orderId: 'orderId', email: 'email' },
    retry: { maxAttempts: 8, initialDelayMs: 1_000, maxDelayMs: 30_000 },
    async handler(ctx) {
      const { orderId, email, sku, qty } = ctx.input;
      const customer = await ctx.step('create-account', () =>
        ctx.call(connections.crm, 'POST', '/customers', { json: { email } }),
      );
      if (ctx.input.marketing) {
        await ctx.step('marketing-signup', () =>
          ctx.call(connections.marketing, 'POST', '/subscriptions', { json: { email } }),
        );
      }
      const reservation = await ctx.step('update-inventory', () =>
        ctx.call(connections.inventory, 'POST', '/reservations', { json: { sku, qty } }),
      );
      const packingList = await ctx.step('packing-list', () => ({
        orderId,
        sku,
        qty,
        customer,
        reservation,
      }));
      // The warehouse confirms the shipment hours (in the demo: seconds) later, by calling back the
      // single-use URL that goes with the packing list. Meanwhile the instance waits durably: no
      // worker, no lease, any process resumes it.
      const shipment = await ctx.callback<Shipment>('shipment', { timeout: '3d' });
      await ctx.step('send-to-warehouse', () =>
        ctx.call(connections.warehouse, 'POST', '/packing-lists', {
          json: { ...packingList, callbackUrl: shipment.url },
        }),
      );
      const shipped = await shipment.wait();
      if (shipped === null)
        throw new NonRetryableError(
          `The warehouse has not confirmed the shipment of ${orderId} within 3 days`,
        );
      const { trackingNumber } = shipped;
      await ctx.step('shipping-notice', () =>
        ctx.call(connections.crm, 'POST', '/notifications', {
          json: { orderId, email, kind: 'shipped', trackingNumber },
        }),
      );
      return { orderId, status: 'shipped', trackingNumber };
    },
  });

  let confirmations = 0;
  const placeOrder = defineIntegration({
    id: 'place-order',
    mode: 'sync',
    route: 'POST /orders',
    input: order,
    track: { orderId: 'orderId' },
    deadline: 3_000,
    async handler(ctx) {
      // Committed before the answer is written: no confirmation without its follow-up queued.
      await ctx.start(fulfilOrder, ctx.input);
      return { status: 201, body: { orderId: ctx.input.orderId, confirmation: `CONF-${++confirmations}` } };
    },
  });

  // Async: answered 202 once stored, retried while a target is down.
  const syncInventory = defineIntegration({
    id: 'sync-inventory',
    mode: 'async',
    route: 'POST /inventory/sync',
    input: z.object({ sku: z.string().min(1) }),
    track: { sku: 'sku' },
    // Two syncs of one article never overtake each other.
    orderingKey: 'sku',
    async handler(ctx) {
      const { sku } = ctx.input;
      const stock = await ctx.step('read-inventory', () =>
        ctx.call<{ available: number }>(connections.inventory, 'GET', '/stock/:sku', { params: { sku } }),
      );
      await ctx.step('update-webshop', () =>
        ctx.call(connections.webshop, 'PUT', '/stock/:sku', {
          params: { sku },
          json: { available: stock.available },
        }),
      );
      return { sku, available: stock.available };
    },
  });

  const onboardEmployee = defineIntegration({
    id: 'onboard-employee',
    mode: 'async',
    route: 'POST /employees',
    input: z.object({ employeeId: z.string().min(1), name: z.string().min(1) }),
    track: { employeeId: 'employeeId' },
    orderingKey: 'employeeId',
    async handler(ctx) {
      await ctx.step('hr-record', () => ctx.call(connections.hr, 'POST', '/employees', { json: ctx.input }));
      const user = await ctx.step('user-account', () =>
        ctx.call<{ userId: string }>(connections.identity, 'POST', '/users', { json: ctx.input }),
      );
      // The employee exists: whoever waits for it (attach-document-by-event) may go on. The id makes
      // the event idempotent: a retried step sends it again, and the duplicate changes nothing.
      await ctx.step('employee-created', () =>
        ctx.call(connections.tandem, 'POST', '/api/events', {
          json: {
            name: 'employee.created',
            id: `employee.created:${ctx.input.employeeId}`,
            payload: { employeeId: ctx.input.employeeId, userId: user.userId },
          },
        }),
      );
      return { onboarded: ctx.input.employeeId, userId: user.userId };
    },
  });

  const attachDocument = defineIntegration({
    id: 'attach-document',
    mode: 'async',
    route: 'POST /employees/documents',
    input: z.object({ employeeId: z.string().min(1), title: z.string().min(1) }),
    track: { employeeId: 'employeeId' },
    // Same key as onboard-employee: the document waits until the employee record exists.
    orderingKey: 'employeeId',
    async handler(ctx) {
      await ctx.step('store', () =>
        ctx.call(connections.documents, 'POST', '/documents', { json: ctx.input }),
      );
    },
  });

  // The same, waiting for the fact rather than for the queue: the document is attached once the
  // employee exists, whichever request came first and however long onboarding takes.
  const attachDocumentByEvent = defineIntegration({
    id: 'attach-document-by-event',
    mode: 'async',
    route: 'POST /employees/documents/by-event',
    input: z.object({ employeeId: z.string().min(1), title: z.string().min(1) }),
    track: { employeeId: 'employeeId' },
    async handler(ctx) {
      const { employeeId } = ctx.input;
      // An employee created long ago (before the event's look-back window) is found here; one being
      // created now is announced by the event, which the wait takes even if it came a moment before.
      const known = await ctx.step('find-employee', () =>
        ctx
          .call<{ userId: string }>(connections.identity, 'GET', '/users/:employeeId', {
            params: { employeeId },
          })
          .catch((error: unknown) => {
            if (error instanceof HttpError && error.status === 404) return null;
            throw error;
          }),
      );
      const employee =
        known ??
        (await ctx.waitForEvent<{ userId: string }>('employee-created', {
          event: 'employee.created',
          match: { employeeId },
          timeout: '7d',
        }));
      if (employee === null)
        throw new NonRetryableError(`Employee ${employeeId} was not created within 7 days`);
      await ctx.step('store', () =>
        ctx.call(connections.documents, 'POST', '/documents', {
          json: { ...ctx.input, userId: employee.userId },
        }),
      );
    },
  });

  // Scheduled: the day's order file, record by record.
  const fileOrder = z.object({
    orderId: z.string().regex(/^N-\d+$/, 'an order number such as N-1001'),
    email: z.string().email(),
    sku: z.string().min(1),
    qty: z.coerce.number().int().positive(),
  });

  const postOrder = defineIntegration({
    id: 'post-order',
    mode: 'async',
    input: fileOrder,
    track: { orderId: 'orderId' },
    retry: { maxAttempts: 8, initialDelayMs: 1_000, maxDelayMs: 30_000 },
    async handler(ctx) {
      const product = await ctx.step('enrich', () =>
        ctx.call<{ name: string; price: number }>(connections.webshop, 'GET', '/products/:sku', {
          params: { sku: ctx.input.sku },
        }),
      );
      const enriched = { ...ctx.input, product: product.name, total: product.price * ctx.input.qty };
      await ctx.step('post', () =>
        ctx.call(connections.orderProcessing, 'POST', '/orders', { json: enriched }),
      );
      return enriched;
    },
  });

  const nightlyOrders = defineIntegration({
    id: 'nightly-orders',
    mode: 'scheduled',
    description: "The day's order file: bad rows reported by line, good ones posted to order processing",
    cron: '0 0 2 * * *',
    timezone: 'Europe/Berlin',
    parameters: { file: join(inbox, 'orders-*.csv') },
    async handler(ctx) {
      const orders = csvSource(
        ordersSftp
          ? sftpFiles(ordersSftp.connection, ordersSftp.pattern, { archive: ordersSftp.archive })
          : ctx.parameters.file,
        {
          headers: { 'Order No': 'orderId', 'E-mail': 'email', SKU: 'sku', Qty: 'qty' },
          schema: fileOrder,
        },
      );
      return ctx.startMany(postOrder, orders, { await: 'children' });
    },
  });

  return {
    integrations: [
      checkBalance,
      creditCheck,
      currentInventory,
      seatsAvailable,
      stockPrice,
      placeOrder,
      fulfilOrder,
      syncInventory,
      onboardEmployee,
      attachDocument,
      attachDocumentByEvent,
      postOrder,
      nightlyOrders,
    ],
    connections: [...Object.values(connections), ...(ordersSftp ? [ordersSftp.connection] : [])],
  };
}
